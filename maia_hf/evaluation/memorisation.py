"""Memorisation: the longest stretch of each generated piece that occurs verbatim in the training set.

For every position ``i`` of a piece, :func:`longest_matches` finds the longest ``L`` such that words
``i .. i+L-1`` occur, in that order and contiguously, inside one training sequence. From it,
:func:`copied_spans` gives each piece's longest copied n-gram (in words) and its longest copied span
in time (steps from the first to the last note word of the copied stretch; two 4/4 bars are 96 steps
at 12 steps a quarter). :func:`memorisation_report` does both, counting a copy in any key: the piece is
also compared transposed by -6..+5 semitones, as the model saw its training pieces in 12 keys.

How: rolling polynomial hashes (mod 2^64) of every window of length L of the corpus, for L on a grid
(1..8, then steps of about sqrt(2)), tell which positions of the pieces match at each L; between two
grid lengths the match is extended word by word against the corpus positions that share the hash,
so lengths are exact (up to a 64-bit hash collision, about one chance in 10^12 per query on a large
corpus). Cost: one hash and sort of the corpus per grid length reached, plus the pieces.

Example:

```python
>>> import numpy as np
>>> from maia_hf.evaluation.memorisation import longest_matches
>>> longest_matches([np.array([1, 2, 3, 9, 2, 3])], [np.array([0, 1, 2, 3, 4]), np.array([2, 3, 5])])[0].tolist()
[3, 2, 1, 0, 2, 1]

```
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..codec import NotewiseCodec

__all__ = ["PieceCopy", "copied_spans", "grid_lengths", "longest_matches", "memorisation_report", "transpose_words"]

_SEPARATOR = -1  # between corpus sequences; never a word
_INVALID = -2  # a query word that cannot match (a pitch transposed out of range)
_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd, so invertible mod 2^64


def grid_lengths(longest: int) -> list[int]:
    """The n-gram lengths hashed in full: 1..8, then about sqrt(2) apart, up to ``longest``.

    >>> grid_lengths(100)
    [1, 2, 3, 4, 5, 6, 7, 8, 11, 16, 23, 32, 45, 64, 91, 100]
    """
    lengths = list(range(1, min(8, longest) + 1))
    k = 1
    while lengths and lengths[-1] < longest:
        lengths.append(min(longest, round(8 * 2 ** (k / 2))))
        k += 1
    return lengths


class _Hashes:
    """Prefix hashes of a token array: the hash of any window in O(1), vectorized."""

    def __init__(self, tokens: np.ndarray):
        n = len(tokens)
        inverse = pow(int(_BASE), -1, 2**64)
        with np.errstate(over="ignore"):
            self.power = np.cumprod(np.full(n + 1, _BASE, dtype=np.uint64))  # B^1 .. B^(n+1)
            self.power = np.concatenate([[np.uint64(1)], self.power[:-1]])  # B^0 .. B^n
            inverse_power = np.cumprod(np.full(n, np.uint64(inverse), dtype=np.uint64))
            inverse_power = np.concatenate([[np.uint64(1)], inverse_power[:-1]])  # B^-0 .. B^-(n-1)
            values = (tokens + 3).astype(np.uint64)  # separators and invalid words hash too
            # prefix[k] = sum_{j<k} v_j B^(k-1-j) = B^(k-1) * sum_{j<k} v_j B^-j
            scaled = np.cumsum(values * inverse_power, dtype=np.uint64)
            self.prefix = np.concatenate([[np.uint64(0)], scaled * self.power[:n]])
        self.bad = np.concatenate([[0], np.cumsum(tokens < 0)])  # separators or invalid words before k

    def windows(self, length: int, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Hashes of the windows ``[s, s+length)`` and whether each lies inside one sequence."""
        with np.errstate(over="ignore"):
            hashes = self.prefix[starts + length] - self.prefix[starts] * self.power[length]
        return hashes, self.bad[starts + length] == self.bad[starts]


def _join(sequences: list[np.ndarray], pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Sequences joined with a separator after each (and ``pad`` more at the end); their start offsets."""
    parts, starts, offset = [], [], 0
    for seq in sequences:
        seq = np.asarray(seq, dtype=np.int64).reshape(-1)
        parts += [seq, np.array([_SEPARATOR])]
        starts.append(offset)
        offset += len(seq) + 1
    parts.append(np.full(pad, _SEPARATOR, dtype=np.int64))
    return np.concatenate(parts), np.array(starts, dtype=np.int64)


def longest_matches(queries: list[np.ndarray], corpus: list[np.ndarray]) -> list[np.ndarray]:
    """For each position of each query, the length of the longest n-gram starting there that occurs in the corpus.

    Args:
        queries (`list[np.ndarray]`): word (or token) sequences, e.g. generated pieces; negative entries never match.
        corpus (`list[np.ndarray]`): the sequences to search, e.g. the training pieces; an n-gram must lie
            inside one of them.

    Returns:
        `list[np.ndarray]`: per query, one length per position (0 where even the word is absent).
    """
    longest_query = max((len(q) for q in queries), default=0)
    grid = grid_lengths(longest_query)
    gap = max((b - a for a, b in zip(grid, grid[1:], strict=False)), default=1)
    text, _ = _join(corpus, pad=gap + 1)
    query, starts = _join(queries, pad=0)
    query = np.where(query == _SEPARATOR, _INVALID, query)  # a query separator never matches the corpus's
    text_hashes, query_hashes = _Hashes(text), _Hashes(query)
    best = np.zeros(len(query), dtype=np.int64)
    positions = np.arange(len(query), dtype=np.int64)
    previous = None  # the last grid length with a match: (length, its corpus table, query positions matched)
    for length in grid:
        matched = np.zeros(0, dtype=np.int64)
        if length <= len(text) - gap - 1:
            starts_text = np.arange(len(text) - gap - length, dtype=np.int64)
            hashes, inside = text_hashes.windows(length, starts_text)
            order = np.argsort(hashes[inside], kind="stable")
            table = (hashes[inside][order], starts_text[inside][order])
            candidates = positions[positions + length <= len(query)]
            q_hashes, q_inside = query_hashes.windows(length, candidates)
            matched = candidates[q_inside & _isin_sorted(q_hashes, table[0])]
            best[matched] = length
        if previous is not None:
            # Positions that matched the previous grid length but not this one: extend them word by word.
            last_length, last_table, last_matched = previous
            stopped = np.setdiff1d(last_matched, matched, assume_unique=True)
            if length - last_length > 1 and len(stopped):
                extra = _extend(query, text, query_hashes, last_table, last_length, stopped, length - last_length - 1)
                best[stopped] = last_length + extra
        if not len(matched):  # no longer n-gram can match
            break
        previous = (length, table, matched)
    ends = np.append(starts[1:], len(query)) - 1  # each query is followed by its separator
    return [best[a:b] for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]


def _isin_sorted(values: np.ndarray, sorted_table: np.ndarray) -> np.ndarray:
    if not len(sorted_table):
        return np.zeros(len(values), dtype=bool)
    at = np.clip(np.searchsorted(sorted_table, values), 0, len(sorted_table) - 1)
    return sorted_table[at] == values


def _extend(query, text, query_hashes, table, length, positions, reach, chunk=20_000) -> np.ndarray:
    """How many words past ``length`` each query position goes on matching some corpus occurrence (< reach)."""
    hashes, _ = query_hashes.windows(length, positions)
    lo = np.searchsorted(table[0], hashes, side="left")
    hi = np.searchsorted(table[0], hashes, side="right")
    offsets = np.arange(reach, dtype=np.int64)
    out = np.zeros(len(positions), dtype=np.int64)
    for k, (pos, a, b) in enumerate(zip(positions.tolist(), lo.tolist(), hi.tolist(), strict=True)):
        wanted = query[pos + length : pos + length + reach]
        if not len(wanted):
            continue
        for c in range(a, b, chunk):
            after = table[1][c : min(b, c + chunk)] + length
            same = text[after[:, None] + offsets[None, : len(wanted)]] == wanted[None, :]
            out[k] = max(out[k], int(np.cumprod(same, axis=1).sum(axis=1).max()))
            if out[k] == len(wanted):
                break
    return out


def transpose_words(words: np.ndarray, codec: NotewiseCodec, semitones: int) -> np.ndarray:
    """Codec word indices with every ``p``/``endp`` moved by ``semitones``; a pitch leaving the range becomes invalid.

    >>> codec = NotewiseCodec()
    >>> codec.indices_to_words(transpose_words(codec.words_to_indices("p60 wait6 endp60"), codec, 2))
    ['p62', 'wait6', 'endp62']
    """
    words = np.asarray(words, dtype=np.int64)
    is_note = words < codec.wait_offset
    pitch = words % codec.n_pitches  # relative to pitch_min, for both p and endp
    moved = pitch + semitones
    out = np.where(is_note, words + semitones, words)
    return np.where(is_note & ((moved < 0) | (moved >= codec.n_pitches)), _INVALID, out)


@dataclass
class PieceCopy:
    """What one piece shares with the corpus.

    Attributes:
        longest_ngram (`int`): words in its longest n-gram found in the corpus.
        longest_span_steps (`int`): steps from the first to the last note word of its longest copied stretch.
        span_start (`int`): the word where that stretch starts.
    """

    longest_ngram: int
    longest_span_steps: int
    span_start: int

    def copies_bars(self, bars: float, steps_per_bar: int = 48) -> bool:
        return self.longest_span_steps >= bars * steps_per_bar


def copied_spans(words: np.ndarray, matches: np.ndarray, codec: NotewiseCodec) -> PieceCopy:
    """The longest copied n-gram and the longest copied span in time of one piece, from :func:`longest_matches`.

    >>> codec = NotewiseCodec()
    >>> words = codec.words_to_indices("p60 wait12 endp60 p62 wait48 endp62")
    >>> copied_spans(words, np.array([4, 3, 2, 1, 0, 1]), codec)  # "p60 wait12 endp60 p62" is copied
    PieceCopy(longest_ngram=4, longest_span_steps=12, span_start=0)
    """
    words = np.asarray(words, dtype=np.int64)
    n = len(words)
    if n == 0 or matches.max(initial=0) == 0:
        return PieceCopy(0, 0, 0)
    is_wait = (words >= codec.wait_offset) & (words < codec.velocity_offset)
    steps = np.where(is_wait, words - codec.wait_offset + 1, 0)
    clock = np.cumsum(steps) - steps  # the time at each word
    index = np.arange(n)
    note = ~is_wait
    # The first note word at or after i, and the last one at or before j.
    next_note = np.minimum.accumulate(np.where(note, index, n)[::-1])[::-1]
    last_note = np.maximum.accumulate(np.where(note, index, -1))
    end = np.clip(index + matches - 1, 0, n - 1)
    a, b = np.minimum(next_note, n - 1), last_note[end]
    span = np.where((matches > 0) & (next_note <= end) & (b >= a), clock[b] - clock[a], 0)
    start = int(span.argmax())
    return PieceCopy(int(matches.max()), int(span[start]), start)


def memorisation_report(
    pieces: list[np.ndarray], corpus: list[np.ndarray], codec: NotewiseCodec, keys=range(-6, 6)
) -> list[PieceCopy]:
    """For each piece (codec word indices), what it copies from the corpus, in any of ``keys`` (semitones).

    Args:
        pieces (`list[np.ndarray]`): the pieces to check, as codec word indices (no special tokens).
        corpus (`list[np.ndarray]`): the training sequences in one key, as codec word indices.
        codec (`NotewiseCodec`): tells waits and pitches apart.
        keys (*optional*, defaults to -6..+5): transpositions of each piece that are compared too; with
            the corpus in its original key, these cover the 12 keys the model was trained in.
    """
    keys = list(keys) or [0]
    queries = [transpose_words(p, codec, -k) for k in keys for p in pieces]
    matches = longest_matches(queries, corpus)
    best = [np.max([matches[k * len(pieces) + i] for k in range(len(keys))], axis=0) for i in range(len(pieces))]
    return [copied_spans(p, m, codec) for p, m in zip(pieces, best, strict=True)]
