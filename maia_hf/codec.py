"""The notewise codec: notes on a grid <-> notewise words.

This module is the whole encoding, and it is pure: it needs numpy and nothing else (no torch, no
transformers, no MIDI library). ``docs/encoding.md`` is its specification; every rule below is a
rule there. It holds the grid and vocabulary settings (:class:`CodecConfig`), quantization and the
canonical form (:func:`quantize_ticks`, :class:`CanonicalReport`) and :class:`NotewiseCodec`, which
turns a :class:`~maia_hf.notes.NoteArray` (times in steps) into words such as::

    p60 p64 wait12 endp60 endp64 p62 wait12 endp62

and back (:class:`DecodeResult`). Words are also available as integer indices into
:meth:`NotewiseCodec.vocabulary`, which is what the tokenizer and the data pipeline use (no strings
on the hot path). The note types live in ``notes.py`` and are re-exported here.

Example:

```python
>>> from maia_hf.codec import NotewiseCodec, NoteArray
>>> codec = NotewiseCodec()
>>> notes = NoteArray.from_lists(pitch=[60, 64], start=[0, 0], end=[12, 24])
>>> codec.encode_text(notes)
'p60 p64 wait12 endp60 wait12 endp64'
>>> codec.decode_text('p60 p64 wait12 endp60 wait12 endp64').notes.end.tolist()
[12, 24]

```
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .errors import MaiaInputError, MaiaTokenError
from .notes import NoteArray, Piece, TempoChange, TimeSignature

__all__ = [
    "CanonicalReport",
    "CodecConfig",
    "DecodeResult",
    "NoteArray",
    "NotewiseCodec",
    "Piece",
    "TempoChange",
    "TimeSignature",
    "quantize_ticks",
]

_INT = np.int64


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CodecConfig:
    """Settings that fix the notewise vocabulary and grid.

    Args:
        steps_per_quarter (`int`, *optional*, defaults to 12):
            Grid resolution. 12 represents sixteenths (3), eighth-note triplets (4), sixteenth
            triplets (1) and dotted values exactly.
        max_wait (`int`, *optional*, defaults to 48):
            Longest single ``wait{k}`` word, in steps (48 = a whole note at 12 steps per quarter).
            A longer rest is written as several waits: ``wait48 wait48 wait6``.
        velocity_bins (`int`, *optional*, defaults to 0):
            Number of ``v{b}`` dynamics words. 0 (the default) writes no dynamics, as the original
            notewise did; e.g. 8 writes ``v0``..``v7`` before a note-on whenever the bin changes.
        default_velocity (`int`, *optional*, defaults to 80):
            MIDI velocity given to decoded notes when the text carries no dynamics.
        pitch_min (`int`, *optional*, defaults to 21), pitch_max (`int`, *optional*, defaults to 108):
            The piano range A0..C8. Pitches outside are folded by whole octaves into it.
    """

    steps_per_quarter: int = 12
    max_wait: int = 48
    velocity_bins: int = 0
    default_velocity: int = 80
    pitch_min: int = 21
    pitch_max: int = 108

    def __post_init__(self):
        if self.steps_per_quarter < 1:
            raise MaiaInputError(f"steps_per_quarter must be >= 1, got {self.steps_per_quarter}")
        if self.max_wait < 1:
            raise MaiaInputError(f"max_wait must be >= 1, got {self.max_wait}")
        if not 0 <= self.velocity_bins <= 128:
            raise MaiaInputError(f"velocity_bins must be in 0..128, got {self.velocity_bins}")
        if not 0 <= self.pitch_min <= self.pitch_max - 11 <= 116:
            raise MaiaInputError(
                f"pitch range {self.pitch_min}..{self.pitch_max} must lie in 0..127 and span an octave"
            )
        if not 1 <= self.default_velocity <= 127:
            raise MaiaInputError(f"default_velocity must be in 1..127, got {self.default_velocity}")

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


# --------------------------------------------------------------------------------------------
# Quantization and canonical form
# --------------------------------------------------------------------------------------------


def quantize_ticks(ticks: np.ndarray, ticks_per_quarter: int, steps_per_quarter: int = 12) -> np.ndarray:
    """Snap tick times to the nearest grid step, halves rounding up; exact integer arithmetic.

    >>> quantize_ticks(np.array([0, 19, 20, 21, 480]), 480).tolist()
    [0, 0, 1, 1, 12]
    """
    if ticks_per_quarter <= 0:
        raise MaiaInputError(f"ticks_per_quarter must be positive, got {ticks_per_quarter}")
    ticks = np.asarray(ticks, dtype=_INT)
    return (2 * ticks * steps_per_quarter + ticks_per_quarter) // (2 * ticks_per_quarter)


@dataclass
class CanonicalReport:
    """What :meth:`NotewiseCodec.canonicalize` changed, note by note, by cause."""

    notes_in: int = 0
    off_grid: int = 0  # onset or offset moved by quantization
    lengthened: int = 0  # snapped to zero length, kept one step
    folded: int = 0  # pitch outside the range, moved by octaves
    merged_duplicates: int = 0  # same pitch and onset as another note: merged into it
    cut_by_restrike: int = 0  # same pitch struck again while sounding: ended at the re-strike
    notes_out: int = 0

    def __add__(self, other: CanonicalReport) -> CanonicalReport:
        return CanonicalReport(**{k: getattr(self, k) + getattr(other, k) for k in self.__dataclass_fields__})


# --------------------------------------------------------------------------------------------
# The codec
# --------------------------------------------------------------------------------------------


@dataclass
class DecodeResult:
    """Notes decoded from words, with what the decoder had to repair."""

    notes: NoteArray
    ignored_note_offs: int = 0  # endp for a pitch that was not sounding
    closed_at_end: int = 0  # notes still sounding when the words ended
    restruck: int = 0  # p for a pitch already sounding: the sounding note ended there
    total_steps: int = 0


class NotewiseCodec:
    """Encode notes as notewise words and decode them back, following ``docs/encoding.md``.

    Args:
        config (`CodecConfig`, *optional*): grid and vocabulary settings; keyword arguments
            override single fields, e.g. ``NotewiseCodec(velocity_bins=8)``.

    Example:

    ```python
    >>> codec = NotewiseCodec(max_wait=24)
    >>> codec.vocabulary()[:3], len(codec.vocabulary())
    (['p21', 'p22', 'p23'], 200)

    ```
    """

    def __init__(self, config: CodecConfig | None = None, **overrides):
        config = config or CodecConfig()
        self.config = replace(config, **overrides) if overrides else config
        c = self.config
        self.n_pitches = c.pitch_max - c.pitch_min + 1
        # Index layout: note-ons, note-offs, waits, velocity bins.
        self.on_offset = 0
        self.off_offset = self.n_pitches
        self.wait_offset = 2 * self.n_pitches
        self.velocity_offset = self.wait_offset + c.max_wait
        self.size = self.velocity_offset + c.velocity_bins
        self._words = np.array(self.vocabulary(), dtype=object)
        self._index = {w: i for i, w in enumerate(self.vocabulary())}

    # ---- vocabulary --------------------------------------------------------------------

    def vocabulary(self) -> list[str]:
        """Every word, in index order: ``p{n}``, ``endp{n}``, ``wait{k}``, then ``v{b}``."""
        c = self.config
        pitches = range(c.pitch_min, c.pitch_max + 1)
        return (
            [f"p{n}" for n in pitches]
            + [f"endp{n}" for n in pitches]
            + [f"wait{k}" for k in range(1, c.max_wait + 1)]
            + [f"v{b}" for b in range(c.velocity_bins)]
        )

    def words_to_indices(self, words: list[str] | str, source: str = "text") -> np.ndarray:
        """Turn words into indices, raising :class:`MaiaTokenError` on the first unknown word."""
        if isinstance(words, str):
            words = words.split()
        try:
            return np.fromiter((self._index[w] for w in words), dtype=_INT, count=len(words))
        except KeyError:
            pos = next(i for i, w in enumerate(words) if w not in self._index)
            raise MaiaTokenError(
                f"unknown word {words[pos]!r} at position {pos} of {source}; {self.describe_vocabulary()}"
            ) from None

    def indices_to_words(self, indices) -> list[str]:
        return self._words[np.asarray(indices, dtype=_INT)].tolist()

    def describe_vocabulary(self) -> str:
        c = self.config
        text = (
            f"the vocabulary is p{c.pitch_min}..p{c.pitch_max}, endp{c.pitch_min}..endp{c.pitch_max}, "
            f"wait1..wait{c.max_wait}"
        )
        return text + (f", v0..v{c.velocity_bins - 1}" if c.velocity_bins else " (no velocity words)")

    def velocity_to_bin(self, velocity: np.ndarray) -> np.ndarray:
        """Equal-width bins over 1..127: bin b covers velocities in [1 + b*127/B, 1 + (b+1)*127/B)."""
        v = np.clip(np.asarray(velocity, dtype=_INT), 1, 127)
        return (v - 1) * self.config.velocity_bins // 127

    def bin_to_velocity(self, bins: np.ndarray) -> np.ndarray:
        """The middle velocity of each bin."""
        b, n = np.asarray(bins, dtype=_INT), self.config.velocity_bins
        lo = 1 + (b * 127 + n - 1) // n
        hi = 1 + ((b + 1) * 127 + n - 1) // n - 1
        return (lo + hi) // 2

    # ---- canonical form ----------------------------------------------------------------

    def fold_pitches(self, pitch: np.ndarray) -> np.ndarray:
        """Move pitches outside pitch_min..pitch_max by whole octaves into the range."""
        c = self.config
        pitch = np.asarray(pitch, dtype=_INT)
        low = pitch < c.pitch_min
        high = pitch > c.pitch_max
        if not (low.any() or high.any()):
            return pitch
        pitch = pitch.copy()
        pitch[low] += 12 * ((c.pitch_min - pitch[low] + 11) // 12)
        pitch[high] -= 12 * ((pitch[high] - c.pitch_max + 11) // 12)
        return pitch

    def canonicalize(
        self, notes: NoteArray, ticks_per_quarter: int | None = None, transpose: int = 0
    ) -> tuple[NoteArray, CanonicalReport]:
        """Quantize, transpose, fold and merge notes into the one form the words can express.

        Args:
            notes (`NoteArray`): times in ticks when ``ticks_per_quarter`` is given, else in steps.
            ticks_per_quarter (`int`, *optional*): quantize from this tick resolution.
            transpose (`int`, *optional*, defaults to 0): semitones to add to every pitch.

        Returns:
            `(NoteArray, CanonicalReport)`: the canonical notes sorted by onset then pitch, and how
            many notes each rule touched.
        """
        report = CanonicalReport(notes_in=len(notes))
        start, end = notes.start, notes.end
        if ticks_per_quarter is not None:
            start = quantize_ticks(notes.start, ticks_per_quarter, self.config.steps_per_quarter)
            end = quantize_ticks(notes.end, ticks_per_quarter, self.config.steps_per_quarter)
            spq = self.config.steps_per_quarter
            exact = (start * ticks_per_quarter == notes.start * spq) & (end * ticks_per_quarter == notes.end * spq)
            report.off_grid = int((~exact).sum())
        short = end <= start
        report.lengthened = int(short.sum())
        end = np.where(short, start + 1, end)
        pitch = notes.pitch + transpose
        folded = self.fold_pitches(pitch)
        report.folded = int((folded != pitch).sum())
        velocity = np.clip(notes.velocity, 1, 127)
        merged, report.merged_duplicates, report.cut_by_restrike = self._merge(folded, start, end, velocity)
        report.notes_out = len(merged)
        return merged, report

    @staticmethod
    def _merge(pitch, start, end, velocity) -> tuple[NoteArray, int, int]:
        """Apply the two same-pitch rules: duplicates merge, a re-strike ends the sounding note."""
        order = np.lexsort((start, pitch))
        pitch, start, end, velocity = pitch[order], start[order], end[order], velocity[order]
        n = len(pitch)
        if n == 0:
            return NoteArray.empty(), 0, 0
        # Rule 1: notes with the same pitch and onset become one note: the latest offset, the
        # loudest velocity.
        first = np.ones(n, dtype=bool)
        first[1:] = (pitch[1:] != pitch[:-1]) | (start[1:] != start[:-1])
        duplicates = n - int(first.sum())
        if duplicates:
            heads = np.flatnonzero(first)
            end = np.maximum.reduceat(end, heads)
            velocity = np.maximum.reduceat(velocity, heads)
            pitch, start = pitch[heads], start[heads]
        # Rule 2: a note struck while the same pitch sounds ends the sounding note at the re-strike.
        same_next = np.zeros(len(pitch), dtype=bool)
        same_next[:-1] = pitch[1:] == pitch[:-1]
        next_start = np.empty_like(start)
        next_start[:-1] = start[1:]
        cut = same_next & (end > next_start)
        if cut.any():
            end = np.where(cut, next_start, end)
        merged = NoteArray(pitch, start, end, velocity).sorted()
        return merged, duplicates, int(cut.sum())

    # ---- encoding ----------------------------------------------------------------------

    def encode(self, notes: NoteArray, transpose: int = 0, canonical: bool = False) -> np.ndarray:
        """Encode notes (times in steps) as word indices.

        Args:
            notes (`NoteArray`): notes with times in grid steps.
            transpose (`int`, *optional*, defaults to 0): semitones to add first.
            canonical (`bool`, *optional*, defaults to `False`): the notes are already the output of
                :meth:`canonicalize` (skips merging; transposition must then be 0).

        Returns:
            `np.ndarray` of int64 indices into :meth:`vocabulary`.
        """
        if not canonical or transpose:
            notes, _ = self.canonicalize(notes, transpose=transpose)
        c = self.config
        n = len(notes)
        if n == 0:
            return np.zeros(0, dtype=_INT)
        # Events sorted by (time, off before on, pitch): one score, one text.
        times = np.concatenate([notes.end, notes.start])
        is_on = np.concatenate([np.zeros(n, dtype=_INT), np.ones(n, dtype=_INT)])
        pitch = np.concatenate([notes.pitch, notes.pitch])
        order = np.lexsort((pitch, is_on, times))
        times, is_on, pitch = times[order], is_on[order], pitch[order]
        event_word = np.where(is_on == 1, self.on_offset, self.off_offset) + pitch - c.pitch_min

        # Waits before each event: the gap to the previous event (the first measured from step 0).
        gaps = np.diff(times, prepend=0)
        full, rest = np.divmod(gaps, c.max_wait)
        n_waits = full + (rest > 0)

        n_velocity = np.zeros(2 * n, dtype=_INT)
        if c.velocity_bins:
            velocity = np.concatenate([np.zeros(n, dtype=_INT), notes.velocity])[order]
            bins = self.velocity_to_bin(velocity)
            on_idx = np.flatnonzero(is_on == 1)
            on_bins = bins[on_idx]
            changed = np.ones(len(on_idx), dtype=bool)
            changed[1:] = on_bins[1:] != on_bins[:-1]
            n_velocity[on_idx[changed]] = 1
            velocity_word = self.velocity_offset + bins

        # Each event writes: its waits, then its velocity word (if any), then itself.
        per_event = n_waits + n_velocity + 1
        ends = np.cumsum(per_event)
        out = np.empty(int(ends[-1]), dtype=_INT)
        event_pos = ends - 1
        out[event_pos] = event_word
        if c.velocity_bins:
            has_v = n_velocity == 1
            out[event_pos[has_v] - 1] = velocity_word[has_v]
        wait_total = int(n_waits.sum())
        if wait_total:
            # Every wait slot: the event it precedes, and whether it is a full wait or the remainder.
            owner = np.repeat(np.arange(2 * n), n_waits)
            first_slot = ends - per_event  # position of each event's first word
            k = np.arange(wait_total) - np.repeat(np.cumsum(n_waits) - n_waits, n_waits)
            is_full = k < full[owner]
            wait_len = np.where(is_full, c.max_wait, rest[owner])
            out[first_slot[owner] + k] = self.wait_offset + wait_len - 1
        return out

    def encode_text(self, notes: NoteArray, transpose: int = 0) -> str:
        """Encode notes (times in steps) as one line of notewise words."""
        return " ".join(self.indices_to_words(self.encode(notes, transpose=transpose)))

    # ---- decoding ----------------------------------------------------------------------

    def decode(self, indices) -> DecodeResult:
        """Decode word indices to notes. Never raises for indices inside the vocabulary.

        Indices outside ``0..size-1`` (e.g. special tokens of a tokenizer) are skipped.
        Repairs, each counted in the result: an ``endp`` for a pitch not sounding is ignored; a
        ``p`` for a pitch already sounding ends the sounding note there (a re-strike); notes still
        sounding at the end close at the final step; a note closed in the step it opened lasts one step.
        """
        c = self.config
        idx = np.asarray(indices, dtype=_INT)
        idx = idx[(idx >= 0) & (idx < self.size)]
        is_wait = (idx >= self.wait_offset) & (idx < self.velocity_offset)
        step_len = np.where(is_wait, idx - self.wait_offset + 1, 0)
        time_after = np.cumsum(step_len)
        total = int(time_after[-1]) if len(idx) else 0
        is_note = idx < self.wait_offset
        pos = np.flatnonzero(is_note)
        if len(pos) == 0:
            return DecodeResult(NoteArray.empty(), total_steps=total)
        word = idx[pos]
        on = word < self.off_offset
        pitch = np.where(on, word - self.on_offset, word - self.off_offset)
        t = time_after[pos]

        # Velocity in force at each position: the latest v word before it.
        if c.velocity_bins:
            is_v = idx >= self.velocity_offset
            last_v = np.maximum.accumulate(np.where(is_v, np.arange(len(idx)), -1))[pos]
            vel = np.where(
                last_v >= 0, self.bin_to_velocity(idx[np.maximum(last_v, 0)] - self.velocity_offset), c.default_velocity
            )
        else:
            vel = np.full(len(pos), c.default_velocity, dtype=_INT)

        # Per pitch, in text order: each p ends at the next event of that pitch (an endp closes it,
        # a p re-strikes it), or at the end of the text.
        order = np.lexsort((np.arange(len(pos)), pitch))
        p_s, on_s, t_s, v_s = pitch[order], on[order], t[order], vel[order]
        same_next = np.zeros(len(order), dtype=bool)
        same_next[:-1] = p_s[1:] == p_s[:-1]
        next_t = np.full(len(order), total, dtype=_INT)
        next_t[:-1] = np.where(same_next[:-1], t_s[1:], total)
        next_on = np.zeros(len(order), dtype=bool)
        next_on[:-1] = same_next[:-1] & on_s[1:]
        prev_on = np.zeros(len(order), dtype=bool)
        prev_on[1:] = (p_s[1:] == p_s[:-1]) & on_s[:-1]

        starts = t_s[on_s]
        ends = next_t[on_s]
        ends = np.where(ends > starts, ends, starts + 1)
        notes = NoteArray(p_s[on_s] + c.pitch_min, starts, ends, v_s[on_s]).sorted()
        return DecodeResult(
            notes,
            ignored_note_offs=int((~on_s & ~prev_on).sum()),
            closed_at_end=int((on_s & ~same_next).sum()),
            restruck=int((on_s & next_on).sum()),
            total_steps=total,
        )

    def decode_text(self, text: str, source: str = "text") -> DecodeResult:
        """Decode a line of notewise words; an unknown word raises :class:`MaiaTokenError`."""
        return self.decode(self.words_to_indices(text, source=source))
