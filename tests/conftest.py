"""Shared fixtures: small scores the tests make, and the shared corpora where this machine has them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import READABLE_MIDI_FIXTURES, TINY_GPT

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

try:  # two busy cores thrash with several threads each
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - torch is a dependency, but the codec tests do not need it
    pass


@pytest.fixture
def codec():
    from maia_hf.codec import NotewiseCodec

    return NotewiseCodec()


@pytest.fixture(scope="session")
def tokenizer():
    from maia_hf import MaiaTokenizer

    return MaiaTokenizer()


@pytest.fixture
def two_hands_midi(tmp_path) -> Path:
    """A 3/4 piece in two tracks: a melody with an off-grid note and a bass with a doubled note."""
    return READABLE_MIDI_FIXTURES["two-hands"](tmp_path / "two_hands.mid")


@pytest.fixture
def tiny_maia_dir(tmp_path, tokenizer):
    """A saved tiny MaiaForCausalLM with its tokenizer (random weights, fixed seed)."""
    import torch

    from maia_hf import MaiaConfig, MaiaForCausalLM

    torch.manual_seed(0)
    model = MaiaForCausalLM(MaiaConfig(vocab_size=len(tokenizer), **TINY_GPT))
    path = tmp_path / "tiny-maia"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
