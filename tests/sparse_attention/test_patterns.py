"""The fixed and strided patterns (``fixed_pattern_mask``, ``strided_pattern_mask``) against the paper."""

from __future__ import annotations

import pytest
import torch
from sparse_helpers import UNCOMPILED_FLEX

from maia_hf.errors import MaiaInputError
from maia_hf.sparse_attention import fixed_pattern_mask, strided_pattern_mask

pytestmark = UNCOMPILED_FLEX


def paper_fixed(n, l, c, head=None):
    """Child et al. (2019) eq. for the fixed pattern, element by element: A1 = same block, A2 = summary."""
    start = l - c if head is None else l - c * (head % (l // c) + 1)
    return torch.tensor(
        [[j <= i and (j // l == i // l or start <= j % l < start + c) for j in range(n)] for i in range(n)]
    )


def paper_strided(n, l):
    """A1 = {max(0, i - l) .. i}, A2 = {j : (i - j) mod l = 0}, both causal."""
    return torch.tensor([[j <= i and (j >= max(0, i - l) or (i - j) % l == 0) for j in range(n)] for i in range(n)])


class TestPatterns:
    @pytest.mark.parametrize(("n", "l", "c"), [(1, 4, 1), (16, 4, 1), (37, 8, 2), (64, 16, 16), (20, 32, 4)])
    def test_fixed_matches_the_paper(self, n, l, c):
        assert torch.equal(fixed_pattern_mask(n, l, c), paper_fixed(n, l, c))

    @pytest.mark.parametrize(("n", "l"), [(1, 4), (16, 1), (37, 8), (50, 7)])
    def test_strided_matches_the_paper(self, n, l):
        assert torch.equal(strided_pattern_mask(n, l), paper_strided(n, l))

    def test_per_head_summaries_are_distinct_sub_blocks(self):
        n, l, c = 32, 16, 4
        masks = [fixed_pattern_mask(n, l, c, head=h) for h in range(6)]
        assert torch.equal(masks[0], fixed_pattern_mask(n, l, c))  # head 0: the last c positions
        assert torch.equal(masks[1], paper_fixed(n, l, c, head=1))
        last_row_summaries = [set(torch.nonzero(m[-1, :l]).flatten().tolist()) for m in masks[:4]]
        assert last_row_summaries == [{12, 13, 14, 15}, {8, 9, 10, 11}, {4, 5, 6, 7}, {0, 1, 2, 3}]
        assert torch.equal(masks[4], masks[0]) and torch.equal(masks[5], masks[1])  # l/c = 4 sub-blocks cycle

    def test_row_counts_are_sparse(self):
        # fixed: a row sees its own block and c per earlier block; strided: l back plus one per stride.
        n, l, c = 1024, 32, 4
        assert fixed_pattern_mask(n, l, c).sum(-1).max() == (n // l - 1) * c + l
        assert strided_pattern_mask(n, l).sum(-1).max() == l + (n - l) // l

    @pytest.mark.parametrize(
        ("call", "match"),
        [
            (lambda: fixed_pattern_mask(8, 4, 5), "sparse_summary must be between 1 and sparse_block"),
            (lambda: fixed_pattern_mask(8, 0, 0), "sparse_block must be a positive"),
            (lambda: strided_pattern_mask(8, 0), "sparse_block must be a positive"),
        ],
        ids=["summary>block", "block=0", "stride=0"],
    )
    def test_bad_sizes(self, call, match):
        with pytest.raises(MaiaInputError, match=match):
            call()
