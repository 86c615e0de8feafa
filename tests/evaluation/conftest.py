"""Fixtures of the evaluation tests: two tiny random models and a tiny built corpus (made once per session)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import TINY_GPT, make_midi


def piece_notes(seed: int, n_notes: int = 50) -> list[tuple[int, int, int, int]]:
    """A made-up 4/4 piece (pitch, start tick, duration, velocity) at 480 ticks a quarter."""
    rng = np.random.default_rng(seed)
    starts = np.cumsum(rng.integers(1, 4, n_notes) * 240)
    return [
        (int(p), int(s), int(d), 80)
        for p, s, d in zip(rng.integers(55, 80, n_notes), starts, [480] * n_notes, strict=True)
    ]


def build(tmp: Path, name: str, seq_len: int) -> Path:
    """A corpus of 12 made-up pieces; their bytes put 7 in train, 1 in validation and 4 in test."""
    from datasets import load_from_disk

    from maia_hf.data import build_dataset

    midis = tmp / "midis" / "mozart"
    midis.mkdir(parents=True, exist_ok=True)
    for i in range(12):
        make_midi(midis / f"piece{i}.mid", [(piece_notes(i), False)], time_signature=(4, 4))
    out = tmp / name
    build_dataset(
        [midis.parent], out, seq_len=seq_len, transpositions="0,1", validation_fraction=0.25, test_fraction=0.25,
        cache_dir=tmp / "cache", progress=False,
    )  # fmt: skip
    pieces = {split: len(set(rows["piece_id"])) for split, rows in load_from_disk(str(out)).items()}
    assert pieces == {"train": 7, "validation": 1, "test": 4}, f"the split by content hash changed: {pieces}"
    return out


@pytest.fixture(scope="session")
def build_corpus():
    """``build(tmp, name, seq_len)``: a corpus of 12 made-up pieces, windows of ``seq_len`` tokens."""
    return build


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """A tiny GPT-2 and a tiny LSTM with random weights, saved with the default tokenizer."""
    from maia_hf import MaiaConfig, MaiaForCausalLM, MaiaLstmConfig, MaiaLstmForCausalLM, MaiaTokenizer

    tmp = tmp_path_factory.mktemp("models")
    tokenizer = MaiaTokenizer()
    torch.manual_seed(0)
    gpt = MaiaForCausalLM(MaiaConfig(vocab_size=len(tokenizer), **{**TINY_GPT, "n_positions": 48}))
    gpt.config.fim_order = "spm"  # as a run with fill-in-the-middle windows records it: evaluated for infilling
    lstm = MaiaLstmForCausalLM(MaiaLstmConfig(vocab_size=len(tokenizer), hidden_size=16))
    for name, model in (("tiny-gpt", gpt), ("tiny-lstm", lstm)):
        model.save_pretrained(tmp / name)
        tokenizer.save_pretrained(tmp / name)
    return tmp / "tiny-gpt", tmp / "tiny-lstm"


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("corpus"), "corpus", seq_len=64)


@pytest.fixture(scope="session")
def report_dir(corpus, models, tmp_path_factory) -> Path:
    """The folder ``maia evaluate`` writes for both tiny models: 3 pieces of 2 bars each."""
    from maia_hf.cli import main

    out = tmp_path_factory.mktemp("evaluation") / "report"
    argv = ["evaluate", "--model", str(models[0]), "--model", str(models[1]), "--data", str(corpus)]
    argv += ["--out", str(out), "--pieces", "3", "--bars", "2", "--tokens-per-bar", "40", "--nll-windows", "8"]
    assert main([*argv, "--quiet"]) == 0
    return out
