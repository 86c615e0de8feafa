"""Reading and writing music as notes: dispatch by file kind, MIDI through symusic, notewise text.

:func:`read_raw` reads any source into :class:`~maia_hf.notes.RawPiece` objects (notes in ticks,
exactly as the file has them): MIDI here through symusic, scores through music21 in
:mod:`maia_hf.scores`, notewise text here. :func:`to_piece` quantizes and merges them with the codec
into a :class:`~maia_hf.notes.Piece`. MIDI is never parsed with music21 (slow, and it changes
notes). Writing: MIDI (:func:`write_midi`), notewise text (:func:`write_notewise`) and, re-exported
from :mod:`maia_hf.scores`, MusicXML (:func:`write_musicxml`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .codec import CanonicalReport, NotewiseCodec, quantize_ticks
from .errors import MaiaInputError
from .notes import NoteArray, Piece, RawPiece, TempoChange, TimeSignature
from .scores import (
    MUSIC21_PREFIX,
    piece_to_music21,
    raw_from_music21,
    read_music21_corpus,
    read_score_file,
    write_musicxml,
)

__all__ = [
    "MIDI_SUFFIXES",
    "MUSIC21_PREFIX",
    "SCORE_SUFFIXES",
    "TEXT_SUFFIXES",
    "RawPiece",
    "format_notewise",
    "load_pieces",
    "piece_to_music21",
    "piece_to_symusic",
    "parse_notewise",
    "read_notewise",
    "read_raw",
    "to_piece",
    "write_midi",
    "write_piece",
    "write_musicxml",
    "write_notewise",
]

MIDI_SUFFIXES = (".mid", ".midi", ".kar", ".smf")
TEXT_SUFFIXES = (".txt", ".notewise")
SCORE_SUFFIXES = (".xml", ".musicxml", ".mxl", ".krn", ".abc")
OUTPUT_TICKS_PER_QUARTER = 480


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
            return read_music21_corpus(text[len(MUSIC21_PREFIX) :])
        path = Path(text)
        if not path.exists():
            if path.is_symlink():
                raise MaiaInputError(f"{text!r} is a broken or looping symbolic link; point it at a MIDI or score file")
            raise MaiaInputError(f"{text!r} does not exist; give the path of a MIDI or score file")
        if path.is_dir():
            raise MaiaInputError(f"{text!r} is a folder; give a file (folders are read by `maia data build`)")
        if path.stat().st_size == 0:
            raise MaiaInputError(f"{text!r} is empty (0 bytes); re-export or re-download it")
        suffix = path.suffix.lower()
        if suffix in MIDI_SUFFIXES:
            return [_read_midi(path)]
        if suffix in SCORE_SUFFIXES:
            return read_score_file(path)
        if suffix in TEXT_SUFFIXES:
            return read_notewise(path, codec)
        known = ", ".join(MIDI_SUFFIXES + SCORE_SUFFIXES + TEXT_SUFFIXES)
        raise MaiaInputError(f"{text!r} has an unknown suffix {suffix!r}; maia reads {known}")
    type_name = f"{type(source).__module__}.{type(source).__name__}"
    if type_name.startswith("symusic"):
        return [_raw_from_symusic(source, name="<symusic.Score>")]
    if type_name.startswith("music21"):
        return raw_from_music21(source, name=getattr(source, "filePath", None) or "<music21 stream>")
    raise MaiaInputError(f"cannot read a {type_name}; give a file path, a symusic.Score or a music21 stream")


def _check_midi_header(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(22)
    if head[:4] != b"MThd":
        raise MaiaInputError(f"{str(path)!r} is not a MIDI file (no MThd header); check the file or its suffix")
    if len(head) < 14:
        raise MaiaInputError(f"{str(path)!r} is a truncated MIDI file (header cut short); re-export it")
    length, midi_format, tracks = (int.from_bytes(head[i : i + n], "big") for i, n in ((4, 4), (8, 2), (10, 2)))
    if length != 6 or midi_format > 2 or tracks == 0:
        raise MaiaInputError(
            f"{str(path)!r} has a damaged MIDI header (length {length}, format {midi_format}, {tracks} tracks); "
            "re-export or re-download it"
        )
    division = int.from_bytes(head[12:14], "big")
    if division == 0:
        raise MaiaInputError(f"{str(path)!r} has 0 ticks per quarter note in its header; re-export it")
    if division & 0x8000:
        raise MaiaInputError(
            f"{str(path)!r} uses SMPTE time division, which maia does not read; re-export it with ticks per quarter"
        )
    if len(head) < 22 or head[14:18] != b"MTrk":
        raise MaiaInputError(f"{str(path)!r} is a truncated MIDI file (no track after the header); re-export it")


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
    with np.errstate(divide="ignore"):  # 0 microseconds a quarter gives inf, which to_piece leaves out
        qpm = 60_000_000.0 / t["mspq"]
    tempos = list(zip(t["time"].tolist(), qpm.tolist(), strict=True))
    ts = score.time_signatures.numpy()
    signatures = list(zip(ts["time"].tolist(), ts["numerator"].tolist(), ts["denominator"].tolist(), strict=True))
    return RawPiece(NoteArray.concatenate(parts), score.ticks_per_quarter, tempos, signatures, name, drums)


# --------------------------------------------------------------------------------------------
# Quantizing to pieces
# --------------------------------------------------------------------------------------------


def to_piece(raw: RawPiece, codec: NotewiseCodec, transpose: int = 0) -> tuple[Piece, CanonicalReport]:
    """Quantize and merge a raw piece into the codec's canonical form, keeping its metadata.

    Tempo and time-signature events no piece can have (a tempo of 0, infinite or negative quarters per
    minute, a time signature of 0 beats or a denominator that is not a power of two) are left out, so
    that every entry (MIDI, scores, text) gives pieces whose metadata every writer accepts.
    """
    notes, report = codec.canonicalize(raw.notes, ticks_per_quarter=raw.ticks_per_quarter, transpose=transpose)
    spq = codec.config.steps_per_quarter

    tempos = [
        TempoChange(step, qpm)
        for step, (_, qpm) in _last_per_step([t for t in raw.tempos if valid_tempo(t[1])], raw.ticks_per_quarter, spq)
    ]
    meters = [ts for ts in raw.time_signatures if valid_time_signature(ts[1], ts[2])]
    signatures = [TimeSignature(step, n, d) for step, (_, n, d) in _last_per_step(meters, raw.ticks_per_quarter, spq)]
    piece = Piece(notes, tempos, signatures, raw.name, raw.composer)
    return piece, report


MAX_QPM = 1000.0  # quarter notes per minute; real tempos stay far below, a broken file does not


def valid_tempo(qpm: float) -> bool:
    """A tempo a piece can have: finite, positive, at most `MAX_QPM` quarters per minute."""
    return bool(np.isfinite(qpm)) and 0 < qpm <= MAX_QPM


def valid_time_signature(numerator: int, denominator: int) -> bool:
    """A time signature a score can have: 1..64 beats of a power-of-two note value (1..64)."""
    return 1 <= numerator <= 64 and denominator in (1, 2, 4, 8, 16, 32, 64)


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
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    return parse_notewise(text, codec, where=lambda number: f"{str(path)!r} line {number}", name=str(path))


def parse_notewise(text: str, codec: NotewiseCodec | None = None, where=None, name: str = "text") -> list[RawPiece]:
    """Parse notewise text (the format of :func:`read_notewise`) into one `RawPiece` per line of words.

    Args:
        text (`str`): ``# key: value`` metadata lines, then a line of words, for each piece.
        where (*optional*): ``where(line_number)`` names a line in error messages (default ``"line N"``).
        name (`str`, *optional*): piece names default to ``"{name}:{line}"``.

    Raises:
        MaiaTokenError: a word outside the vocabulary (the message names it, its line and position).
        MaiaInputError: a malformed metadata line.
    """
    codec = codec or NotewiseCodec()
    where = where or (lambda number: f"line {number}")
    spq = codec.config.steps_per_quarter
    pieces, meta = [], _empty_meta()
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            _parse_meta_line(line, meta, where(number))
            continue
        words = [w for w in line.split() if not (w.startswith("<") and w.endswith(">"))]
        result = codec.decode(codec.words_to_indices(words, source=where(number)))
        piece_name = meta["name"] or f"{name}:{number}"
        pieces.append(
            RawPiece(result.notes, spq, meta["tempo"], meta["time_signature"], piece_name, 0, meta["composer"])
        )
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
            step, qpm = int(step), float(qpm)
            if step < 0 or not valid_tempo(qpm):
                raise MaiaInputError(
                    f"{where}: '# tempo: {value}' needs a step >= 0 and a tempo above 0 and at most "
                    f"{MAX_QPM:.0f} quarter notes a minute, e.g. '# tempo: 0 120'"
                )
            meta["tempo"].append((step, qpm))
        elif key == "time_signature":
            step, num, den = value.split()
            step, num, den = int(step), int(num), int(den)
            if step < 0 or not valid_time_signature(num, den):
                raise MaiaInputError(
                    f"{where}: '# time_signature: {value}' needs a step >= 0, 1 to 64 beats and a power-of-two "
                    "denominator up to 64, e.g. '# time_signature: 0 3 4'"
                )
            meta["time_signature"].append((step, num, den))
        else:
            meta[key] = value
    except MaiaInputError:
        raise
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
    _check_tick_range(piece, scale)
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


MAX_MIDI_TICK = 2**31 - 1  # MIDI files and symusic count ticks in 32 bits


def _check_tick_range(piece: Piece, scale: int) -> None:
    last = max([int(piece.notes.end.max()) if len(piece.notes) else 0]
               + [t.step for t in piece.tempos] + [ts.step for ts in piece.time_signatures])  # fmt: skip
    if last * scale > MAX_MIDI_TICK:
        raise MaiaInputError(
            f"{piece.name or 'the piece'!r} lasts {last:,} steps, {last * scale:,} MIDI ticks, past the 32-bit limit "
            f"of a MIDI file ({MAX_MIDI_TICK:,}); write a shorter piece or split it"
        )


def write_midi(piece: Piece, path, steps_per_quarter: int = 12) -> Path:
    """Write the piece as a one-track piano MIDI file (480 ticks per quarter).

    Raises:
        MaiaInputError: ``path`` does not end in a MIDI suffix (``.mid``...), or the piece is too long for MIDI.
    """
    path = Path(path)
    if path.suffix.lower() not in MIDI_SUFFIXES:
        raise MaiaInputError(
            f"{str(path)!r} does not name a MIDI file; write MIDI to a {'/'.join(MIDI_SUFFIXES)} path, or use "
            "write_piece() to write the format its suffix names"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    piece_to_symusic(piece, steps_per_quarter).dump_midi(str(path))
    return path


WRITABLE_SUFFIXES = MIDI_SUFFIXES + (".musicxml", ".xml", ".mxl") + TEXT_SUFFIXES


def write_piece(piece: Piece, path, codec: NotewiseCodec | None = None) -> Path:
    """Write the piece in the format its suffix names: MIDI, MusicXML (``.musicxml``, ``.xml``, ``.mxl``) or
    notewise text (``.txt``, ``.notewise``).

    Raises:
        MaiaInputError: a suffix maia does not write (the message lists those it does).
    """
    from .scores import write_musicxml

    codec = codec or NotewiseCodec()
    path = Path(path)
    suffix = path.suffix.lower()
    spq = codec.config.steps_per_quarter
    if suffix in MIDI_SUFFIXES:
        return write_midi(piece, path, spq)
    if suffix in (".musicxml", ".xml", ".mxl"):
        return write_musicxml(piece, path, spq)
    if suffix in TEXT_SUFFIXES:
        return write_notewise([piece], path, codec)
    raise MaiaInputError(
        f"{str(path)!r}: maia writes {', '.join(WRITABLE_SUFFIXES)} (and .wav through `maia detokenize` or "
        "`maia generate --wav`); choose one of those suffixes"
    )
