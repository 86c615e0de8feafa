"""Every backend, through the registered mask and attention functions, against brute-force attention."""

from __future__ import annotations

import pytest
import torch
from sparse_helpers import BACKENDS, PATTERNS, UNCOMPILED_FLEX, brute_force, call_registered, pattern_mask

pytestmark = UNCOMPILED_FLEX


class TestBackendsEqualBruteForce:
    @pytest.mark.parametrize("backend", BACKENDS)
    @pytest.mark.parametrize("name", list(PATTERNS))
    @pytest.mark.parametrize("n", [5, 37, 130])
    def test_whole_sequence(self, backend, name, n):
        torch.manual_seed(n)
        q, k, v = (torch.randn(2, 4, n, 16) for _ in range(3))
        output, _ = call_registered(name, backend, q, k, v)
        torch.testing.assert_close(output, brute_force(q, k, v, pattern_mask(name, n), 0.3), atol=1e-5, rtol=1e-5)

    @pytest.mark.parametrize("backend", BACKENDS)
    @pytest.mark.parametrize("name", list(PATTERNS))
    def test_queries_after_a_cache_and_left_padding(self, backend, name):
        # 3 new queries over 40 keys; row 0 has 6 pads on the left, so its positions are index - 6.
        torch.manual_seed(1)
        q, (k, v) = torch.randn(2, 4, 3, 16), (torch.randn(2, 4, 40, 16) for _ in range(2))
        pads = 6
        attention_mask = torch.ones(2, 40, dtype=torch.long)
        attention_mask[0, :pads] = 0
        output, _ = call_registered(name, backend, q, k, v, q_offset=37, attention_mask=attention_mask)
        full = pattern_mask(name, 40)
        expected_1 = brute_force(q[1:], k[1:], v[1:], full[..., 37:, :], 0.3)
        expected_0 = brute_force(q[:1], k[:1, :, pads:], v[:1, :, pads:], full[..., 37 - pads : 40 - pads, :34], 0.3)
        torch.testing.assert_close(output[1:], expected_1, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(output[:1], expected_0, atol=1e-5, rtol=1e-5)
