"""Scores through music21: reading MusicXML / .mxl / .krn / ABC files and corpus works, writing MusicXML.

Readers return :class:`~maia_hf.notes.RawPiece` objects with times in ticks of
:data:`SCORE_TICKS_PER_QUARTER`; :func:`maia_hf.io.read_raw` dispatches to them by suffix. music21
objects are turned into notes directly, never through music21's MIDI writer, and music21 is imported
inside each function, so ``import maia_hf`` never imports it.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from .errors import MaiaInputError
from .notes import NoteArray, Piece, RawPiece, TempoChange, TimeSignature

__all__ = [
    "MUSIC21_PREFIX",
    "SCORE_TICKS_PER_QUARTER",
    "piece_to_music21",
    "raw_from_music21",
    "read_music21_corpus",
    "read_score_file",
    "write_musicxml",
]

MUSIC21_PREFIX = "music21:"
# Resolution used to turn music21's fractional quarter offsets into integer ticks: divisible by
# 2^5 * 3^2 * 5 * 7, so every common tuplet lands on a whole tick.
SCORE_TICKS_PER_QUARTER = 10080


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def read_score_file(path: Path) -> list[RawPiece]:
    """Every piece of a MusicXML / .mxl / .krn / ABC file (every tune of a multi-tune ABC file)."""
    import music21

    try:
        parsed = music21.converter.parse(str(path), forceSource=True)
    except Exception as exc:
        raise MaiaInputError(
            f"{str(path)!r} could not be parsed as a {path.suffix} score by music21 ({exc}); check the file"
        ) from exc
    return raw_from_music21(parsed, name=str(path))


def read_music21_corpus(name: str) -> list[RawPiece]:
    """The pieces of a work of the music21 corpus, e.g. ``"bach/bwv66.6"`` (without the prefix)."""
    import music21

    try:
        parsed = music21.corpus.parse(name)
    except Exception as exc:
        raise MaiaInputError(
            f"'{MUSIC21_PREFIX}{name}' is not in the music21 corpus ({exc}); "
            f"list works with music21.corpus.search or use e.g. '{MUSIC21_PREFIX}bach/bwv66.6'"
        ) from exc
    return raw_from_music21(parsed, name=f"{MUSIC21_PREFIX}{name}")


def raw_from_music21(stream, name: str) -> list[RawPiece]:
    """The pieces of a music21 stream: one per score of an ``Opus``, repeats expanded where they pair up."""
    import music21

    if isinstance(stream, music21.stream.Opus):
        pieces = []
        for i, score in enumerate(stream.scores):
            title = score.metadata.title if score.metadata and score.metadata.title else f"tune {i + 1}"
            pieces.extend(raw_from_music21(score, name=f"{name}#{i + 1} {title}"))
        return pieces
    metadata = getattr(stream, "metadata", None)
    composer = (metadata.composer or None) if metadata is not None else None  # before expandRepeats drops it
    # Play repeats as written out; inconsistent repeat marks leave the score as notated (and say so).
    as_written = False
    try:
        stream = stream.expandRepeats()
    except music21.exceptions21.Music21Exception:
        as_written = True
    parts = list(stream.parts) if isinstance(stream, music21.stream.Score) and stream.parts else [stream]
    notes, drums = [], 0
    for part in parts:
        part_notes, part_drums = _music21_part_notes(part)
        notes.extend(part_notes)
        drums += part_drums
    arr = NoteArray.from_lists(*zip(*notes, strict=True)) if notes else NoteArray.empty()
    tempos, signatures = _music21_metadata(stream)
    return [
        RawPiece(
            arr,
            SCORE_TICKS_PER_QUARTER,
            tempos,
            signatures,
            name,
            drums,
            repeats_as_written=as_written,
            composer=composer,
        )  # fmt: skip
    ]


def _ticks(quarters) -> int:
    return round(Fraction(quarters) * SCORE_TICKS_PER_QUARTER)


def _music21_part_notes(part) -> tuple[list[tuple[int, int, int, int]], int]:
    """(pitch, start tick, end tick, velocity) for every pitched note; grace notes skipped.

    Tied notes are joined pitch by pitch (also inside chords, where music21's ``stripTies`` leaves
    partial ties split), so a score maia wrote as MusicXML reads back note for note.
    """
    import music21

    notes, drums = [], 0
    open_ties: dict[int, int] = {}  # MIDI pitch -> index in notes of the note its tie continues
    for element in part.flatten().notes:
        if isinstance(element, (music21.note.Unpitched, music21.percussion.PercussionChord)):
            drums += 1
            continue
        if element.duration.isGrace:
            continue
        start = _ticks(element.offset)
        # The end from the exact sum, so it meets the next note's start tick (ties join on equality).
        end = _ticks(music21.common.opFrac(element.offset + element.duration.quarterLength))
        velocity = element.volume.velocity if element.volume.velocity is not None else 80
        components = element.notes if isinstance(element, music21.chord.Chord) else [element]
        for component in components:
            midi = int(component.pitch.midi)
            tie = component.tie
            kind = tie.type if tie is not None else None
            held = open_ties.get(midi)
            if kind in ("stop", "continue") and held is not None and notes[held][2] == start:
                notes[held] = (midi, notes[held][1], end, notes[held][3])
                if kind == "stop":
                    del open_ties[midi]
                continue
            notes.append((midi, start, end, int(velocity)))
            if kind in ("start", "continue"):
                open_ties[midi] = len(notes) - 1
    return notes, drums


def _music21_metadata(stream) -> tuple[list[tuple[int, float]], list[tuple[int, int, int]]]:
    import music21

    flat = stream.flatten()
    tempos = []
    for mark in flat.getElementsByClass(music21.tempo.MetronomeMark):
        qpm = mark.getQuarterBPM()
        if qpm:
            tempos.append((_ticks(mark.offset), float(qpm)))
    signatures = []
    for ts in flat.getElementsByClass(music21.meter.TimeSignature):
        entry = (_ticks(ts.offset), int(ts.numerator), int(ts.denominator))
        if not signatures or signatures[-1][1:] != entry[1:]:
            if signatures and signatures[-1][0] == entry[0]:
                signatures[-1] = entry
            else:
                signatures.append(entry)
    return sorted(set(tempos)), signatures


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def piece_to_music21(piece: Piece, steps_per_quarter: int = 12, split_pitch: int = 60):
    """A two-staff piano ``music21.stream.Score``: notes at or above ``split_pitch`` in the right hand.

    Each staff is one voice of chords: wherever the set of sounding notes changes a new chord
    begins, and a note that goes on sounding is tied into it, pitch by pitch. That is how one staff
    of piano music is notated, and it reads back through :func:`maia_hf.io.read_raw` note for note.
    """
    import music21

    score = music21.stream.Score()
    first_ts = (piece.time_signatures or [TimeSignature(0, 4, 4)])[0]
    qpm = (piece.tempos or [TempoChange(0, 120.0)])[0].qpm
    right = piece.notes.pitch >= split_pitch
    for hand, clef, mask in (
        ("Right hand", music21.clef.TrebleClef(), right),
        ("Left hand", music21.clef.BassClef(), ~right),
    ):
        part = music21.stream.Part(id=hand)
        part.partName = hand
        part.insert(0, music21.instrument.Piano())
        part.insert(0, clef)
        part.insert(0, music21.meter.TimeSignature(f"{first_ts.numerator}/{first_ts.denominator}"))
        if hand == "Right hand":
            mark = music21.tempo.MetronomeMark(number=round(qpm, 2), referent=music21.note.Note(type="quarter"))
            part.insert(0, mark)
        for offset, chord in _tied_chords(piece.notes.take(mask), steps_per_quarter):
            part.insert(offset, chord)
        score.insert(0, part)
    return score


def _tied_chords(notes: NoteArray, steps_per_quarter: int):
    """Yield (offset, chord) for each span between consecutive note boundaries where notes sound."""
    import music21

    if len(notes) == 0:
        return
    boundaries = np.unique(np.concatenate([notes.start, notes.end]))
    order = np.argsort(notes.start, kind="stable")
    active: list[int] = []
    next_note = 0
    for left, right in zip(boundaries[:-1].tolist(), boundaries[1:].tolist(), strict=True):
        active = [i for i in active if notes.end[i] > left]
        while next_note < len(order) and notes.start[order[next_note]] == left:
            active.append(int(order[next_note]))
            next_note += 1
        if not active:
            continue
        members = []
        for i in sorted(active, key=lambda i: notes.pitch[i]):
            note = music21.note.Note(int(notes.pitch[i]))
            note.volume.velocity = int(notes.velocity[i])
            began, continues = notes.start[i] == left, notes.end[i] > right
            tie = {(True, True): "start", (False, True): "continue", (False, False): "stop"}.get((began, continues))
            if tie:
                note.tie = music21.tie.Tie(tie)
            members.append(note)
        chord = music21.chord.Chord(members, quarterLength=Fraction(right - left, steps_per_quarter))
        yield Fraction(left, steps_per_quarter), chord


def write_musicxml(piece: Piece, path, steps_per_quarter: int = 12) -> Path:
    """Write the piece as MusicXML (two staves, see :func:`piece_to_music21`); ``.mxl`` is the compressed form.

    Raises:
        MaiaInputError: ``path`` ends in neither ``.musicxml``, ``.xml`` nor ``.mxl``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".musicxml", ".xml", ".mxl"):
        raise MaiaInputError(f"{str(path)!r} does not name a MusicXML file; use a .musicxml, .xml or .mxl path")
    path.parent.mkdir(parents=True, exist_ok=True)
    piece_to_music21(piece, steps_per_quarter).write("mxl" if suffix == ".mxl" else "musicxml", fp=str(path))
    return path
