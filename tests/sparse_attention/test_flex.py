"""The ``"flex"`` backend: its `BlockMask` against its mask, short runs, fallbacks, the compiled kernel."""

from __future__ import annotations

import warnings

import pytest
import torch
from sparse_helpers import PATTERNS, UNCOMPILED_FLEX, brute_force, call_registered, pattern_mask, sparse_model
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, causal_mask_function

import maia_hf.sparse_attention as sparse
from maia_hf import MaiaConfig
from maia_hf.sparse_attention import FlexSparseMask

pytestmark = UNCOMPILED_FLEX


def blocks_visited(block_mask):
    """(B, H, q_blocks, kv_blocks) booleans: partial and full blocks as FlexAttention will visit them."""

    def dense(num, indices):
        out = torch.zeros(*indices.shape[:-1], indices.shape[-1], dtype=torch.bool)
        for index in torch.cartesian_prod(*(torch.arange(s) for s in indices.shape[:-1])).tolist():
            out[tuple(index)][indices[tuple(index)][: num[tuple(index)]].long()] = True
        return out

    partial = dense(block_mask.kv_num_blocks, block_mask.kv_indices)
    full = dense(block_mask.full_kv_num_blocks, block_mask.full_kv_indices)
    return partial, full


def check_block_structure(mask: FlexSparseMask, batch, n_head):
    """Every allowed element lies in a visited block; every 'full' block (mask_mod skipped) is all allowed."""
    block_mask = mask.block_mask
    q_len, kv_len = block_mask.seq_lengths
    size_q, size_kv = block_mask.BLOCK_SIZE
    b, h = torch.arange(batch)[:, None, None, None], torch.arange(n_head)[None, :, None, None]
    elements = block_mask.mask_mod(b, h, torch.arange(q_len)[None, None, :, None], torch.arange(kv_len))
    elements = elements.expand(batch, n_head, q_len, kv_len)
    partial, full = blocks_visited(block_mask)
    assert not (partial & full).any()
    visited = (partial | full).expand(batch, n_head, -1, -1)
    full = full.expand(batch, n_head, -1, -1)
    for qb in range(visited.shape[2]):
        for kb in range(visited.shape[3]):
            tile = elements[:, :, qb * size_q : (qb + 1) * size_q, kb * size_kv : (kb + 1) * size_kv]
            assert (visited[:, :, qb, kb] | ~tile.flatten(2).any(-1)).all(), (qb, kb)
            assert (~full[:, :, qb, kb] | tile.flatten(2).all(-1)).all(), (qb, kb)
    return visited[0, 0]


class TestFlexBlockStructure:
    @pytest.mark.parametrize("name", list(PATTERNS))
    @pytest.mark.parametrize("n", [8, 100, 300])
    def test_plain_sequences(self, name, n):
        q, k, v = (torch.zeros(1, 4, n, 16) for _ in range(3))
        _, mask = call_registered(name, "flex", q, k, v)
        check_block_structure(mask, 1, 4)

    @pytest.mark.parametrize("name", list(PATTERNS))
    def test_padding_and_cache(self, name):
        q, (k, v) = torch.zeros(2, 4, 3, 16), (torch.zeros(2, 4, 200, 16) for _ in range(2))
        attention_mask = torch.ones(2, 200, dtype=torch.long)
        attention_mask[0, :50] = 0
        _, mask = call_registered(name, "flex", q, k, v, q_offset=197, attention_mask=attention_mask)
        check_block_structure(mask, 2, 4)

    def test_fixed_skips_blocks(self):
        # 1024 tokens, l = 128, c = 16: query block L visits ceil(16 L / 128) summary blocks and 1 own block.
        config = MaiaConfig(sparse_block=128, sparse_summary=16, sparse_backend="flex", n_head=2, n_embd=32)
        mask = ALL_MASK_ATTENTION_FUNCTIONS["maia_sparse_fixed"](
            batch_size=1, q_length=1024, kv_length=1024, mask_function=causal_mask_function, config=config
        )
        visited = check_block_structure(mask, 1, 1)
        assert visited.sum(-1).tolist() == [1, 2, 2, 2, 2, 2, 2, 2]
        assert visited.sum() == 15  # dense causal attention visits 36 blocks of 128 x 128


def test_flex_leaves_short_query_runs_to_sdpa(monkeypatch):
    # Decoding steps and short prompts fit in one query block: nothing to skip, and no recompiles.
    monkeypatch.setattr(sparse, "FLEX_MIN_QUERIES", 128)
    q, k, v = torch.zeros(1, 4, 1, 16), torch.zeros(1, 4, 300, 16), torch.zeros(1, 4, 300, 16)
    _, decode = call_registered("fixed", "flex", q, k, v, q_offset=299)
    q = torch.zeros(1, 4, 300, 16)
    _, prefill = call_registered("fixed", "flex", q, k, v)
    assert isinstance(decode, torch.Tensor) and decode.shape == (1, 1, 1, 300)
    assert isinstance(prefill, FlexSparseMask)


class TestFlexFallback:
    def test_cpu_training_falls_back_to_sdpa_with_a_message(self):
        flex, sdpa = sparse_model("fixed", "flex", attn_pdrop=0.0), sparse_model("fixed", "sdpa", attn_pdrop=0.0)
        ids = torch.randint(4, 200, (2, 30))
        losses = []
        with pytest.warns(UserWarning, match="FlexAttention has no backward pass on CPU.*sparse_backend='sdpa'"):
            for model in (flex, sdpa):
                loss = model(ids, labels=ids).loss
                loss.backward()
                losses.append(loss)
        torch.testing.assert_close(losses[0], losses[1])
        grads = [m.transformer.h[0].attn.c_attn.weight.grad for m in (flex, sdpa)]
        torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-5)

    def test_dropout_falls_back_too(self):
        model = sparse_model("strided", "flex", attn_pdrop=0.5).train()
        with torch.no_grad(), pytest.warns(UserWarning, match=r"no attention dropout \(attn_pdrop=0.5\)"):
            model(torch.randint(4, 200, (1, 20)))

    def test_warns_once(self):
        model = sparse_model("fixed", "flex").train()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(3):
                model(torch.randint(4, 200, (1, 20)), labels=torch.randint(4, 200, (1, 20))).loss.backward()
        assert sum("maia sparse attention" in str(w.message) for w in caught) == 1


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PATTERNS))
def test_compiled_flex_equals_brute_force(monkeypatch, name):
    # The compiled kernel visits only the listed blocks and skips mask_mod in 'full' ones (~1 min to compile).
    import torch.nn.attention.flex_attention as flex

    monkeypatch.setattr(sparse, "COMPILE_FLEX", True)
    monkeypatch.setattr(flex, "_FLEX_ATTENTION_DISABLE_COMPILE_DEBUG", False, raising=False)
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 4, 1000, 32) for _ in range(3))
    output, _ = call_registered(name, "flex", q, k, v, block=128, summary=16)
    expected = brute_force(q, k, v, pattern_mask(name, 1000, block=128, summary=16), 0.3)
    torch.testing.assert_close(output, expected, atol=1e-5, rtol=1e-5)
