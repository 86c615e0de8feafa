"""How a corpus is cut into rows: the split of each piece, the keys it is written in, its windows.

The rules (also in ``docs/data.md``):

* **Split by piece.** A piece's split is a function of its id alone (a hash of the file's bytes,
  plus the tune number for files with several tunes), so a piece, its windows and its transpositions
  never cross splits, and rebuilding from the same files gives the same splits (:func:`assign_split`).
* **Augmentation.** Training pieces are written once per transposition (default -5..+6, 12 keys);
  validation and test pieces in their original key only (:func:`parse_transpositions`).
* **Windows.** A sequence ``<start> <composer:NAME> words... <end>`` of L tokens is cut into windows of
  ``seq_len`` tokens starting every ``stride = seq_len - round(seq_len * overlap)`` tokens. The last,
  partial window is moved back to end on the ``<end>`` token, so every window is ``seq_len`` long
  and no token is lost; a sequence of at most ``seq_len`` tokens is a single, shorter window
  (:func:`window_starts`, :func:`cut_windows`, columns in :func:`dataset_features`).
"""

from __future__ import annotations

import hashlib

import numpy as np

from ..errors import MaiaInputError

__all__ = [
    "DEFAULT_TRANSPOSITIONS",
    "assign_split",
    "cut_windows",
    "dataset_features",
    "parse_transpositions",
    "window_starts",
]

DEFAULT_TRANSPOSITIONS = tuple(range(-5, 7))


def parse_transpositions(value) -> tuple[int, ...]:
    """Transposition offsets from a count of keys, a range ``A..B``, a list ``0,2,-2``, or integers.

    A count N gives N keys around the original: ``-((N - 1) // 2) .. N // 2``.

    >>> parse_transpositions(12), parse_transpositions("1"), parse_transpositions("-2..1"), parse_transpositions("0,7")
    ((-5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6), (0,), (-2, -1, 0, 1), (0, 7))
    """
    try:
        if isinstance(value, str) and ".." in value:
            low, high = (int(v) for v in value.split(".."))
            offsets = tuple(range(low, high + 1))
        elif isinstance(value, str) and "," in value:
            offsets = tuple(int(v) for v in value.split(",") if v.strip())
        elif isinstance(value, (str, int)):
            count = int(value)
            if count < 1:
                raise MaiaInputError(
                    f"transpositions {value!r}: a count of keys must be at least 1 (1 keeps only the original key, "
                    "12 gives all twelve)"
                )
            offsets = tuple(range(-((count - 1) // 2), count // 2 + 1))
        else:
            offsets = tuple(int(v) for v in value)
    except MaiaInputError:
        raise
    except ValueError:
        raise MaiaInputError(
            f"transpositions {value!r} should be a number of keys (12), a range (-5..6) or a list (0,2,-2)"
        ) from None
    if not offsets or any(abs(k) > 24 for k in offsets) or len(set(offsets)) != len(offsets):
        raise MaiaInputError(f"transpositions {value!r} must be distinct offsets within -24..24, at least one")
    return offsets


def assign_split(piece_id: str, validation_fraction: float = 0.05, test_fraction: float = 0.05) -> str:
    """The split of a piece: a hash of its id mapped to [0, 1), cut at the fractions.

    >>> assign_split("3f2a9c", 0.0, 0.0), assign_split("3f2a9c", 0.0, 1.0)
    ('train', 'test')
    """
    digest = hashlib.sha256(f"maia-split|{piece_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < test_fraction:
        return "test"
    if u < test_fraction + validation_fraction:
        return "validation"
    return "train"


def window_starts(n_tokens: int, seq_len: int, stride: int) -> np.ndarray:
    """Start of each window of a sequence: every ``stride`` tokens, the last one moved back to end on the end.

    >>> window_starts(10, 4, 2).tolist(), window_starts(11, 4, 2).tolist(), window_starts(3, 4, 2).tolist()
    ([0, 2, 4, 6], [0, 2, 4, 6, 7], [0])
    """
    if n_tokens <= seq_len:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(0, n_tokens - seq_len + 1, stride)
    if starts[-1] + seq_len < n_tokens:
        starts = np.append(starts, n_tokens - seq_len)
    return starts


def dataset_features(windows: bool = True):
    """The columns of every split, or (``windows=False``) of the sequences written before cutting.

    Sequences carry their tokens as the bytes of an int32 array: ``datasets`` converts one bytes
    value per row at once, where a list of ints costs a Python object per token.
    """
    from datasets import Features, List, Value

    columns = {
        "piece_id": Value("string"),
        "composer": Value("string"),
        "source": Value("string"),
        "transpose": Value("int8"),
        "window_start": Value("int32"),
        "n_tokens": Value("int32"),
        "n_notes": Value("int32"),
        "input_ids": List(Value("int32")),
    }
    if not windows:
        del columns["window_start"], columns["input_ids"]
        columns["tokens"] = Value("binary")
    return Features(columns)


def cut_windows(sequences, seq_len: int, stride: int):
    """Cut a batch of sequences (a ``pyarrow.Table`` with a binary ``tokens`` column) into windows.

    Every other column is repeated for each window of its sequence (see :func:`window_starts`), and
    ``window_start`` and ``input_ids`` are added. Vectorized: this is ``Dataset.map``'s function in
    Arrow format, on batches of a few sequences.
    """
    import pyarrow as pa

    arrays = [np.frombuffer(b, dtype="<i4") for b in sequences.column("tokens").to_pylist()]
    values = np.concatenate(arrays) if arrays else np.zeros(0, dtype="<i4")
    lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    firsts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)  # sequence starts in `values`
    starts = [window_starts(int(n), seq_len, stride) for n in lengths]
    row = np.repeat(np.arange(len(lengths)), [len(s) for s in starts])
    start = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
    size = np.minimum(lengths[row], seq_len)
    offsets = np.concatenate([[0], np.cumsum(size)])
    # Token j of window w is values[firsts[row[w]] + start[w] + j].
    within = np.arange(offsets[-1]) - np.repeat(offsets[:-1], size)
    taken = values[np.repeat(firsts[row] + start, size) + within]
    windows = sequences.drop_columns(["tokens"]).take(pa.array(row))
    windows = windows.append_column("window_start", pa.array(start, type=pa.int32()))
    input_ids = pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), pa.array(taken, type=pa.int32()))
    windows = windows.append_column("input_ids", input_ids)
    return windows.select(list(dataset_features()))
