"""Fill in the middle: the prefix-suffix-middle format, and the training transform that writes it.

A gap ``[start, end)`` (in steps) cuts a piece into three passages, and the model reads them as

``<start> <composer:NAME> <fim_prefix> PREFIX <fim_suffix> SUFFIX <fim_middle> MIDDLE <end>``

(``docs/encoding.md`` §10 is the specification). Each passage is self-contained notewise text: it starts with
nothing sounding and closes every note it starts. A note that sounds across a cut is cut there and struck
again on the other side. The prefix runs from its first note to the gap's start, trailing waits included;
the suffix is written from the gap's start, so its leading waits tell the model how long the gap is; the
middle's waits add up to exactly the gap. :func:`fim_ids` writes the format from notes,
:func:`split_at_gap` cuts the notes, and :class:`FimTransform` turns training windows into it at a rate.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import MaiaInputError
from ..notes import NoteArray

__all__ = ["FimParts", "FimTransform", "fim_ids", "fim_passages", "split_at_gap", "waits_ids"]

# A bar of 4/4 at 12 steps per quarter: the bar length the training transform assumes, since a window does
# not record where the piece's bar lines fall.
DEFAULT_BAR_STEPS = 48


class FimParts(NamedTuple):
    """A piece cut at a gap: three self-contained passages.

    Attributes:
        prefix (`NoteArray`): the notes before the gap, ending at ``gap_start`` at the latest (piece times).
        middle (`NoteArray`): the notes inside the gap, times from ``gap_start``.
        suffix (`NoteArray`): the notes after the gap, starting at ``gap_end`` at the earliest, times from
            ``gap_start`` (as the format writes them).
        gap_start, gap_end (`int`): the gap, in steps of the piece.
    """

    prefix: NoteArray
    middle: NoteArray
    suffix: NoteArray
    gap_start: int
    gap_end: int


def _clip(notes: NoteArray, keep, low: int | None, high: int | None, shift: int) -> NoteArray:
    """The ``keep`` notes, their times clipped to ``[low, high]`` (None: no limit), minus ``shift``."""
    start, end = notes.start[keep], notes.end[keep]
    if low is not None:
        start = np.maximum(start, low)
    if high is not None:
        end = np.minimum(end, high)
    return NoteArray(notes.pitch[keep], start - shift, end - shift, notes.velocity[keep])


def split_at_gap(notes: NoteArray, gap_start: int, gap_end: int) -> FimParts:
    """Cut ``notes`` (times in steps) into prefix, middle and suffix at ``[gap_start, gap_end)``.

    A note sounding across a cut is cut there and struck again on the other side, so no passage holds a note
    it did not start.

    Example:

    ```python
    >>> from maia_hf.codec import NoteArray
    >>> from maia_hf.data.fim import split_at_gap
    >>> notes = NoteArray.from_lists([60, 64, 67], [0, 40, 100], [60, 50, 110])  # p60 sounds across 48
    >>> parts = split_at_gap(notes, 48, 96)
    >>> parts.prefix.as_tuples(), parts.middle.as_tuples(), parts.suffix.as_tuples()
    ([(60, 0, 48), (64, 40, 48)], [(60, 0, 12), (64, 0, 2)], [(67, 52, 62)])

    ```
    """
    if not 0 <= gap_start < gap_end:
        raise MaiaInputError(f"a gap must start at step 0 or later and end after it, got [{gap_start}, {gap_end})")
    prefix = _clip(notes, notes.start < gap_start, None, gap_start, 0)
    middle = _clip(notes, (notes.start < gap_end) & (notes.end > gap_start), gap_start, gap_end, gap_start)
    suffix = _clip(notes, notes.end > gap_end, gap_end, None, gap_start)
    return FimParts(prefix.sorted(), middle.sorted(), suffix.sorted(), gap_start, gap_end)


def waits_ids(tokenizer, steps: int) -> list[int]:
    """The wait words that move time forward ``steps`` steps (``wait48`` ... then the remainder), as ids."""
    layout = tokenizer.layout
    full, rest = divmod(max(int(steps), 0), layout.max_wait)
    return [layout.wait + layout.max_wait - 1] * full + ([layout.wait + rest - 1] if rest else [])


def _passage(tokenizer, notes: NoteArray, until: int | None = None) -> list[int]:
    """The words of ``notes`` (times from 0), with waits to ``until`` after the last event."""
    ids = tokenizer.notes_to_ids(notes) if len(notes) else []
    if until is not None:
        ids += waits_ids(tokenizer, until - (int(notes.end.max()) if len(notes) else 0))
    return ids


def fim_ids(tokenizer, parts: FimParts, composer: str | None = None, with_middle: bool = True) -> list[int]:
    """The prefix-suffix-middle ids of ``parts``: the training sequence, or (``with_middle=False``) the
    context a model continues after ``<fim_middle>`` to fill the gap.

    Args:
        tokenizer (`MaiaTokenizer`): a vocabulary with the fill-in-the-middle tokens.
        parts (`FimParts`): from :func:`split_at_gap`.
        composer (`str`, *optional*): composer, any spelling (None: ``<composer:unknown>``).
        with_middle (`bool`, *optional*, defaults to `True`): end with the middle's words, the waits to the
            gap's end and ``<end>``.

    Example:

    ```python
    >>> from maia_hf import MaiaTokenizer
    >>> from maia_hf.codec import NoteArray
    >>> from maia_hf.data.fim import fim_ids, split_at_gap
    >>> tokenizer = MaiaTokenizer()
    >>> parts = split_at_gap(NoteArray.from_lists([60, 62, 64], [0, 48, 96], [12, 60, 108]), 48, 96)
    >>> print(tokenizer.decode(fim_ids(tokenizer, parts, "bach")).replace(" <fim_", "\\n<fim_"))
    <start> <composer:bach>
    <fim_prefix> p60 wait12 endp60 wait36
    <fim_suffix> wait48 p64 wait12 endp64
    <fim_middle> p62 wait12 endp62 wait36 <end>

    ```
    """
    layout = tokenizer.layout
    if not layout.has_fim:
        raise MaiaInputError(
            "this tokenizer has no fill-in-the-middle tokens; call tokenizer.add_fim_tokens() and train the model "
            "with fim_rate > 0 (or use a model trained to infill)"
        )
    prefix, suffix, middle = fim_passages(tokenizer, parts)
    ids = [tokenizer.bos_token_id, tokenizer.composer_token_id(composer), layout.fim_prefix, *prefix]
    ids += [layout.fim_suffix, *suffix, layout.fim_middle]
    if with_middle:
        ids += [*middle, tokenizer.eos_token_id]
    return ids


def fim_passages(tokenizer, parts: FimParts) -> tuple[list[int], list[int], list[int]]:
    """The word ids of the three passages, as the format writes them (without sentinels or ``<end>``):
    the prefix from its first note to the gap, the suffix from the gap's start, the middle filling the gap."""
    gap = parts.gap_end - parts.gap_start
    start = int(parts.prefix.start.min()) if len(parts.prefix) else parts.gap_start
    prefix = NoteArray(parts.prefix.pitch, parts.prefix.start - start, parts.prefix.end - start, parts.prefix.velocity)
    suffix = _passage(tokenizer, parts.suffix) if len(parts.suffix) else waits_ids(tokenizer, gap)
    return (
        _passage(tokenizer, prefix, until=parts.gap_start - start),
        suffix,
        _passage(tokenizer, parts.middle, until=gap),
    )


class FimTransform:
    """Turn training windows into prefix-suffix-middle order with probability ``rate``.

    Deterministic from ``(seed, key)``: the same window at the same place of the data order always becomes the
    same example, so a resumed run sees exactly the data of an uninterrupted one. The gap is 1 to ``max_bars``
    bars of ``bar_steps`` steps, at a bar of the window's own grid (a window does not record where the piece's
    bar lines fall); a window shorter than two bars stays left to right. A sequence longer than ``seq_len``
    loses tokens from the start of its prefix first, then from the end of its suffix, never from the middle.

    Args:
        tokenizer (`MaiaTokenizer`): with the fill-in-the-middle tokens.
        rate (`float`): share of windows transformed, in [0, 1].
        max_bars (`int`, *optional*, defaults to 4): longest gap, in bars.
        seq_len (`int`, *optional*, defaults to 512): longest sequence written.
        seed (`int`, *optional*, defaults to 0)
        bar_steps (`int`, *optional*, defaults to 48): steps in a bar (a 4/4 bar at 12 steps per quarter).

    Example:

    ```python
    >>> from maia_hf import MaiaTokenizer
    >>> from maia_hf.data import FimTransform
    >>> tokenizer = MaiaTokenizer()
    >>> window = tokenizer.encode_text(" ".join(f"p{60 + i} wait24 endp{60 + i}" for i in range(8)), composer="bach")
    >>> fim = FimTransform(tokenizer, rate=1.0, max_bars=2, seed=0)
    >>> out = fim(window, key=7)
    >>> out == fim(window, key=7), tokenizer.layout.fim_middle in out, out[-1] == tokenizer.eos_token_id
    (True, True, True)
    >>> FimTransform(tokenizer, rate=0.0)(window, key=7) == window
    True

    ```
    """

    def __init__(self, tokenizer, rate: float, max_bars: int = 4, seq_len: int = 512, seed: int = 0,
                 bar_steps: int = DEFAULT_BAR_STEPS):  # fmt: skip
        if not 0.0 <= float(rate) <= 1.0:
            raise MaiaInputError(f"fim_rate must be between 0 and 1, got {rate}")
        if int(max_bars) < 1:
            raise MaiaInputError(f"fim_max_bars must be at least 1 bar, got {max_bars}")
        if rate > 0 and not tokenizer.layout.has_fim:
            raise MaiaInputError("fim_rate > 0 needs a tokenizer with fill-in-the-middle tokens (add_fim_tokens())")
        self.tokenizer, self.rate, self.max_bars = tokenizer, float(rate), int(max_bars)
        self.seq_len, self.seed, self.bar_steps = int(seq_len), int(seed), int(bar_steps)

    def __call__(self, ids: list[int], key: int, composer: str | None = None) -> list[int]:
        """``ids`` (one window) in prefix-suffix-middle order, or unchanged; ``key`` names the draw."""
        if self.rate == 0.0:
            return list(ids)
        rng = np.random.default_rng([self.seed, int(key), 0x46494D])
        if rng.random() >= self.rate:
            return list(ids)
        parts = self.draw_gap(ids, rng)
        if parts is None:
            return list(ids)
        if composer is None:
            composer = self.tokenizer.layout.composer_of(ids)
        return self._fit(fim_ids(self.tokenizer, parts, composer))

    def draw_gap(self, ids: list[int], rng) -> FimParts | None:
        """Cut one window at a gap drawn with ``rng`` (None: the window is under two bars long)."""
        decoded = self.tokenizer.codec.decode(self.tokenizer.layout.codec_indices(ids))
        n_bars = decoded.total_steps // self.bar_steps
        if n_bars < 2 or len(decoded.notes) == 0:
            return None
        gap_bars = int(rng.integers(1, min(self.max_bars, n_bars - 1) + 1))
        first = int(rng.integers(0, n_bars - gap_bars + 1))
        return split_at_gap(decoded.notes, first * self.bar_steps, (first + gap_bars) * self.bar_steps)

    def _fit(self, ids: list[int]) -> list[int]:
        """Drop tokens from the prefix's start, then the suffix's end, until ``ids`` fits ``seq_len``."""
        over = len(ids) - self.seq_len
        if over <= 0:
            return ids
        layout = self.tokenizer.layout
        p, s, m = ids.index(layout.fim_prefix), ids.index(layout.fim_suffix), ids.index(layout.fim_middle)
        from_prefix = min(over, s - p - 1)
        ids = ids[: p + 1] + ids[p + 1 + from_prefix :]
        s, m, over = s - from_prefix, m - from_prefix, over - from_prefix
        if over > 0:
            from_suffix = min(over, m - s - 1)
            ids = ids[: m - from_suffix] + ids[m:]
        return ids[: self.seq_len]
