"""Helpers of the corpus tests: made-up pieces, reading a built corpus, windows by sequence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from helpers import make_midi

SEQ_LEN, STRIDE = 64, 32
KEYS = tuple(range(-5, 7))


def piece_notes(seed: int, n_notes: int = 40) -> list[tuple[int, int, int, int]]:
    """A made-up piece: ``n_notes`` notes (pitch, start tick, duration, velocity) at 480 ticks a quarter."""
    rng = np.random.default_rng(seed)
    starts = np.cumsum(rng.integers(1, 4, n_notes) * 120)
    pitches = rng.integers(48, 84, n_notes)
    durations = rng.integers(1, 5, n_notes) * 120
    return [(int(p), int(s), int(d), 80) for p, s, d in zip(pitches, starts, durations, strict=True)]


def write_piece(path: Path, seed: int, n_notes: int = 40, extra=()) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return make_midi(path, [(piece_notes(seed, n_notes) + list(extra), False)])


# Notes outside the piano range 21..108: they fold, and a transposition must transpose then fold.
OUT_OF_RANGE = [(15, 0, 240, 80), (110, 480, 240, 80), (112, 480, 480, 80), (98, 600, 120, 80)]


def read_corpus(out: Path):
    from datasets import load_from_disk

    return load_from_disk(str(out))


def sequences_of(split) -> dict[tuple[str, int], list[dict]]:
    """The windows of each (piece_id, transpose), in order of their start."""
    grouped: dict[tuple[str, int], list[dict]] = {}
    for row in split:
        grouped.setdefault((row["piece_id"], row["transpose"]), []).append(row)
    return {key: sorted(rows, key=lambda r: r["window_start"]) for key, rows in grouped.items()}


def report_tokenizer_composers() -> list[str]:
    from maia_hf import MaiaTokenizer

    return MaiaTokenizer().composers
