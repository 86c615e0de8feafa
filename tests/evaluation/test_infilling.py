"""Bits per middle token with and without the suffix: the same targets, scored two ways."""

from __future__ import annotations

import math

import torch
from datasets import Dataset

from maia_hf import MaiaConfig, MaiaForCausalLM, MaiaTokenizer
from maia_hf.evaluation.infilling import _rows, infilling_nll


def test_both_ways_score_the_same_middle_tokens():
    tokenizer = MaiaTokenizer()
    text = " ".join(f"p{50 + i % 20} wait12 endp{50 + i % 20}" for i in range(50))
    split = Dataset.from_dict({"input_ids": [tokenizer.encode_text(text)[:200]] * 6, "composer": ["bach"] * 6})
    torch.manual_seed(0)
    model = MaiaForCausalLM(MaiaConfig(vocab_size=len(tokenizer), n_layer=1, n_head=2, n_embd=16, n_positions=256))
    result = infilling_nll(model.eval(), tokenizer, split, max_windows=0)
    assert result["gaps"] == 6 and result["tokens"] > 0
    assert math.isfinite(result["bits_per_token_with_suffix"]) and math.isfinite(result["bits_per_token_prefix_only"])
    # A random model gains nothing from the suffix: the figures are close, the savings near zero.
    assert abs(result["saving"]) < 0.05 and abs(result["saving_over_other_suffix"]) < 0.05
    assert math.isfinite(result["bits_per_token_other_suffix"])


def test_the_rows_share_prefix_and_middle_and_only_one_sees_the_suffix():
    from maia_hf.codec import NoteArray
    from maia_hf.data import split_at_gap

    tokenizer = MaiaTokenizer()
    parts = split_at_gap(NoteArray.from_lists([60, 62, 64], [0, 48, 96], [12, 60, 108]), 48, 96)
    psm, first_psm, l2r, first_l2r = _rows(tokenizer, parts, "bach", 512)
    assert psm[first_psm:] == l2r[first_l2r:]  # the same middle words
    assert tokenizer.layout.fim_suffix in psm and tokenizer.layout.fim_suffix not in l2r
    assert tokenizer.convert_ids_to_tokens(l2r[2:first_l2r]) == ["p60", "wait12", "endp60", "wait36"]
