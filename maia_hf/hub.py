"""Publish maia models and corpora on the Hugging Face Hub (``maia push``).

A saved model directory (weights, config, tokenizer, generation config, the model card ``README.md`` and the
``auto_map`` code files that ``save_pretrained`` copies) goes to a model repo; a corpus written by
``maia data build`` (a ``DatasetDict`` saved with ``save_to_disk``, its card and its tokenizer) goes to a
dataset repo. Both use `huggingface_hub.HfApi` (``create_repo(exist_ok=True)`` then ``upload_folder``), so
they follow ``HF_ENDPOINT`` and take the token from ``HF_TOKEN`` or ``hf auth login``. Afterwards, anywhere
with maia installed:

```python
import maia_hf
from transformers import pipeline

generate = pipeline("text-generation", model="user/maia-small")
```

Example:

```python
>>> from maia_hf.hub import check_model_dir
>>> check_model_dir("no/such/dir")
Traceback (most recent call last):
    ...
maia_hf.errors.MaiaInputError: model directory 'no/such/dir' does not exist; give a directory written by save_pretrained

```
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

from .errors import MaiaHubError, MaiaInputError

__all__ = ["check_dataset_dir", "check_model_dir", "push_dataset", "push_model"]

MAIA_MODEL_TYPES = ("maia", "maia-lstm")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json")
# What a training run may leave beside a model and a repo should not carry.
MODEL_IGNORE_PATTERNS = ["checkpoints/*", "checkpoint-*/*", "*.pt", "*.pth", "*.ckpt", "*.bin", "*.tmp"]
LOGIN_FIX = "set HF_TOKEN to a token with write access, or run `hf auth login` (formerly `huggingface-cli login`)"


def check_model_dir(model_dir) -> Path:
    """The directory, if it holds a saved maia model with its tokenizer.

    Raises:
        MaiaInputError: the directory is missing, is not a saved model, is not a maia model, or has no tokenizer.
    """
    path = Path(model_dir).expanduser()
    where = f"model directory {str(model_dir)!r}"
    if not path.is_dir():
        raise MaiaInputError(f"{where} does not exist; give a directory written by save_pretrained")
    if not (path / "config.json").is_file():
        raise MaiaInputError(
            f"{where} holds no config.json, so it is not a saved model; give a directory written by "
            "save_pretrained (a training run's is OUTPUT_DIR/final)"
        )
    try:
        model_type = json.loads((path / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
        raise MaiaInputError(f"{where}: config.json is not a JSON object ({exc}); save the model again") from exc
    if model_type not in MAIA_MODEL_TYPES:
        raise MaiaInputError(
            f"{where} holds a {model_type!r} model, not a maia model ({' or '.join(MAIA_MODEL_TYPES)}); "
            "push other models with `hf upload`"
        )
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        raise MaiaInputError(f"{where} holds no model.safetensors; save the model with save_pretrained")
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise MaiaInputError(
            f"{where} has no tokenizer, so the pushed model would not load in a pipeline; "
            "save it there with tokenizer.save_pretrained(DIR)"
        )
    return path


def check_dataset_dir(dataset_dir) -> Path:
    """The directory, if it holds a ``DatasetDict`` saved with ``save_to_disk`` (``maia data build`` writes one).

    Raises:
        MaiaInputError: the directory is missing or is not a saved ``DatasetDict``.
    """
    path = Path(dataset_dir).expanduser()
    if not path.is_dir():
        raise MaiaInputError(f"corpus directory {str(dataset_dir)!r} does not exist; build one with `maia data build`")
    if not (path / "dataset_dict.json").is_file():
        raise MaiaInputError(
            f"{str(dataset_dir)!r} is not a corpus (no dataset_dict.json); build one with `maia data build`"
        )
    return path


def push_model(model_dir, repo_id: str, *, token: str | None = None, private: bool = False,
               commit_message: str = "Upload maia model"):  # fmt: skip
    """Publish a saved maia model directory as the model repo ``repo_id``, creating it where it does not exist.

    Everything in the directory is uploaded (model, tokenizer, ``README.md`` card, generation config and the
    ``auto_map`` code files) except training leftovers (``checkpoints/``, ``*.pt``, ``*.bin``...).

    Args:
        model_dir (`str` or `Path`): a directory written by ``save_pretrained`` (model and tokenizer).
        repo_id (`str`): ``"user/name"``; a bare name goes to the token's user.
        token (`str`, *optional*): a token with write access (default: ``HF_TOKEN`` or ``hf auth login``'s).
        private (`bool`, *optional*, defaults to `False`): create the repo private; otherwise it gets the hub's
            default (public unless an organisation says otherwise). An existing repo keeps its visibility.
        commit_message (`str`, *optional*): the commit's title.

    Returns:
        `huggingface_hub.CommitInfo`: the commit; ``.repo_url.repo_id`` is the repo's full id.

    Raises:
        MaiaInputError: ``model_dir`` is not a saved maia model with its tokenizer.
        MaiaHubError: the Hub refused the push or could not be reached.
    """
    path = check_model_dir(model_dir)
    return _push_folder(path, repo_id, "model", token, private, commit_message, MODEL_IGNORE_PATTERNS)


def push_dataset(dataset_dir, repo_id: str, *, token: str | None = None, private: bool = False,
                 commit_message: str = "Upload maia corpus"):  # fmt: skip
    """Publish a corpus built by ``maia data build`` as the dataset repo ``repo_id``, as it is on disk.

    The repo holds the ``save_to_disk`` folders, ``README.md`` (the dataset card), ``build_report.json`` and
    ``tokenizer/``. ``datasets.load_dataset(repo_id)`` reads it back where no split is empty;
    ``maia_hf.data.load_corpus(snapshot_download(repo_id, repo_type="dataset"))`` reads it with its tokenizer and
    build report. Arguments, return value and errors as :func:`push_model`.
    """
    path = check_dataset_dir(dataset_dir)
    return _push_folder(path, repo_id, "dataset", token, private, commit_message, [])


def _push_folder(folder: Path, repo_id: str, repo_type: str, token, private: bool, message: str, ignore: list[str]):
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    with _hub_errors(repo_id, repo_type, api.endpoint, folder):
        repo = api.create_repo(repo_id, repo_type=repo_type, private=private or None, exist_ok=True)
        return api.upload_folder(
            repo_id=repo.repo_id,
            folder_path=folder,
            repo_type=repo_type,
            commit_message=message,
            ignore_patterns=list(ignore),
        )


@contextmanager
def _hub_errors(repo_id: str, repo_type: str, endpoint: str, folder: Path):
    """Turn what `huggingface_hub` raises into one line that names the repo, the endpoint and the fix."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError, OfflineModeIsEnabled

    repo = f"{repo_type} repo {repo_id!r} on {endpoint}"
    if "HF_ENDPOINT" not in os.environ:
        repo += " (set HF_ENDPOINT for another hub)"
    try:
        yield
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        lines = (exc.server_message or str(exc)).strip().splitlines()
        detail = lines[0] if lines else "no message"
        if status in (401, 403):
            raise MaiaHubError(f"the hub refused to push the {repo} (HTTP {status}: {detail}); {LOGIN_FIX}") from exc
        if status == 404:
            raise MaiaHubError(
                f"the hub found no {repo} to push to (HTTP 404: {detail}); check the namespace in the id "
                f"(your user or an organisation you can write to), and {LOGIN_FIX}"
            ) from exc
        raise MaiaHubError(f"pushing the {repo} failed (HTTP {status}: {detail}); try again later") from exc
    except LocalTokenNotFoundError as exc:
        raise MaiaHubError(f"no token to push the {repo}; {LOGIN_FIX}") from exc
    except OfflineModeIsEnabled as exc:
        raise MaiaHubError(f"cannot push the {repo}: HF_HUB_OFFLINE is set; unset it (or set it to 0)") from exc
    except (httpx2.HTTPError, ConnectionError, TimeoutError) as exc:
        raise MaiaHubError(
            f"could not reach the hub to push the {repo} ({type(exc).__name__}: {exc}); check the network, "
            "and HF_ENDPOINT where you use another hub"
        ) from exc
    except ValueError as exc:
        if "Invalid metadata in README.md" not in str(exc):
            raise
        reason = " ".join(str(exc).split())
        raise MaiaInputError(f"{str(folder / 'README.md')!r}: {reason}; fix the card's YAML front matter") from exc
