"""The data types of music in maia: notes as arrays, tempo and time signature changes, pieces.

A :class:`NoteArray` holds notes as parallel integer arrays (pitch, onset, offset, velocity). A
:class:`RawPiece` is what a reader returns: notes in the file's ticks with its metadata, before
quantization. A :class:`Piece` is notes on the codec's grid (times in steps) with the
:class:`TempoChange` and :class:`TimeSignature` metadata that decoding needs. Pure: numpy only, so a
saved model directory carries this module beside the codec.

Example:

```python
>>> from maia_hf.notes import NoteArray, Piece
>>> piece = Piece(NoteArray.from_lists(pitch=[64, 60], start=[12, 0], end=[24, 12]), name="two notes")
>>> piece.notes.sorted().as_tuples()
[(60, 0, 12), (64, 12, 24)]

```
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import MaiaInputError

__all__ = ["NoteArray", "Piece", "RawPiece", "TempoChange", "TimeSignature"]

_INT = np.int64


@dataclass
class NoteArray:
    """Notes as parallel integer arrays; times are grid steps (or ticks before quantization).

    Args:
        pitch (`np.ndarray`): MIDI pitch of each note.
        start (`np.ndarray`): onset of each note.
        end (`np.ndarray`): offset of each note (exclusive).
        velocity (`np.ndarray`): MIDI velocity 1..127 of each note.
    """

    pitch: np.ndarray
    start: np.ndarray
    end: np.ndarray
    velocity: np.ndarray

    def __post_init__(self):
        self.pitch = np.asarray(self.pitch, dtype=_INT)
        self.start = np.asarray(self.start, dtype=_INT)
        self.end = np.asarray(self.end, dtype=_INT)
        self.velocity = np.asarray(self.velocity, dtype=_INT)
        n = len(self.pitch)
        if not (len(self.start) == len(self.end) == len(self.velocity) == n):
            raise ValueError("NoteArray fields must have the same length")

    @classmethod
    def empty(cls) -> NoteArray:
        return cls(*(np.zeros(0, dtype=_INT) for _ in range(4)))

    @classmethod
    def from_lists(cls, pitch, start, end, velocity=None) -> NoteArray:
        velocity = [80] * len(pitch) if velocity is None else velocity
        return cls(np.array(pitch), np.array(start), np.array(end), np.array(velocity))

    @classmethod
    def concatenate(cls, parts: list[NoteArray]) -> NoteArray:
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("pitch", "start", "end", "velocity")))

    def __len__(self) -> int:
        return len(self.pitch)

    def take(self, index) -> NoteArray:
        return NoteArray(self.pitch[index], self.start[index], self.end[index], self.velocity[index])

    def sorted(self) -> NoteArray:
        """The notes in canonical order: by onset, then pitch."""
        return self.take(np.lexsort((self.pitch, self.start)))

    def as_tuples(self, velocity: bool = False) -> list[tuple[int, ...]]:
        cols = [self.pitch, self.start, self.end] + ([self.velocity] if velocity else [])
        return list(zip(*(c.tolist() for c in cols), strict=True))


@dataclass(frozen=True)
class TempoChange:
    step: int
    qpm: float


@dataclass(frozen=True)
class TimeSignature:
    step: int
    numerator: int
    denominator: int


@dataclass
class RawPiece:
    """Notes as a file holds them, before quantization.

    Args:
        notes (`NoteArray`): times in ticks.
        ticks_per_quarter (`int`): the tick resolution of ``notes``.
        tempos (`list[tuple[int, float]]`): (tick, quarter notes per minute).
        time_signatures (`list[tuple[int, int, int]]`): (tick, numerator, denominator).
        name (`str`): the source (path, corpus id, or tune title).
        drum_notes_dropped (`int`): notes of drum tracks / unpitched parts left out.
        composer (`str`, *optional*): the composer, where the source names one.
        repeats_as_written (`bool`): music21 could not expand the score's repeats (inconsistent marks),
            so the notes are as notated, each repeated section once.
    """

    notes: NoteArray
    ticks_per_quarter: int
    tempos: list[tuple[int, float]] = field(default_factory=list)
    time_signatures: list[tuple[int, int, int]] = field(default_factory=list)
    name: str = ""
    drum_notes_dropped: int = 0
    composer: str | None = None
    repeats_as_written: bool = False  # a score's repeat marks could not be expanded (inconsistent marks)


@dataclass
class Piece:
    """Notes on the grid plus the metadata that decoding needs (never written as words).

    Args:
        notes (`NoteArray`): the notes, times in grid steps.
        tempos (`list[TempoChange]`): tempo changes; empty means 120 quarter notes per minute.
        time_signatures (`list[TimeSignature]`): time signature changes; empty means 4/4.
        name (`str`, *optional*): where the piece came from (file path, corpus id, title).
    """

    notes: NoteArray
    tempos: list[TempoChange] = field(default_factory=list)
    time_signatures: list[TimeSignature] = field(default_factory=list)
    name: str = ""
    composer: str | None = None

    def bar_lines(self, steps_per_quarter: int = 12, until: int | None = None) -> list[int]:
        """Steps at which bars begin, from the time signatures (4/4 where none), up to ``until``.

        >>> Piece(NoteArray.empty(), time_signatures=[TimeSignature(0, 12, 8)]).bar_lines(until=216)
        [0, 72, 144, 216]
        """
        until = int(self.notes.end.max()) if until is None and len(self.notes) else (until or 0)
        signatures = sorted(self.time_signatures, key=lambda ts: ts.step) or [TimeSignature(0, 4, 4)]
        if signatures[0].step > 0:
            signatures.insert(0, TimeSignature(0, 4, 4))
        lines, step = [], 0
        for i, ts in enumerate(signatures):
            bar = max(1, ts.numerator * 4 * steps_per_quarter // ts.denominator)
            stop = signatures[i + 1].step if i + 1 < len(signatures) else until + 1
            step = ts.step
            while step < stop and step <= until:
                lines.append(step)
                step += bar
        return lines

    def first_bars(self, n_bars: int, steps_per_quarter: int = 12) -> Piece:
        """The first ``n_bars`` bars: notes starting before the bar line, cut at it."""
        if n_bars < 1:
            raise MaiaInputError(f"the number of bars must be >= 1, got {n_bars}")
        lines = self.bar_lines(steps_per_quarter)
        if n_bars >= len(lines):  # the piece ends before that bar line
            return self
        cut = lines[n_bars]
        keep = self.notes.start < cut
        notes = self.notes.take(keep)
        notes = NoteArray(notes.pitch, notes.start, np.minimum(notes.end, cut), notes.velocity)
        return Piece(
            notes,
            [t for t in self.tempos if t.step < cut],
            [ts for ts in self.time_signatures if ts.step < cut],
            self.name,
            self.composer,
        )
