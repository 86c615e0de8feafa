"""Scores through music21: reading MusicXML / .mxl / .krn / ABC files and corpus works, writing MusicXML.

Readers return :class:`~maia_hf.notes.RawPiece` objects with times in ticks of
:data:`SCORE_TICKS_PER_QUARTER`; :func:`maia_hf.io.read_raw` dispatches to them by suffix. music21
objects are turned into notes directly, never through music21's MIDI writer, and music21 is imported
inside each function, so ``import maia_hf`` never imports it.
"""

from __future__ import annotations

import functools
from fractions import Fraction
from pathlib import Path

import numpy as np

from .errors import MaiaInputError
from .notes import NoteArray, Piece, RawPiece, TempoChange, TimeSignature

__all__ = [
    "BARS_PER_PASS",
    "MUSIC21_PREFIX",
    "SCORE_TICKS_PER_QUARTER",
    "notated_score",
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


# Bars notated in one pass. music21's notation passes (beams, tuplets) and its exporter look each measure's
# context up from the start of its part, so one pass over a long piece costs about the square of its
# length (a 20,000-note piece took minutes); passes over stretches of this many bars cost its length.
BARS_PER_PASS = 64


def piece_to_music21(piece: Piece, steps_per_quarter: int = 12, split_pitch: int = 60):
    """A two-staff piano ``music21.stream.Score``: notes at or above ``split_pitch`` in the right hand.

    Each staff is one voice of chords: wherever the set of sounding notes changes a new chord
    begins, and a note that goes on sounding is tied into it, pitch by pitch. That is how one staff
    of piano music is notated, and it reads back through :func:`maia_hf.io.read_raw` note for note.
    """
    import music21

    score = music21.stream.Score()
    for hand, notes in _hands(piece, split_pitch):
        part = _staff(piece, hand)
        for offset, chord in _tied_chords(notes, steps_per_quarter):
            part.insert(offset, chord)
        score.insert(0, part)
    return score


def notated_score(piece: Piece, steps_per_quarter: int = 12, split_pitch: int = 60):
    """:func:`piece_to_music21`'s score with its notation made as music21's MusicXML writer makes it.

    Measures, ties, accidentals, tuplets, beams and hidden rests in the gaps, made `BARS_PER_PASS` bars at a
    time and joined, so the time grows with the piece's length, not its square. Ready for
    ``score.write("musicxml", fp=..., makeNotation=False)``.
    """
    import music21

    ts = (piece.time_signatures or [TimeSignature(0, 4, 4)])[0]
    stretch = BARS_PER_PASS * max(1, ts.numerator * 4 * steps_per_quarter // ts.denominator)  # steps
    end = int(piece.notes.end.max()) if len(piece.notes) else 0
    starts = list(range(0, end, stretch)) or [0]
    score = music21.stream.Score()
    for hand, notes in _hands(piece, split_pitch):
        part = music21.stream.Part(id=hand)
        part.partName = hand
        chords = list(_tied_chords(notes, steps_per_quarter, cuts=starts[1:], chord_class=_export_chord_class()))
        for i, start in enumerate(starts):
            stop = start + stretch
            passage = _staff(piece, hand)
            for offset, chord in chords:
                if start <= offset * steps_per_quarter < stop:
                    passage.insert(offset - Fraction(start, steps_per_quarter), chord)
            length = Fraction(min(stop, end) - start, steps_per_quarter)
            passage.makeRests(refStreamOrTimeRange=[0.0, length], fillGaps=True, inPlace=True, hideRests=True,
                              timeRangeFromBarDuration=True)  # fmt: skip
            passage.makeNotation(inPlace=True, **_accidental_context(part))
            passage.splitAtDurations(recurse=True)
            _join(part, passage, Fraction(start, steps_per_quarter), first=i == 0, last=i == len(starts) - 1)
        score.insert(0, part)
    return score


def _accidental_context(part) -> dict:
    """What the accidentals of a passage's first bar depend on in the bar before it (as in one pass)."""
    import music21

    measures = part.getElementsByClass(music21.stream.Measure)
    if not measures:
        return {}
    previous = measures.last()
    sounding = previous[music21.note.NotRest]
    ties = music21.stream.makeNotation.getTiePitchSet(sounding.last()) if sounding else None
    return {"pitchPastMeasure": list(previous.pitches), "tiePitchSet": ties}


def _join(part, passage, offset, first: bool, last: bool) -> None:
    """Append ``passage``'s measures to ``part``: numbered on, one header (clef, metre, tempo), one final bar line."""
    import music21

    measures = list(passage.getElementsByClass(music21.stream.Measure))
    before = len(part.getElementsByClass(music21.stream.Measure))
    for k, measure in enumerate(measures):
        if not first and k == 0:
            header = (music21.instrument.Instrument, music21.clef.Clef, music21.meter.TimeSignature,
                      music21.tempo.MetronomeMark)  # fmt: skip
            measure.remove(list(measure.getElementsByClass(header)))
        if not last and k == len(measures) - 1:
            measure.rightBarline = None
        measure.number = before + k + 1
        part.insert(offset + measure.offset, measure)


def _hands(piece: Piece, split_pitch: int):
    right = piece.notes.pitch >= split_pitch
    return (("Right hand", piece.notes.take(right)), ("Left hand", piece.notes.take(~right)))


def _staff(piece: Piece, hand: str):
    """An empty staff of one hand: its name, the piano, its clef, the first time signature (and the tempo)."""
    import music21

    first_ts = (piece.time_signatures or [TimeSignature(0, 4, 4)])[0]
    part = music21.stream.Part(id=hand)
    part.partName = hand
    part.insert(0, music21.instrument.Piano())
    part.insert(0, music21.clef.TrebleClef() if hand == "Right hand" else music21.clef.BassClef())
    part.insert(0, music21.meter.TimeSignature(f"{first_ts.numerator}/{first_ts.denominator}"))
    if hand == "Right hand":
        qpm = (piece.tempos or [TempoChange(0, 120.0)])[0].qpm
        part.insert(0, music21.tempo.MetronomeMark(number=round(qpm, 2), referent=music21.note.Note(type="quarter")))
    return part


@functools.cache
def _export_chord_class():
    """A chord for the writer alone: music21's MusicXML export calls ``sortAscending()`` on every chord for
    its order and drops the sorted deep copy it returns; this one sorts in place and skips the copy."""
    import music21

    class ExportChord(music21.chord.Chord):
        def sortAscending(self, *, inPlace=False):
            self.sortDiatonicAscending(inPlace=True)
            return None if inPlace else self

    return ExportChord


def _tied_chords(notes: NoteArray, steps_per_quarter: int, cuts=(), chord_class=None):
    """Yield (offset, chord) for each span between consecutive note boundaries (and ``cuts``) where notes sound."""
    import music21

    if len(notes) == 0:
        return
    chord_class = chord_class or music21.chord.Chord
    boundaries = np.unique(np.concatenate([notes.start, notes.end, np.asarray(cuts, dtype=notes.start.dtype)]))
    boundaries = boundaries[boundaries <= int(notes.end.max())]
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
        chord = chord_class(members, quarterLength=Fraction(right - left, steps_per_quarter))
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
    score = notated_score(piece, steps_per_quarter)
    score.write("mxl" if suffix == ".mxl" else "musicxml", fp=str(path), makeNotation=False)
    return path
