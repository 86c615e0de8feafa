"""What the sparse attention tests share (imported as `sparse_helpers`): tiny sparse models, the pattern
masks, brute-force attention, and the registered functions called as a GPT-2 layer calls them."""

from __future__ import annotations

import pytest
import torch
from transformers import AttentionInterface
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, causal_mask_function

from maia_hf import MaiaConfig, MaiaForCausalLM
from maia_hf.sparse_attention import fixed_pattern_mask, strided_pattern_mask

# Uncompiled FlexAttention applies mask_mod everywhere (a dense reference); the compiled kernel, which
# trusts the block structure, is checked by TestFlexBlockStructure and the slow test in test_flex.py.
UNCOMPILED_FLEX = pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")

TINY_SPARSE = {"n_layer": 2, "n_head": 4, "n_embd": 32, "n_inner": 64, "n_positions": 128}
BLOCK, SUMMARY = 8, 2
PATTERNS = {
    "fixed": ("maia_sparse_fixed", {}),
    "fixed-per-head": ("maia_sparse_fixed", {"sparse_per_head_summary": True}),
    "strided": ("maia_sparse_strided", {}),
}
BACKENDS = ["sdpa", "flex", "split"]


def brute_force(q, k, v, allowed, scale):
    """Masked softmax attention over a boolean mask broadcastable to (B, H, Q, K); output (B, Q, H, d)."""
    scores = (q @ k.transpose(-1, -2)) * scale
    scores = scores.masked_fill(~allowed, float("-inf"))
    weights = torch.nan_to_num(torch.softmax(scores, dim=-1))  # fully masked rows (pads) -> 0
    return (weights @ v).transpose(1, 2)


def sparse_model(name, backend, **overrides):
    impl, extra = PATTERNS[name]
    config = MaiaConfig(
        attn_implementation=impl,
        sparse_block=BLOCK,
        sparse_summary=SUMMARY,
        sparse_backend=backend,
        **{**TINY_SPARSE, **extra, **overrides},
    )
    torch.manual_seed(0)
    return MaiaForCausalLM(config).eval()


def pattern_mask(name, n, n_head=TINY_SPARSE["n_head"], block=BLOCK, summary=SUMMARY):
    """(1, H or 1, n, n) from the public pure functions."""
    if name == "strided":
        return strided_pattern_mask(n, block)[None, None]
    if name == "fixed-per-head":
        return torch.stack([fixed_pattern_mask(n, block, summary, head=h) for h in range(n_head)])[None]
    return fixed_pattern_mask(n, block, summary)[None, None]


def call_registered(name, backend, q, k, v, q_offset=0, attention_mask=None, block=BLOCK, summary=SUMMARY):
    """Mask function then attention function, exactly as a GPT-2 layer reaches them."""
    impl = PATTERNS[name][0]
    config = MaiaConfig(
        sparse_block=block,
        sparse_summary=summary,
        sparse_backend=backend,
        sparse_per_head_summary=name == "fixed-per-head",
        n_head=q.shape[1],
        n_embd=q.shape[1] * q.shape[-1],
    )
    mask = ALL_MASK_ATTENTION_FUNCTIONS[impl](
        batch_size=q.shape[0],
        q_length=q.shape[2],
        kv_length=k.shape[2],
        q_offset=q_offset,
        kv_offset=0,
        mask_function=causal_mask_function,
        attention_mask=attention_mask,
        config=config,
        device=q.device,
    )
    module = torch.nn.Module().eval()
    output, _ = AttentionInterface._global_mapping[impl](module, q, k, v, mask, dropout=0.0, scaling=0.3)
    return output, mask
