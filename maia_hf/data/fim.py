"""Fill in the middle: the prefix-suffix-middle format, and the training transform that writes it.

A gap ``[start, end)`` (in steps) cuts a piece into three passages, and the model reads them in one of two
orders (Bavarian et al., 2022, "Efficient Training of Language Models to Fill in the Middle"):

- ``psm``: ``<start> <composer:NAME> <fim_prefix> PREFIX <fim_suffix> SUFFIX <fim_middle> MIDDLE <end>``
- ``spm``: ``<start> <composer:NAME> <fim_suffix> SUFFIX <fim_prefix> PREFIX <fim_middle> MIDDLE <end>``

In ``spm`` the middle is written straight after the end of the prefix, as a continuation would be, so the
notes it follows sit in its own attention block; in ``psm`` the whole suffix stands between them, which
a fixed sparse pattern (each token sees its own block and a few summary positions of earlier ones) can only
glimpse. A model records the order it was trained in (``config.fim_order``; none recorded: ``psm``).
``docs/encoding.md`` §11 is the specification. Each passage is self-contained notewise text: it starts with
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

__all__ = [
    "FIM_ORDERS",
    "FimParts",
    "FimTransform",
    "fim_context",
    "fim_ids",
    "fim_order_of",
    "fim_passages",
    "split_at_gap",
    "waits_ids",
]

# The two orders of the passages; a model that records none was trained in the first.
FIM_ORDERS = ("psm", "spm")

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


def _check_order(order: str) -> str:
    if order not in FIM_ORDERS:
        raise MaiaInputError(f"fim_order must be one of {', '.join(FIM_ORDERS)}, got {order!r}")
    return order


def fim_order_of(model) -> str:
    """The order ``model`` was trained to infill in (``config.fim_order``; ``psm`` when none is recorded)."""
    return _check_order(getattr(getattr(model, "config", None), "fim_order", None) or "psm")


def fim_context(layout, head: list[int], prefix: list[int], suffix: list[int], order: str = "psm") -> list[int]:
    """``head``, then the prefix and the suffix with their sentinels in ``order``, then ``<fim_middle>``:
    what a model continues to write the middle.

    >>> from maia_hf import MaiaTokenizer
    >>> t = MaiaTokenizer()
    >>> prefix, suffix = t.convert_tokens_to_ids(["p60"]), t.convert_tokens_to_ids(["p64"])
    >>> t.decode(fim_context(t.layout, [t.bos_token_id], prefix, suffix, "spm"))
    '<start> <fim_suffix> p64 <fim_prefix> p60 <fim_middle>'
    """
    _check_order(order)
    p, s = [layout.fim_prefix, *prefix], [layout.fim_suffix, *suffix]
    return [*head, *(p + s if order == "psm" else s + p), layout.fim_middle]


def fim_ids(tokenizer, parts: FimParts, composer: str | None = None, with_middle: bool = True,
            order: str = "psm") -> list[int]:  # fmt: skip
    """The fill-in-the-middle ids of ``parts``: the training sequence, or (``with_middle=False``) the
    context a model continues after ``<fim_middle>`` to fill the gap.

    Args:
        tokenizer (`MaiaTokenizer`): a vocabulary with the fill-in-the-middle tokens.
        parts (`FimParts`): from :func:`split_at_gap`.
        composer (`str`, *optional*): composer, any spelling (None: ``<composer:unknown>``).
        with_middle (`bool`, *optional*, defaults to `True`): end with the middle's words, the waits to the
            gap's end and ``<end>``.
        order (`str`, *optional*, defaults to ``"psm"``): ``"psm"`` (prefix, suffix, middle) or ``"spm"``
            (suffix, prefix, middle).

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
    head = [tokenizer.bos_token_id, tokenizer.composer_token_id(composer)]
    ids = fim_context(layout, head, prefix, suffix, order)
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
    """Turn training windows into fill-in-the-middle order (``psm`` or ``spm``) with probability ``rate``.

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
        order (`str`, *optional*, defaults to ``"psm"``): the order of the passages (:data:`FIM_ORDERS`).

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
                 bar_steps: int = DEFAULT_BAR_STEPS, order: str = "psm"):  # fmt: skip
        if not 0.0 <= float(rate) <= 1.0:
            raise MaiaInputError(f"fim_rate must be between 0 and 1, got {rate}")
        if int(max_bars) < 1:
            raise MaiaInputError(f"fim_max_bars must be at least 1 bar, got {max_bars}")
        if rate > 0 and not tokenizer.layout.has_fim:
            raise MaiaInputError("fim_rate > 0 needs a tokenizer with fill-in-the-middle tokens (add_fim_tokens())")
        self.tokenizer, self.rate, self.max_bars = tokenizer, float(rate), int(max_bars)
        self.seq_len, self.seed, self.bar_steps = int(seq_len), int(seed), int(bar_steps)
        self.order = _check_order(order)

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
        return self._fit(fim_ids(self.tokenizer, parts, composer, order=self.order))

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
        sentinels = (layout.fim_prefix, layout.fim_suffix, layout.fim_middle)

        def span(sentinel: int) -> tuple[int, int]:  # the passage after a sentinel, to the next one
            first = ids.index(sentinel) + 1
            return first, next(i for i in range(first, len(ids)) if ids[i] in sentinels)

        start, end = span(layout.fim_prefix)
        cut = min(over, end - start)
        ids, over = ids[:start] + ids[start + cut :], over - cut
        if over > 0:
            start, end = span(layout.fim_suffix)
            cut = min(over, end - start)
            ids = ids[: end - cut] + ids[end:]
        return ids[: self.seq_len]
