"""recipes/ship_model.py: a candidate ships only if it beats the shipped model on the same validation set."""

from __future__ import annotations

import json
import subprocess
import sys

import torch
from helpers import REPO, TINY_GPT
from training_runs import ENV

from maia_hf import MaiaConfig, MaiaForCausalLM, MaiaTokenizer

SHIP = [sys.executable, str(REPO / "recipes" / "ship_model.py")]


def _model(path, seed: int, tokenizer, scale: float = 1.0):
    torch.manual_seed(seed)
    model = MaiaForCausalLM(MaiaConfig(vocab_size=len(tokenizer), **{**TINY_GPT, "n_positions": 64}))
    with torch.no_grad():
        model.lm_head.weight.mul_(scale)  # a large scale makes confident, wrong predictions: a worse model
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_only_a_better_candidate_ships(tiny_corpus, tmp_path):
    tokenizer = MaiaTokenizer()
    base = _model(tmp_path / "base", 0, tokenizer)
    worse = _model(tmp_path / "worse", 1, tokenizer, scale=200.0)
    card = tmp_path / "card.md"
    card.write_text("---\nlicense: mit\n---\n# a test card\n")
    dest = tmp_path / "shipped"
    args = ["--data", str(tiny_corpus), "--base", str(base), "--card", str(card), "--dest", str(dest)]

    refused = subprocess.run([*SHIP, "--model", str(worse), *args], env=ENV, capture_output=True, text=True)
    assert refused.returncode == 1 and "not better than the shipped model; nothing shipped" in refused.stderr
    assert not dest.exists()

    report = tmp_path / "report.json"
    shipped = subprocess.run(
        [*SHIP, "--model", str(base), *args, "--force", "--report", str(report)],
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert shipped.returncode == 0, shipped.stderr[-2000:]
    assert sorted(p.name for p in dest.iterdir()) == [
        "README.md", "config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
        "tokenizer_config.json",
    ]  # fmt: skip
    generation = json.loads((dest / "generation_config.json").read_text())
    assert generation["do_sample"] is True and generation["top_k"] == 5 and generation["max_new_tokens"] == 512
    assert "auto_map" not in json.loads((dest / "config.json").read_text())
    assert "local_files_only" not in json.loads((dest / "tokenizer_config.json").read_text())
    result = json.loads(report.read_text())
    assert result["splits"]["all"]["candidate"]["tokens"] == result["splits"]["all"]["base"]["tokens"] > 0
    fill = result["infilling"]  # the default vocabulary has the fill-in-the-middle tokens: both are measured
    assert fill["candidate"]["gaps"] == fill["base"]["gaps"] > 0 and "infilling, candidate" in shipped.stdout


def _result(candidate: float, base: float, with_suffix=None, prefix_only=None) -> dict:
    result = {"decides": "all", "splits": {"all": {"candidate": {"bits_per_token": candidate},
                                                    "base": {"bits_per_token": base}}}}  # fmt: skip
    if with_suffix is not None:
        fill = {"bits_per_token_with_suffix": with_suffix, "bits_per_token_prefix_only": prefix_only}
        result["infilling"] = {"candidate": fill, "base": None}
    return result


def test_a_candidate_that_ignores_the_suffix_does_not_ship():
    sys.path.insert(0, str(REPO / "recipes"))
    try:
        import ship_model
    finally:
        sys.path.remove(str(REPO / "recipes"))
    assert ship_model.refusal(_result(1.8, 1.9)) is None  # no infilling figures: likelihood decides
    assert ship_model.refusal(_result(1.8, 1.9, 1.85, 1.86)) is None
    assert "not better" in ship_model.refusal(_result(1.95, 1.9, 1.85, 1.86))
    reason = ship_model.refusal(_result(1.8, 1.9, 1.87, 1.86))
    assert "does not use what comes after a gap" in reason and "1.870" in reason and "1.860" in reason
