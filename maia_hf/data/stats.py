"""Figures of a built corpus: pieces, notes, tokens and windows per split and composer; a PNG.

Everything is computed from the dataset itself (the small columns, never ``input_ids`` except for
the token frequencies), so ``maia data stats DIR`` gives the same table as the build did.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

__all__ = ["SPLITS", "StatsRow", "dataset_stats", "format_stats", "plot_stats", "stats_markdown"]

SPLITS = ("train", "validation", "test")
ALL = "(all)"
_COLUMNS = ["piece_id", "composer", "transpose", "window_start", "n_tokens", "n_notes"]


@dataclass
class StatsRow:
    """One line of the table: a split and a composer (or ``(all)``).

    ``sequences`` counts pieces times keys (a training piece in 12 keys is 12 sequences); ``notes``
    and ``tokens`` are summed over the sequences; ``windows`` are the dataset rows.
    """

    split: str
    composer: str
    pieces: int
    sequences: int
    notes: int
    tokens: int
    windows: int

    def to_dict(self) -> dict:
        return asdict(self)


def dataset_stats(dataset_dict) -> list[StatsRow]:
    """Per split: a total row, then one row per composer (most pieces first)."""
    rows = []
    for split in [s for s in SPLITS if s in dataset_dict] + [s for s in dataset_dict if s not in SPLITS]:
        frame = dataset_dict[split].select_columns(_COLUMNS).to_pandas()
        rows.append(_row(split, ALL, frame))
        composers = frame.groupby("composer")["piece_id"].nunique().sort_values(ascending=False, kind="stable")
        rows.extend(_row(split, composer, frame[frame["composer"] == composer]) for composer in composers.index)
    return rows


def _row(split: str, composer: str, frame) -> StatsRow:
    first = frame[frame["window_start"] == 0]  # one row per sequence
    return StatsRow(
        split,
        composer,
        pieces=int(frame["piece_id"].nunique()),
        sequences=len(first),
        notes=int(first["n_notes"].sum()),
        tokens=int(first["n_tokens"].sum()),
        windows=len(frame),
    )


_HEADER = ("split", "composer", "pieces", "sequences", "notes", "tokens", "windows")


def format_stats(rows: list[StatsRow]) -> str:
    """The table as aligned text for the console."""
    width = max([len(r.composer) for r in rows] + [16])
    lines = [f"{'split':<10} {'composer':<{width}} " + " ".join(f"{h:>11}" for h in _HEADER[2:])]
    for r in rows:
        figures = (r.pieces, r.sequences, r.notes, r.tokens, r.windows)
        lines.append(f"{r.split:<10} {r.composer:<{width}} " + " ".join(f"{n:>11,}" for n in figures))
    return "\n".join(lines)


def stats_markdown(rows: list[StatsRow]) -> str:
    """The table as Markdown (the dataset card and ``docs/data.md``)."""
    lines = ["| " + " | ".join(_HEADER) + " |", "|---|---|" + "---:|" * 5]
    for r in rows:
        name = f"**{r.composer}**" if r.composer == ALL else r.composer
        figures = (r.pieces, r.sequences, r.notes, r.tokens, r.windows)
        lines.append(f"| {r.split} | {name} | " + " | ".join(f"{n:,}" for n in figures) + " |")
    return "\n".join(lines)


def plot_stats(dataset_dict, path, tokenizer=None) -> Path:
    """Write a PNG: piece lengths in tokens (original key) per split, and token frequencies in training.

    Args:
        dataset_dict (`DatasetDict`): a corpus built by :func:`~maia_hf.data.build_dataset`.
        path (`str` or `Path`): the PNG to write.
        tokenizer (`MaiaTokenizer`, *optional*): names the token kinds (note-on, note-off, wait...).
    """
    from ..plotting import pyplot

    plt = pyplot()

    fig, (lengths_ax, tokens_ax) = plt.subplots(2, 1, figsize=(10, 8))
    lengths = {}
    for split in [s for s in SPLITS if s in dataset_dict]:
        frame = dataset_dict[split].select_columns(_COLUMNS).to_pandas()
        first = frame[(frame["window_start"] == 0) & (frame["transpose"] == 0)]
        lengths[split] = first["n_tokens"].to_numpy()
    every = np.concatenate(list(lengths.values()) or [np.ones(1)])
    bins = np.geomspace(max(1, every.min()), every.max() + 1, 40)
    for split, values in lengths.items():
        if len(values):
            lengths_ax.hist(values, bins=bins, alpha=0.6, label=f"{split} ({len(values):,} pieces)")
    lengths_ax.set_xscale("log")
    lengths_ax.set_xlabel("piece length in tokens (original key, with <start> <composer> <end>)")
    lengths_ax.set_ylabel("pieces")
    lengths_ax.set_title("Piece lengths")
    lengths_ax.legend()

    split = "train" if "train" in dataset_dict and len(dataset_dict["train"]) else next(iter(dataset_dict))
    counts = token_counts(dataset_dict[split])
    kinds = _token_kinds(len(counts), tokenizer)
    for kind, (ids, color) in kinds.items():
        ids = ids[ids < len(counts)]
        if len(ids):
            tokens_ax.bar(ids, counts[ids], width=1.0, color=color, label=kind)
    tokens_ax.set_yscale("log")
    tokens_ax.set_xlabel("token id")
    tokens_ax.set_ylabel("occurrences")
    tokens_ax.set_title(f"Token frequencies in the {split} windows ({int(counts.sum()):,} tokens)")
    tokens_ax.legend(ncol=len(kinds), fontsize="small")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def token_counts(dataset) -> np.ndarray:
    """Occurrences of each token id in a split's windows, read chunk by chunk from the Arrow table."""
    counts = np.zeros(0, dtype=np.int64)
    column = dataset.data.table.column("input_ids") if len(dataset) else None
    for chunk in column.chunks if column is not None else []:
        values = chunk.flatten().to_numpy(zero_copy_only=False)
        chunk_counts = np.bincount(values)
        if len(chunk_counts) > len(counts):
            counts = np.pad(counts, (0, len(chunk_counts) - len(counts)))
        counts[: len(chunk_counts)] += chunk_counts
    return counts


def _token_kinds(size: int, tokenizer) -> dict[str, tuple[np.ndarray, str]]:
    ids = np.arange(size)
    if tokenizer is None:
        return {"tokens": (ids, "tab:blue")}
    codec, offset = tokenizer.codec, tokenizer.codec_offset
    word = ids - offset
    inside = (word >= 0) & (word < codec.size)
    kinds = {
        "note-on": (ids[inside & (word < codec.off_offset)], "tab:blue"),
        "note-off": (ids[inside & (word >= codec.off_offset) & (word < codec.wait_offset)], "tab:orange"),
        "wait": (ids[inside & (word >= codec.wait_offset) & (word < codec.velocity_offset)], "tab:green"),
        "velocity": (ids[inside & (word >= codec.velocity_offset)], "tab:purple"),
        "special, composer": (ids[~inside], "tab:red"),
    }
    return {k: v for k, v in kinds.items() if len(v[0])}
