"""The training data order (`WindowBatches`) and padded batches (`collate`)."""

from __future__ import annotations

import pytest

from maia_hf.errors import MaiaInputError
from maia_hf.training import WindowBatches, collate


def test_collate_masks_padding_out_of_the_loss():
    batch = collate([[2, 5, 6], [2, 7]], seq_len=4, pad_id=0)
    assert batch["input_ids"].tolist() == [[2, 5, 6, 0], [2, 7, 0, 0]]
    assert batch["labels"].tolist() == [[2, 5, 6, -100], [2, 7, -100, -100]]


@pytest.fixture
def windows():
    from datasets import Dataset

    return Dataset.from_dict({"input_ids": [[2, 100 + i, 7] for i in range(20)]})


def test_ranks_split_each_global_batch_and_the_order_is_a_function_of_seed_and_epoch(windows):
    ranks = [WindowBatches(windows, 3, 4, 0, seed=5, rank=r, world=2) for r in (0, 1)]
    assert ranks[0].per_epoch == 20 // 6
    for epoch in (0, 1):
        seen = [row for index in range(ranks[0].per_epoch) for rank in ranks for row in rank.rows(epoch, index)]
        assert len(seen) == len(set(seen)) == 18  # no window twice in an epoch, none shared by the ranks
    again = WindowBatches(windows, 3, 4, 0, seed=5, rank=1, world=2)
    assert again.rows(1, 2) == ranks[1].rows(1, 2)  # a fresh object (a resumed run) sees the same batch
    assert ranks[0].rows(0, 0) != ranks[0].rows(1, 0)  # each epoch is a new permutation
    batch = ranks[1].batch(1, 2)
    assert batch["input_ids"][:, 1].tolist() == [100 + row for row in ranks[1].rows(1, 2)]


def test_fewer_windows_than_one_batch_is_an_error(windows):
    with pytest.raises(MaiaInputError, match="20 training windows are fewer than one batch of 16 x 2 processes"):
        WindowBatches(windows, 16, 4, 0, seed=0, rank=0, world=2)
