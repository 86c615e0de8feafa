"""Reading and writing music as notes: MIDI through symusic, scores through music21.

Every reader returns :class:`RawPiece` objects (notes in ticks, exactly as the file has them) that
:func:`to_piece` quantizes and merges with the codec into a :class:`~maia_hf.codec.Piece`.
MIDI is never parsed with music21 (slow, and it changes notes); music21 objects are turned into
notes directly, never through music21's MIDI writer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from .codec import CanonicalReport, NoteArray, NotewiseCodec, Piece, TempoChange, TimeSignature, quantize_ticks
from .errors import MaiaInputError

__all__ = [
    "MIDI_SUFFIXES",
    "SCORE_SUFFIXES",
    "RawPiece",
    "format_notewise",
    "load_pieces",
    "piece_to_music21",
    "piece_to_symusic",
    "read_notewise",
    "read_raw",
    "to_piece",
    "write_midi",
    "write_musicxml",
    "write_notewise",
]

MIDI_SUFFIXES = (".mid", ".midi", ".kar", ".smf")
TEXT_SUFFIXES = (".txt", ".notewise")
SCORE_SUFFIXES = (".xml", ".musicxml", ".mxl", ".krn", ".abc")
MUSIC21_PREFIX = "music21:"
# Resolution used to turn music21's fractional quarter offsets into integer ticks: divisible by
# 2^5 * 3^2 * 5 * 7, so every common tuplet lands on a whole tick.
SCORE_TICKS_PER_QUARTER = 10080
OUTPUT_TICKS_PER_QUARTER = 480


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


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def read_raw(source, codec: NotewiseCodec | None = None) -> list[RawPiece]:
    """Read every piece in ``source``.

    Args:
        source: a path to a MIDI file (symusic), a MusicXML / .mxl / .krn / ABC file (music21; every
            tune of a multi-tune ABC file), ``"music21:<corpus path>"`` (e.g. ``"music21:bach/bwv66.6"``),
            a notewise text file (.txt / .notewise, see :func:`read_notewise`), a ``symusic.Score``,
            or a ``music21`` stream.
        codec (`NotewiseCodec`, *optional*): decodes notewise text files (default settings if absent).

    Raises:
        MaiaInputError: the file is missing, empty, not what its name says, or unreadable.
    """
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if text.startswith(MUSIC21_PREFIX):
            return _read_music21_corpus(text[len(MUSIC21_PREFIX) :])
        path = Path(text)
        if not path.exists():
            raise MaiaInputError(f"{text!r} does not exist; give the path of a MIDI or score file")
        if path.is_dir():
            raise MaiaInputError(f"{text!r} is a folder; give a file (folders are read by `maia data build`)")
        if path.stat().st_size == 0:
            raise MaiaInputError(f"{text!r} is empty (0 bytes); re-export or re-download it")
        suffix = path.suffix.lower()
        if suffix in MIDI_SUFFIXES:
            return [_read_midi(path)]
        if suffix in SCORE_SUFFIXES:
            return _read_score_file(path)
        if suffix in TEXT_SUFFIXES:
            return read_notewise(path, codec)
        known = ", ".join(MIDI_SUFFIXES + SCORE_SUFFIXES + TEXT_SUFFIXES)
        raise MaiaInputError(f"{text!r} has an unknown suffix {suffix!r}; maia reads {known}")
    type_name = f"{type(source).__module__}.{type(source).__name__}"
    if type_name.startswith("symusic"):
        return [_raw_from_symusic(source, name="<symusic.Score>")]
    if type_name.startswith("music21"):
        return _raw_from_music21(source, name=getattr(source, "filePath", None) or "<music21 stream>")
    raise MaiaInputError(f"cannot read a {type_name}; give a file path, a symusic.Score or a music21 stream")


def _check_midi_header(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(14)
    if head[:4] != b"MThd":
        raise MaiaInputError(f"{str(path)!r} is not a MIDI file (no MThd header); check the file or its suffix")
    if len(head) < 14:
        raise MaiaInputError(f"{str(path)!r} is a truncated MIDI file (header cut short); re-export it")
    division = int.from_bytes(head[12:14], "big")
    if division == 0:
        raise MaiaInputError(f"{str(path)!r} has 0 ticks per quarter note in its header; re-export it")
    if division & 0x8000:
        raise MaiaInputError(
            f"{str(path)!r} uses SMPTE time division, which maia does not read; re-export it with ticks per quarter"
        )


def _read_midi(path: Path) -> RawPiece:
    import symusic

    _check_midi_header(path)
    try:
        score = symusic.Score(str(path))
    except Exception as exc:  # symusic raises RuntimeError/ValueError with terse messages
        raise MaiaInputError(f"{str(path)!r} is a damaged MIDI file ({exc}); re-export or re-download it") from exc
    return _raw_from_symusic(score, name=str(path))


def _raw_from_symusic(score, name: str) -> RawPiece:
    if score.ticks_per_quarter <= 0:
        raise MaiaInputError(f"{name!r} has {score.ticks_per_quarter} ticks per quarter note; re-export it")
    parts, drums = [], 0
    for track in score.tracks:
        if track.is_drum:
            drums += len(track.notes)
            continue
        if len(track.notes) == 0:
            continue
        a = track.notes.numpy()
        parts.append(NoteArray(a["pitch"], a["time"], a["time"] + a["duration"], a["velocity"]))
    # Whole arrays at once: piano-midi.de files hold ~900 tempo changes each.
    t = score.tempos.numpy()
    tempos = list(zip(t["time"].tolist(), (60_000_000.0 / t["mspq"]).tolist(), strict=True))
    ts = score.time_signatures.numpy()
    signatures = list(zip(ts["time"].tolist(), ts["numerator"].tolist(), ts["denominator"].tolist(), strict=True))
    return RawPiece(NoteArray.concatenate(parts), score.ticks_per_quarter, tempos, signatures, name, drums)


def _read_score_file(path: Path) -> list[RawPiece]:
    import music21

    try:
        parsed = music21.converter.parse(str(path), forceSource=True)
    except Exception as exc:
        raise MaiaInputError(
            f"{str(path)!r} could not be parsed as a {path.suffix} score by music21 ({exc}); check the file"
        ) from exc
    return _raw_from_music21(parsed, name=str(path))


def _read_music21_corpus(name: str) -> list[RawPiece]:
    import music21

    try:
        parsed = music21.corpus.parse(name)
    except Exception as exc:
        raise MaiaInputError(
            f"'music21:{name}' is not in the music21 corpus ({exc}); "
            "list works with music21.corpus.search or use e.g. 'music21:bach/bwv66.6'"
        ) from exc
    return _raw_from_music21(parsed, name=f"music21:{name}")


def _raw_from_music21(stream, name: str) -> list[RawPiece]:
    import music21

    if isinstance(stream, music21.stream.Opus):
        pieces = []
        for i, score in enumerate(stream.scores):
            title = score.metadata.title if score.metadata and score.metadata.title else f"tune {i + 1}"
            pieces.extend(_raw_from_music21(score, name=f"{name}#{i + 1} {title}"))
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
# Quantizing to pieces
# --------------------------------------------------------------------------------------------


def to_piece(raw: RawPiece, codec: NotewiseCodec, transpose: int = 0) -> tuple[Piece, CanonicalReport]:
    """Quantize and merge a raw piece into the codec's canonical form, keeping its metadata."""
    notes, report = codec.canonicalize(raw.notes, ticks_per_quarter=raw.ticks_per_quarter, transpose=transpose)
    spq = codec.config.steps_per_quarter

    tempos = [TempoChange(step, qpm) for step, (_, qpm) in _last_per_step(raw.tempos, raw.ticks_per_quarter, spq)]
    signatures = [
        TimeSignature(step, n, d) for step, (_, n, d) in _last_per_step(raw.time_signatures, raw.ticks_per_quarter, spq)
    ]
    piece = Piece(notes, tempos, signatures, raw.name, raw.composer)
    return piece, report


def _last_per_step(events: list[tuple], ticks_per_quarter: int, spq: int) -> list[tuple[int, tuple]]:
    """(step, event) for the last event at each step, in step order: two changes that snap to one step,
    the later wins. Vectorized: piano-midi.de files hold ~900 tempo changes each."""
    if not events:
        return []
    steps = quantize_ticks(np.array([e[0] for e in events], dtype=np.int64), ticks_per_quarter, spq)
    order = np.argsort(steps, kind="stable")
    ordered = steps[order]
    last = np.append(ordered[1:] != ordered[:-1], True)
    return [(int(ordered[i]), events[order[i]]) for i in np.flatnonzero(last)]


def load_pieces(source, codec: NotewiseCodec | None = None, transpose: int = 0) -> list[Piece]:
    """Read ``source`` (see :func:`read_raw`) and return its pieces on the codec's grid."""
    codec = codec or NotewiseCodec()
    return [to_piece(raw, codec, transpose)[0] for raw in read_raw(source, codec)]


# --------------------------------------------------------------------------------------------
# Notewise text files
# --------------------------------------------------------------------------------------------
#
# One piece per line of words. Lines starting with "#" before a piece give its metadata as
# "# key: value" (name, composer, tempo "STEP QPM", time_signature "STEP NUM DEN"; tempo and
# time_signature may repeat). Blank lines separate nothing and are ignored.


def read_notewise(path, codec: NotewiseCodec | None = None) -> list[RawPiece]:
    """Read a notewise text file: one piece per line, ``# key: value`` metadata lines before it.

    Raises:
        MaiaTokenError: a word outside the vocabulary (the message names it, its line and position).
        MaiaInputError: a malformed metadata line.
    """
    codec = codec or NotewiseCodec()
    spq = codec.config.steps_per_quarter
    pieces, meta = [], _empty_meta()
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            _parse_meta_line(line, meta, f"{str(path)!r} line {number}")
            continue
        words = [w for w in line.split() if not (w.startswith("<") and w.endswith(">"))]
        result = codec.decode(codec.words_to_indices(words, source=f"{str(path)!r} line {number}"))
        name = meta["name"] or f"{path}:{number}"
        pieces.append(RawPiece(result.notes, spq, meta["tempo"], meta["time_signature"], name, 0, meta["composer"]))
        meta = _empty_meta()
    return pieces


def _empty_meta() -> dict:
    return {"name": "", "composer": None, "tempo": [], "time_signature": []}


def _parse_meta_line(line: str, meta: dict, where: str) -> None:
    key, sep, value = line.lstrip("#").partition(":")
    key, value = key.strip().lower(), value.strip()
    if not sep or key not in meta:
        return  # a plain comment
    try:
        if key == "tempo":
            step, qpm = value.split()
            meta["tempo"].append((int(step), float(qpm)))
        elif key == "time_signature":
            step, num, den = value.split()
            meta["time_signature"].append((int(step), int(num), int(den)))
        else:
            meta[key] = value
    except ValueError:
        expected = {"tempo": "STEP QPM", "time_signature": "STEP NUMERATOR DENOMINATOR"}[key]
        raise MaiaInputError(f"{where}: '# {key}: {value}' should read '# {key}: {expected}'") from None


def write_notewise(pieces: list[Piece], path, codec: NotewiseCodec | None = None) -> Path:
    """Write pieces as a notewise text file that :func:`read_notewise` reads back exactly."""
    codec = codec or NotewiseCodec()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(format_notewise(pieces, codec))
    return path


def format_notewise(pieces: list[Piece], codec: NotewiseCodec) -> str:
    """Pieces as notewise text: metadata comment lines, then one line of words per piece."""
    lines = []
    for piece in pieces:
        if piece.name:
            lines.append(f"# name: {piece.name}")
        if piece.composer:
            lines.append(f"# composer: {piece.composer}")
        lines += [f"# tempo: {t.step} {t.qpm:g}" for t in piece.tempos]
        lines += [f"# time_signature: {t.step} {t.numerator} {t.denominator}" for t in piece.time_signatures]
        lines.append(codec.encode_text(piece.notes))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def piece_to_symusic(piece: Piece, steps_per_quarter: int = 12, ticks_per_quarter: int = OUTPUT_TICKS_PER_QUARTER):
    """A one-track piano ``symusic.Score`` of the piece, with its tempos and time signatures."""
    import symusic

    if ticks_per_quarter % steps_per_quarter:
        raise ValueError(f"ticks_per_quarter {ticks_per_quarter} must be a multiple of {steps_per_quarter}")
    scale = ticks_per_quarter // steps_per_quarter
    score = symusic.Score(ticks_per_quarter)
    track = symusic.Track("Piano", 0, False)
    n = piece.notes
    track.notes = symusic.Note.from_numpy(
        (n.start * scale).astype(np.int32),
        ((n.end - n.start) * scale).astype(np.int32),
        n.pitch.astype(np.int8),
        n.velocity.astype(np.int8),
    )
    score.tracks.append(track)
    tempos = piece.tempos or [TempoChange(0, 120.0)]
    score.tempos = symusic.Tempo.from_numpy(
        np.array([t.step * scale for t in tempos], dtype=np.int32),
        np.rint(60_000_000.0 / np.array([t.qpm for t in tempos])).astype(np.int32),
    )
    for ts in piece.time_signatures or [TimeSignature(0, 4, 4)]:
        score.time_signatures.append(symusic.TimeSignature(ts.step * scale, ts.numerator, ts.denominator))
    return score


def write_midi(piece: Piece, path, steps_per_quarter: int = 12) -> Path:
    """Write the piece as a one-track piano MIDI file (480 ticks per quarter)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    piece_to_symusic(piece, steps_per_quarter).dump_midi(str(path))
    return path


def piece_to_music21(piece: Piece, steps_per_quarter: int = 12, split_pitch: int = 60):
    """A two-staff piano ``music21.stream.Score``: notes at or above ``split_pitch`` in the right hand.

    Each staff is one voice of chords: wherever the set of sounding notes changes a new chord
    begins, and a note that goes on sounding is tied into it, pitch by pitch. That is how one staff
    of piano music is notated, and it reads back through :func:`read_raw` note for note.
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
    """Write the piece as MusicXML (two staves, see :func:`piece_to_music21`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    piece_to_music21(piece, steps_per_quarter).write("musicxml", fp=str(path))
    return path
