"""A small Hugging Face Hub-compatible HTTP server on localhost, for tests that push and pull without internet.

It answers the calls `huggingface_hub` 2.x makes for ``create_repo`` / ``upload_folder`` / ``push_to_hub`` and
``hf_hub_download`` / ``from_pretrained`` / ``snapshot_download`` (request shapes read from ``hf_api.py``,
``_commit_api.py`` and ``file_download.py``), for model, dataset and space repos, in memory:

- ``POST /api/repos/create``, ``POST /api/validate-yaml``, ``GET /api/agent-harnesses``, ``GET /api/whoami-v2``;
- ``POST /api/{type}s/{id}/preupload/{rev}``: every file ``"uploadMode": "regular"``, so the client sends the
  contents base64 inside the NDJSON commit and nothing goes to LFS or Xet storage;
- ``POST /api/{type}s/{id}/commit/{rev}`` (NDJSON: ``header``, ``file``, ``deletedFile``, ``deletedFolder``);
- ``GET /api/{type}s/{id}[/revision/{rev}]``, ``GET /api/{type}s/{id}/tree/{rev}[/{path}]`` (404 with
  ``X-Error-Code: EntryNotFound`` for a missing path), ``POST /api/{type}s/{id}/paths-info/{rev}``;
- ``GET`` / ``HEAD /{id}/resolve/{rev}/{path}`` and ``/datasets/{id}/resolve/...`` with ``X-Repo-Commit`` and ``ETag``
  (the git blob id, as the Hub gives for regular files).

Repos are created in the namespace of the token's user when the id has none (``create_repo("maia")`` makes
``USER/maia``, as on huggingface.co). A bare id in a read (``/maia/resolve/...``) answers a 307 redirect to
``USER/maia``, the way huggingface.co redirects ``gpt2`` to ``openai-community/gpt2``; `huggingface_hub` follows it.
Writes need ``Authorization: Bearer TOKEN`` (the server's token when it has one); private repos are hidden
from requests without it. Branches other than ``main``, pull requests and LFS uploads are refused.

Point `huggingface_hub` at it with ``HF_ENDPOINT=hub.url``, ``HF_HUB_OFFLINE=0`` and ``HF_TOKEN`` in a fresh
process (it reads them on import), as ``tests/test_hub.py`` does.

Example:

```python
>>> import json, urllib.request
>>> with HubServer(token="hf_test") as hub:
...     create = urllib.request.Request(f"{hub.url}/api/repos/create", data=b'{"name": "demo"}',
...                                     headers={"Authorization": "Bearer hf_test"})
...     print(json.load(urllib.request.urlopen(create))["url"].removeprefix(hub.url))
...     print(sorted(hub.files("maia-hf/demo")))
/maia-hf/demo
['.gitattributes']

```
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

__all__ = ["HubServer"]

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
API_ACTIONS = {"revision", "tree", "paths-info", "preupload", "commit"}
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.arrow filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_id(content: bytes) -> str:
    """The git object id of a blob: what the Hub gives as a regular file's ``oid`` and ``ETag``."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


@dataclass
class Commit:
    oid: str
    title: str
    files: dict[str, bytes]
    parent: str | None = None
    date: str = field(default_factory=_now)


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)

    def at(self, revision: str) -> Commit | None:
        """The commit a branch name or a full commit id names, or None."""
        oid = self.branches.get(revision, revision)
        return self.commits.get(oid)

    def commit(self, title: str, files: dict[str, bytes], branch: str = "main") -> Commit:
        parent = self.branches.get(branch)
        digest = hashlib.sha1(f"{self.repo_type}/{self.repo_id}\n{parent}\n{title}\n{time.time_ns()}".encode())
        for path in sorted(files):
            digest.update(f"{path}\0{git_blob_id(files[path])}\n".encode())
        new = Commit(digest.hexdigest(), title, files, parent)
        self.commits[new.oid] = new
        self.branches[branch] = new.oid
        return new


class HubError(Exception):
    """An error answer: HTTP status, ``X-Error-Code`` and message."""

    def __init__(self, status: int, code: str | None, message: str, commit: str | None = None, **extra):
        super().__init__(message)
        self.status, self.code, self.message, self.commit, self.extra = status, code, message, commit, extra


class Redirect(Exception):
    def __init__(self, location: str):
        super().__init__(location)
        self.location = location


class HubServer:
    """A Hub-compatible server on ``127.0.0.1`` (a free port), in a background thread.

    Args:
        user (`str`, *optional*, defaults to ``"maia-hf"``): the token's user: namespace of ids without one.
        token (`str`, *optional*): the only token accepted for writes (default: any bearer token).
        port (`int`, *optional*, defaults to 0): 0 picks a free port.
    """

    def __init__(self, user: str = "maia-hf", token: str | None = None, port: int = 0):
        self.user, self.token = user, token
        self.repos: dict[tuple[str, str], Repo] = {}
        self.log: list[str] = []  # "METHOD /path STATUS" of every request
        self.lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.hub = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hub-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> dict[str, bytes]:
        """The files of a repo at a revision (KeyError where there is no such repo or revision)."""
        with self.lock:
            commit = self.repos[(repo_type, repo_id)].at(revision)
            if commit is None:
                raise KeyError(revision)
            return dict(commit.files)

    # ---- the operations behind the endpoints (called with the lock held) ----

    def create_repo(self, body: dict, authorized: bool, base: str) -> dict:
        repo_type = body.get("type") or "model"
        repo_id = f"{body.get('organization') or self.user}/{body['name']}"
        url = f"{base}/{URL_PREFIXES[repo_type]}{repo_id}"
        if not authorized:
            raise HubError(401, None, "Invalid username or password.")
        if (repo_type, repo_id) in self.repos:
            raise HubError(409, None, f"You already created this {repo_type} repo", url=url)  # the Hub says where
        repo = Repo(repo_type, repo_id, private=body.get("visibility") == "private" or bool(body.get("private")))
        repo.commit("initial commit", {".gitattributes": GITATTRIBUTES})
        self.repos[(repo_type, repo_id)] = repo
        return {"url": url, "name": repo_id, "id": repo_id}

    def find(self, repo_type: str, repo_id: str, authorized: bool, path: str, query: str) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None and "/" not in repo_id and (repo_type, f"{self.user}/{repo_id}") in self.repos:
            full = quote(f"{self.user}/{repo_id}")
            location = re.sub(rf"/{re.escape(quote(repo_id))}(?=/|$)", f"/{full}", path, count=1)
            raise Redirect(location + (f"?{query}" if query else ""))
        if repo is None or (repo.private and not authorized):
            raise HubError(404, "RepoNotFound", f"Repository not found: {repo_type} {repo_id}")
        return repo

    @staticmethod
    def at(repo: Repo, revision: str) -> Commit:
        commit = repo.at(revision)
        if commit is None:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return commit

    def info(self, repo: Repo, commit: Commit) -> dict:
        card = _card_data(commit.files.get("README.md", b""))
        info = {
            "_id": repo.repo_id,
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": commit.oid,
            "lastModified": commit.date,
            "createdAt": next(iter(repo.commits.values())).date,
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": list(card.get("tags") or []),
            "cardData": card,
            "siblings": [{"rfilename": path} for path in sorted(commit.files)],
            "usedStorage": sum(len(c) for c in commit.files.values()),
        }
        if repo.repo_type == "model":
            info.update(modelId=repo.repo_id, library_name=card.get("library_name"))
            info.update(pipeline_tag=card.get("pipeline_tag"))
        return info

    def tree(self, commit: Commit, path: str, recursive: bool) -> list[dict]:
        path = path.strip("/")
        prefix = f"{path}/" if path else ""
        if path and path not in commit.files and not any(p.startswith(prefix) for p in commit.files):
            raise HubError(404, "EntryNotFound", f"{path} does not exist on this revision", commit.oid)
        if path in commit.files:
            return [_entry(path, commit)]
        entries, folders = [], set()
        for p in sorted(commit.files):
            if not p.startswith(prefix):
                continue
            parts = p[len(prefix) :].split("/")
            for depth in range(1, len(parts) if recursive else min(2, len(parts))):
                folders.add(prefix + "/".join(parts[:depth]))
            if recursive or len(parts) == 1:
                entries.append(_entry(p, commit))
        return [_entry(f, commit) for f in sorted(folders)] + entries

    def preupload(self, commit: Commit, body: dict) -> dict:
        files = [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": _oid(commit, f["path"])}
            for f in body.get("files", [])
        ]
        return {"files": files, "commitOid": commit.oid}

    def apply_commit(self, repo: Repo, revision: str, lines: list[dict], base: str) -> dict:
        head = self.at(repo, revision)
        if revision not in repo.branches:
            raise HubError(400, None, f"this test hub commits to branches only, not to {revision!r}")
        files = dict(head.files)
        header = {}
        for line in lines:
            key, value = line.get("key"), line.get("value", {})
            if key == "header":
                header = value
                parent = value.get("parentCommit")
                if parent and not head.oid.startswith(parent):
                    raise HubError(412, None, f"parent commit {parent} is not the head {head.oid}")
            elif key == "file":
                if value.get("encoding") != "base64":
                    raise HubError(400, None, f"unknown encoding {value.get('encoding')!r}")
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                if files.pop(value["path"], None) is None:
                    raise HubError(404, "EntryNotFound", f"A file with this name doesn't exist: {value['path']}")
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                files = {p: c for p, c in files.items() if not p.startswith(prefix)}
            elif key == "lfsFile":
                raise HubError(400, None, "this test hub takes regular uploads only (it answered uploadMode regular)")
            else:
                raise HubError(400, None, f"unknown commit operation {key!r}")
        new = repo.commit(header.get("summary") or "commit", files, revision)
        url = f"{base}/{URL_PREFIXES[repo.repo_type]}{repo.repo_id}/commit/{new.oid}"
        return {"success": True, "commitOid": new.oid, "commitUrl": url, "hookOutput": ""}


def _oid(commit: Commit, path: str) -> str | None:
    content = commit.files.get(path)
    return None if content is None else git_blob_id(content)


def _entry(path: str, commit: Commit) -> dict:
    if path in commit.files:
        return {"type": "file", "oid": _oid(commit, path), "size": len(commit.files[path]), "path": path}
    listing = "".join(f"{p}{_oid(commit, p)}" for p in sorted(commit.files) if p.startswith(path + "/"))
    return {"type": "directory", "oid": hashlib.sha1(listing.encode()).hexdigest(), "size": 0, "path": path}


def _card_data(readme: bytes) -> dict:
    text = readme.decode("utf-8", "replace")
    if not text.startswith("---"):
        return {}
    import yaml

    try:
        data = yaml.safe_load(text.split("---", 2)[1])
    except (yaml.YAMLError, IndexError):
        return {}
    return data if isinstance(data, dict) else {}


def _validate_card(body: dict) -> dict:
    """What ``/api/validate-yaml`` says: the front matter must be a YAML mapping."""
    text = body.get("content") or ""
    if not text.startswith("---"):
        return {"errors": [], "warnings": [{"message": "empty or missing yaml metadata in repo card"}]}
    import yaml

    try:
        data = yaml.safe_load(text.split("---", 2)[1])
    except (yaml.YAMLError, IndexError) as exc:
        return {"errors": [{"message": f"invalid YAML front matter: {exc}"}]}
    if data is not None and not isinstance(data, dict):
        return {"errors": [{"message": "the YAML front matter must be a mapping"}]}
    return {"errors": [], "warnings": []}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "maia-test-hub/1"

    @property
    def hub(self) -> HubServer:
        return self.server.hub

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    # ---- plumbing ----

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        body = self._read_body()
        status = 500
        try:
            with self.hub.lock:
                status = self._route(method, url.path, url.query, body)
        except Redirect as r:
            status = 307
            self._send(307, b"", {"Location": r.location})
        except HubError as e:
            status = e.status
            headers = {"X-Error-Message": e.message}
            if e.code:
                headers["X-Error-Code"] = e.code
            if e.commit:
                headers["X-Repo-Commit"] = e.commit
            self._send_json(e.status, {"error": e.message, **e.extra}, headers)
        except Exception as e:  # a bug in this server: say so to the client rather than hang it
            status = 500
            self._send_json(500, {"error": f"test hub: {type(e).__name__}: {e}"})
        self.hub.log.append(f"{method} {self.path} {status}")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while (size := int(self.rfile.readline().strip() or b"0", 16)) > 0:
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, content: bytes, headers: dict | None = None, length: int | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(content) if length is None else length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)

    def _send_json(self, status: int, data, headers: dict | None = None) -> int:
        self._send(status, json.dumps(data).encode(), {"Content-Type": "application/json", **(headers or {})})
        return status

    def _authorized(self) -> bool:
        auth = self.headers.get("Authorization", "")
        return auth.startswith("Bearer ") and self.hub.token in (None, auth[len("Bearer ") :])

    def _require_auth(self) -> None:
        if not self._authorized():
            raise HubError(401, None, "Invalid credentials in Authorization header")

    @property
    def _base(self) -> str:
        return f"http://{self.headers.get('Host')}"

    # ---- routes ----

    def _route(self, method: str, path: str, query: str, body: bytes) -> int:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts[0] == "api":
            return self._route_api(method, parts[1:], path, query, body)
        repo_type = REPO_TYPES.get(parts[0]) if parts[0] in ("datasets", "spaces") else "model"
        rest = parts[1:] if repo_type != "model" else parts
        for i in (1, 2):
            if len(rest) > i + 1 and rest[i] == "resolve" and method in ("GET", "HEAD"):
                return self._resolve(repo_type, "/".join(rest[:i]), rest[i + 1], "/".join(rest[i + 2 :]), path, query)
        raise HubError(404, None, f"test hub: no route for {method} {path}")

    def _route_api(self, method: str, parts: list[str], path: str, query: str, body: bytes) -> int:
        hub = self.hub
        if parts == ["repos", "create"] and method == "POST":
            return self._send_json(200, hub.create_repo(json.loads(body), self._authorized(), self._base))
        if parts == ["validate-yaml"] and method == "POST":
            answer = _validate_card(json.loads(body))
            return self._send_json(400 if answer["errors"] else 200, answer)
        if parts == ["agent-harnesses"] and method == "GET":
            return self._send_json(200, {"standardEnvVars": [], "harnesses": {}})
        if parts == ["whoami-v2"] and method == "GET":
            self._require_auth()
            return self._send_json(200, {"type": "user", "name": hub.user, "fullname": hub.user, "orgs": []})
        if len(parts) < 2 or parts[0] not in REPO_TYPES:
            raise HubError(404, None, f"test hub: no route for {method} {path}")
        repo_type, rest = REPO_TYPES[parts[0]], parts[1:]
        n = 1 if len(rest) == 1 or rest[1] in API_ACTIONS else 2
        repo = hub.find(repo_type, "/".join(rest[:n]), self._authorized(), path, query)
        action, args = (rest[n], rest[n + 1 :]) if len(rest) > n else ("", [])
        if method == "GET" and action in ("", "revision"):
            return self._send_json(200, hub.info(repo, hub.at(repo, args[0] if args else "main")))
        if method == "GET" and action == "tree" and args:
            recursive = parse_qs(query).get("recursive", ["false"])[0].lower() in ("true", "1")
            return self._send_json(200, hub.tree(hub.at(repo, args[0]), "/".join(args[1:]), recursive))
        if method == "POST" and action == "paths-info" and args:
            commit = hub.at(repo, args[0])
            paths = parse_qs(body.decode()).get("paths", [])
            return self._send_json(200, [e for p in paths for e in _paths_info(commit, p)])
        if method == "POST" and action in ("preupload", "commit") and args:
            self._require_auth()
            if "create_pr" in parse_qs(query):
                raise HubError(400, None, "this test hub does not open pull requests")
            if action == "preupload":
                return self._send_json(200, hub.preupload(hub.at(repo, args[0]), json.loads(body)))
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
            return self._send_json(200, hub.apply_commit(repo, args[0], lines, self._base))
        raise HubError(404, None, f"test hub: no route for {method} {path}")

    def _resolve(self, repo_type: str, repo_id: str, revision: str, filename: str, path: str, query: str) -> int:
        repo = self.hub.find(repo_type, repo_id, self._authorized(), path, query)
        commit = self.hub.at(repo, revision)
        content = commit.files.get(filename)
        if content is None:
            raise HubError(404, "EntryNotFound", f"{filename} does not exist on {revision}", commit.oid)
        headers = {
            "Content-Type": "application/octet-stream",
            "X-Repo-Commit": commit.oid,
            "ETag": f'"{git_blob_id(content)}"',
            "Accept-Ranges": "bytes",
        }
        self._send(200, content, headers)
        return 200


def _paths_info(commit: Commit, path: str) -> list[dict]:
    path = path.strip("/")
    if path in commit.files or any(p.startswith(path + "/") for p in commit.files):
        return [_entry(path, commit)]
    return []
