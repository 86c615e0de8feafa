"""`maia push`, `push_to_hub`, and loading back by hub id, against the Hub-compatible server in `hub_server.py`.

Every push and load runs in a fresh process with ``HF_ENDPOINT`` on the local server, a dummy token and
``HF_HOME`` under the test's tmp folder, so nothing reaches the internet or the real cache.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import make_midi
from hub_server import HubServer

from maia_hf.cli import EXIT_INPUT_ERROR, main

USER, TOKEN = "maia-hf", "hf_maia_test_token"
CARD = "---\nlibrary_name: transformers\npipeline_tag: text-generation\ntags: [music, maia]\n---\n\n# tiny maia\n"
# Variables that would point the subprocesses at the real cache or switch the Hub off.
LEAKY_ENV = ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE", "TRANSFORMERS_CACHE", "HF_XET_CACHE",
             "HF_ASSETS_CACHE", "HF_TOKEN_PATH", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")  # fmt: skip


@pytest.fixture(scope="module")
def hub():
    with HubServer(user=USER, token=TOKEN) as server:
        yield server


@pytest.fixture
def hub_env(hub, tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in LEAKY_ENV}
    return env | {
        "HF_ENDPOINT": hub.url,
        "HF_HUB_OFFLINE": "0",
        "HF_TOKEN": TOKEN,
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "OMP_NUM_THREADS": "1",
        "OMP_WAIT_POLICY": "PASSIVE",
    }


def run_with_hub(args: list[str], env: dict, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert out.returncode == 0, out.stderr[-3000:]
    return out


@pytest.fixture
def carded_model(tiny_maia_dir) -> Path:
    """The tiny saved model with a model card, as a shipped model has."""
    (tiny_maia_dir / "README.md").write_text(CARD, encoding="utf-8")
    return tiny_maia_dir


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A corpus built by `build_dataset` from six short MIDI pieces (one key, 32-token windows), no split empty."""
    from maia_hf.data import build_dataset

    root = tmp_path_factory.mktemp("hub-corpus")
    (root / "midis" / "bach").mkdir(parents=True)
    for i in range(6):
        notes = [(60 + i + step % 5, step * 240, 240, 80) for step in range(12)]
        make_midi(root / "midis" / "bach" / f"piece{i}.mid", [(notes, False)])
    build_dataset([root / "midis"], root / "corpus", seq_len=32, transpositions="1", validation_fraction=0.34,
                  test_fraction=0.33, cache_dir=root / "cache", progress=False)  # fmt: skip
    return root / "corpus"


def local_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_maia_push_then_pipeline_maia_word_for_word(hub, hub_env, carded_model, corpus, tmp_path):
    pushed = run_with_hub(["-m", "maia_hf", "push", str(carded_model), "maia", "--dataset", str(corpus),
                           "--dataset-repo", "maia-corpus"], hub_env, tmp_path)  # fmt: skip
    assert f"to {hub.url}/{USER}/maia " in pushed.stdout
    assert f"to {hub.url}/datasets/{USER}/maia-corpus " in pushed.stdout

    model_files = hub.files(f"{USER}/maia")
    assert {k: v for k, v in model_files.items() if k != ".gitattributes"} == local_files(carded_model)
    assert {"README.md", "model.safetensors", "tokenizer.json", "generation_config.json", "modeling_maia.py",
            "tokenization_maia.py", "codec.py"} <= model_files.keys()  # fmt: skip
    corpus_files = hub.files(f"{USER}/maia-corpus", repo_type="dataset")
    assert {k: v for k, v in corpus_files.items() if k != ".gitattributes"} == local_files(corpus)

    # The call maia is designed around, word for word, in an empty folder so that no local `maia/` answers it.
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    seen = len(hub.log)
    code = f"""
import json
import datasets
import maia_hf
from huggingface_hub import snapshot_download
from transformers import AutoModelForCausalLM, pipeline
from maia_hf.data import load_corpus

generate = pipeline("text-generation", model="maia")
local = pipeline("text-generation", model={str(carded_model)!r})
prompt = "p62 p65 wait6 endp62 endp65"
hub_weights = AutoModelForCausalLM.from_pretrained("{USER}/maia").state_dict()
local_weights = local.model.state_dict()
same = hub_weights.keys() == local_weights.keys() and all(hub_weights[k].equal(local_weights[k]) for k in hub_weights)
corpus, report, tokenizer = load_corpus(snapshot_download("{USER}/maia-corpus", repo_type="dataset"))
hub_dataset = datasets.load_dataset("{USER}/maia-corpus")
print(json.dumps({{
    "hub": generate(prompt, max_new_tokens=12, do_sample=False)[0]["generated_text"],
    "local": local(prompt, max_new_tokens=12, do_sample=False)[0]["generated_text"],
    "class": type(generate.model).__name__, "tokenizer": type(generate.tokenizer).__name__, "same_weights": same,
    "rows": {{split: corpus[split].num_rows for split in corpus}}, "corpus_tokenizer": type(tokenizer).__name__,
    "load_dataset": {{split: hub_dataset[split].to_dict()["input_ids"] for split in hub_dataset}},
}}))
"""
    out = json.loads(run_with_hub(["-c", code], hub_env, empty).stdout.strip().splitlines()[-1])
    assert out["hub"] == out["local"]
    assert out["hub"].startswith("p62 p65 wait6 endp62 endp65 ")  # the seam keeps words apart
    assert (out["class"], out["tokenizer"], out["same_weights"]) == ("MaiaForCausalLM", "MaiaTokenizer", True)
    from datasets import load_from_disk

    local_corpus = load_from_disk(str(corpus))
    assert all(ds.num_rows for ds in local_corpus.values()), "load_dataset cannot read an empty split"
    assert out["rows"] == {split: ds.num_rows for split, ds in local_corpus.items()}
    assert out["load_dataset"] == {split: ds.to_dict()["input_ids"] for split, ds in local_corpus.items()}
    assert out["corpus_tokenizer"] == "MaiaTokenizer"
    assert any(line.startswith("HEAD /maia/resolve/") for line in hub.log[seen:]), "the bare id never reached the hub"


def test_push_to_hub_then_from_pretrained_and_pipeline(hub, hub_env, tiny_maia_dir, tmp_path):
    # Pushed and loaded in one fresh process (from_pretrained downloads into an empty HF_HOME), in a folder
    # without the model so that only the hub can answer the id.
    code = f"""
import maia_hf
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline
local = AutoModelForCausalLM.from_pretrained({str(tiny_maia_dir)!r})
tokenizer = AutoTokenizer.from_pretrained({str(tiny_maia_dir)!r})
print(local.push_to_hub("tiny-push-to-hub").repo_url.repo_id)
print(tokenizer.push_to_hub("tiny-push-to-hub").repo_url.repo_id)

hub_weights = AutoModelForCausalLM.from_pretrained("{USER}/tiny-push-to-hub").state_dict()
local_weights = local.state_dict()
assert hub_weights.keys() == local_weights.keys()
assert all(hub_weights[k].equal(local_weights[k]) for k in hub_weights)
generate = pipeline("text-generation", model="{USER}/tiny-push-to-hub")
print(type(generate.model).__name__, type(generate.tokenizer).__name__)
print(generate("p60 wait12 endp60", max_new_tokens=6, do_sample=False)[0]["generated_text"])
"""
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    seen = len(hub.log)
    lines = run_with_hub(["-c", code], hub_env, empty).stdout.strip().splitlines()[-4:]
    assert lines[:3] == [f"{USER}/tiny-push-to-hub"] * 2 + ["MaiaForCausalLM MaiaTokenizer"]
    assert lines[3].startswith("p60 wait12 endp60 ") and len(lines[3].split()) == 3 + 6
    files = hub.files(f"{USER}/tiny-push-to-hub")
    assert {"README.md", "config.json", "model.safetensors", "tokenizer.json", "modeling_maia.py"} <= files.keys()
    assert f"GET /{USER}/tiny-push-to-hub/resolve/" in "\n".join(hub.log[seen:])


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("env_change", "expected"),
    [
        pytest.param({"HF_TOKEN": "hf_wrong"}, ["HTTP 401", "HF_TOKEN", "hf auth login"], id="wrong-token"),
        pytest.param({"HF_HUB_OFFLINE": "1"}, ["HF_HUB_OFFLINE is set"], id="offline"),
        pytest.param({"HF_ENDPOINT": "closed"}, ["could not reach", "HF_ENDPOINT"], id="unreachable"),
    ],
)
def test_push_errors_name_the_repo_the_endpoint_and_the_fix(hub, hub_env, carded_model, tmp_path, env_change, expected):
    env = hub_env | env_change
    if env["HF_ENDPOINT"] == "closed":
        env["HF_ENDPOINT"] = f"http://127.0.0.1:{_closed_port()}"
    out = run_with_hub(["-m", "maia_hf", "push", str(carded_model), f"{USER}/refused"], env, tmp_path, check=False)
    assert out.returncode == EXIT_INPUT_ERROR, out.stderr[-3000:]
    message = out.stderr.strip().splitlines()[-1]
    assert message.startswith("maia push: error: ")
    for part in [f"model repo '{USER}/refused'", env["HF_ENDPOINT"], *expected]:
        assert part in message
    assert ("model", f"{USER}/refused") not in hub.repos


def _no_config(path: Path) -> None:
    (path / "config.json").unlink()


def _gpt2_config(path: Path) -> None:
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps(config | {"model_type": "gpt2"}))


def _no_weights(path: Path) -> None:
    (path / "model.safetensors").unlink()


def _no_tokenizer(path: Path) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (path / name).unlink()


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        pytest.param(None, "does not exist", id="missing"),
        pytest.param(_no_config, "holds no config.json", id="not-a-model"),
        pytest.param(_gpt2_config, "holds a 'gpt2' model, not a maia model", id="not-maia"),
        pytest.param(_no_weights, "holds no model.safetensors", id="no-weights"),
        pytest.param(_no_tokenizer, "has no tokenizer", id="no-tokenizer"),
    ],
)
def test_push_refuses_what_is_not_a_saved_maia_model(tiny_maia_dir, capsys, damage, expected):
    path = tiny_maia_dir if damage else tiny_maia_dir.parent / "nowhere"
    if damage:
        damage(path)
    assert main(["push", str(path), f"{USER}/never"]) == EXIT_INPUT_ERROR
    message = capsys.readouterr().err.strip()
    assert message.startswith(f"maia push: error: model directory {str(path)!r} ") and expected in message


def test_push_checks_the_corpus_before_pushing_anything(tiny_maia_dir, tmp_path, capsys):
    (tmp_path / "not-a-corpus").mkdir()
    assert main(["push", str(tiny_maia_dir), f"{USER}/never", "--dataset", str(tmp_path / "not-a-corpus")]) == 2
    assert "is not a corpus (no dataset_dict.json); build one with `maia data build`" in capsys.readouterr().err
