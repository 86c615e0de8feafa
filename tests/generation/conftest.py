"""Fixtures of the generation tests: a tiny random GPT-2 with few positions, made once per module."""

from __future__ import annotations

import pytest
import torch
from helpers import TINY_GPT

from maia_hf import MaiaConfig, MaiaForCausalLM


@pytest.fixture(scope="module")
def tiny_model(tokenizer):
    """96 positions: a 200-token continuation needs the sliding window."""
    torch.manual_seed(0)
    return MaiaForCausalLM(MaiaConfig(vocab_size=len(tokenizer), **{**TINY_GPT, "n_positions": 96})).eval()
