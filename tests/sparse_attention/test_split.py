"""The ``"split"`` backend: exact outputs and gradients, half precision, training, and its fallbacks."""

from __future__ import annotations

import warnings

import pytest
import torch
from sparse_helpers import PATTERNS, UNCOMPILED_FLEX, brute_force, call_registered, pattern_mask, sparse_model

from maia_hf.sparse_attention import SplitSparseMask

pytestmark = UNCOMPILED_FLEX


class TestSplitBackend:
    # Lengths below, at and across l, ragged last blocks, the paper's sizes, and l = 1 and 2 (no or a
    # one-key "previous block" tile for strided); per-head summaries need l / c >= 2.
    @pytest.mark.parametrize(
        ("name", "n", "block", "summary"),
        [
            (name, n, block, summary)
            for name in PATTERNS
            for n, block, summary in [(5, 8, 2), (37, 8, 2), (130, 8, 2), (300, 128, 16), (23, 2, 1), (23, 1, 1)]
            if not (name == "fixed-per-head" and block // summary < 2)
        ],
    )
    def test_gradients_equal_brute_force(self, name, n, block, summary):
        torch.manual_seed(n)
        q, k, v = (torch.randn(2, 4, n, 16, dtype=torch.float64, requires_grad=True) for _ in range(3))
        output, mask = call_registered(name, "split", q, k, v, block=block, summary=summary)
        assert isinstance(mask, SplitSparseMask)  # the split path ran, not a fallback
        expected = brute_force(q, k, v, pattern_mask(name, n, block=block, summary=summary), 0.3)
        torch.testing.assert_close(output, expected, atol=1e-10, rtol=1e-10)
        grad = torch.randn_like(output)
        for ours, theirs in zip(
            torch.autograd.grad(output, (q, k, v), grad), torch.autograd.grad(expected, (q, k, v), grad), strict=True
        ):
            torch.testing.assert_close(ours, theirs, atol=1e-10, rtol=1e-10)

    def test_half_precision_keeps_the_kernels_float_log_sum_exp(self):
        torch.manual_seed(0)
        q, k, v = (torch.randn(1, 4, 300, 16, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
        output, _ = call_registered("fixed", "split", q, k, v, block=128, summary=16)
        output.float().sum().backward()  # the kernel's backward wants its float32 log-sum-exp back
        reference = [t.detach().float().requires_grad_() for t in (q, k, v)]
        expected = brute_force(*reference, pattern_mask("fixed", 300, block=128, summary=16), 0.3)
        expected.sum().backward()
        assert output.dtype == torch.bfloat16
        torch.testing.assert_close(output.float(), expected, atol=3e-2, rtol=3e-2)
        torch.testing.assert_close(q.grad.float(), reference[0].grad, atol=3e-2, rtol=3e-2)

    def test_model_trains_on_cpu_without_a_fallback(self):
        split, sdpa = sparse_model("fixed", "split", attn_pdrop=0.0), sparse_model("fixed", "sdpa", attn_pdrop=0.0)
        ids = torch.randint(4, 200, (2, 30))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "computing with SDPA instead"
            losses = [m(ids, labels=ids).loss for m in (split, sdpa)]
            for loss in losses:
                loss.backward()
        torch.testing.assert_close(losses[0], losses[1])
        grads = [m.transformer.h[0].attn.c_attn.weight.grad for m in (split, sdpa)]
        torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-5)

    @pytest.mark.parametrize("name", ["fixed", "strided"])
    def test_padding_and_cached_steps_use_the_dense_mask(self, name):
        q, k, v = (torch.randn(2, 4, 20, 16) for _ in range(3))
        padded = torch.ones(2, 20, dtype=torch.long)
        padded[0, :3] = 0
        _, mask = call_registered(name, "split", q, k, v, attention_mask=padded)
        assert mask.dtype == torch.bool and mask.shape[-2:] == (20, 20)
        _, mask = call_registered(name, "split", q[:, :, -1:], k, v, q_offset=19)
        assert mask.dtype == torch.bool and mask.shape[-2:] == (1, 20)

    def test_dropout_falls_back_to_sdpa(self):
        model = sparse_model("fixed", "split", attn_pdrop=0.5).train()
        with torch.no_grad(), pytest.warns(UserWarning, match=r"split backend has no attention dropout"):
            model(torch.randint(4, 200, (1, 20)))
