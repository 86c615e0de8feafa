"""The training data: the corpus a run loads (or builds), its resumable order, and padded batches.

The data order is ours, not a shuffled DataLoader's: epoch ``e`` visits the training windows in the
permutation drawn from ``seed + e``, rank ``r`` of ``w`` takes every ``w``-th batch of it, and a
checkpoint records (epoch, batch); so ``--resume_from_checkpoint true`` continues with exactly the
batches an uninterrupted run would have seen, on any number of processes of the same world size.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import MaiaInputError

__all__ = ["WindowBatches", "collate", "load_or_build_corpus"]


def load_or_build_corpus(args, output_dir: Path, is_main: bool, wait):
    """The corpus in ``dataset_dir``, or one built from ``data_sources`` into ``output_dir/data`` (cached).

    Args:
        args (`DataArguments`): where the corpus is, or how to build it.
        output_dir (`Path`): the run's folder (the built corpus goes to its ``data/``).
        is_main (`bool`): whether this process builds; the others ``wait()`` for it.
        wait (`Callable[[], None]`): a barrier across processes (``accelerator.wait_for_everyone``).

    Returns:
        `tuple[DatasetDict, MaiaTokenizer]`: the splits and the tokenizer they were cut with.
    """
    from ..data import build_dataset, load_corpus

    path = Path(args.dataset_dir) if args.dataset_dir else output_dir / "data"
    if args.dataset_dir is None and is_main and not (path / "dataset_dict.json").exists():
        build_dataset(
            args.data_sources,
            path,
            seq_len=args.seq_len,
            overlap=args.overlap,
            transpositions=args.transpositions,
            validation_fraction=args.validation_fraction,
            test_fraction=args.test_fraction,
            num_proc=args.num_proc,
        )
    wait()
    corpus, _, tokenizer = load_corpus(path)
    if tokenizer is None:
        from ..tokenization_maia import MaiaTokenizer

        tokenizer = MaiaTokenizer()
    return corpus, tokenizer


class WindowBatches:
    """Deterministic, resumable batches of padded windows for one process.

    Epoch ``e`` is the permutation of ``range(len(dataset))`` drawn from ``seed + e``, cut into
    global batches of ``batch_size * world`` windows; this rank takes its slice of each.

    Args:
        dataset (`datasets.Dataset`): windows with an ``input_ids`` column.
        batch_size (`int`): windows per process per batch.
        seq_len (`int`): the padded length; pad_id (`int`): the padding id.
        seed (`int`): the order's seed; rank, world (`int`, *optional*, defaults to 0 and 1): this process.

    Example:

    ```python
    >>> from datasets import Dataset
    >>> from maia_hf.training import WindowBatches
    >>> windows = Dataset.from_dict({"input_ids": [[2, 10 + i] for i in range(8)]})
    >>> rank0 = WindowBatches(windows, batch_size=2, seq_len=3, pad_id=0, seed=0, rank=0, world=2)
    >>> rank1 = WindowBatches(windows, batch_size=2, seq_len=3, pad_id=0, seed=0, rank=1, world=2)
    >>> rank0.per_epoch, set(rank0.rows(0, 0)) & set(rank1.rows(0, 0))
    (2, set())
    >>> rank0.batch(0, 0)["input_ids"].shape
    torch.Size([2, 3])

    ```
    """

    def __init__(self, dataset, batch_size: int, seq_len: int, pad_id: int, seed: int, rank: int = 0, world: int = 1,
                 fim=None):  # fmt: skip
        self.dataset = dataset.with_format("python")
        self.fim = fim if fim is not None and fim.rate > 0 else None
        self.batch_size, self.seq_len, self.pad_id = batch_size, seq_len, pad_id
        self.seed, self.rank, self.world = seed, rank, world
        self.per_epoch = len(dataset) // (batch_size * world)
        self._order = None
        if self.per_epoch == 0:
            raise MaiaInputError(
                f"{len(dataset)} training windows are fewer than one batch of {batch_size} x {world} processes; "
                "lower per_device_train_batch_size or add data"
            )

    def rows(self, epoch: int, index: int) -> list[int]:
        """Dataset rows of batch ``index`` of epoch ``epoch`` for this rank."""
        if self._order is None or self._order[0] != epoch:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            self._order = (epoch, torch.randperm(len(self.dataset), generator=generator).tolist())
        start = index * self.batch_size * self.world + self.rank * self.batch_size
        return self._order[1][start : start + self.batch_size]

    def batch(self, epoch: int, index: int) -> dict[str, torch.Tensor]:
        """Batch ``index`` of epoch ``epoch`` for this rank: input_ids, attention_mask, labels.

        With a :class:`~maia_hf.data.FimTransform`, each window is drawn into fill-in-the-middle order or not
        from the seed, the epoch and its row, so the batch is the same however often the run was resumed.
        """
        rows = self.rows(epoch, index)
        columns = self.dataset[rows]
        windows = columns["input_ids"]
        if self.fim is not None:
            composers = columns.get("composer") or [None] * len(rows)
            windows = [
                self.fim(ids, key=epoch * len(self.dataset) + row, composer=composer)
                for ids, row, composer in zip(windows, rows, composers, strict=True)
            ]
        return collate(windows, self.seq_len, self.pad_id)


def collate(rows: list[list[int]], seq_len: int, pad_id: int) -> dict[str, torch.Tensor]:
    """Pad windows on the right to ``seq_len``; padding is masked out of attention and loss.

    Example:

    ```python
    >>> from maia_hf.training import collate
    >>> batch = collate([[2, 5, 6], [2, 7]], seq_len=4, pad_id=0)
    >>> batch["attention_mask"].tolist(), batch["labels"][1].tolist()
    ([[1, 1, 1, 0], [1, 1, 0, 0]], [2, 7, -100, -100])

    ```
    """
    input_ids = torch.full((len(rows), seq_len), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), seq_len), dtype=torch.long)
    for i, row in enumerate(rows):
        row = row[:seq_len]
        input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    labels = input_ids.masked_fill(mask == 0, -100)
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}
