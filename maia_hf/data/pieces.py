"""Reading each file once: canonical notes per piece, cached by file content and codec settings.

Parsing is the slow part of a build (music21 takes 0.25-0.4 s per score), so the result of reading a
file, its pieces as canonical notes (quantized, folded, merged; transposition 0), is stored in the
cache as one ``.npz`` per file. The key is a hash of the file's bytes, its suffix (which picks the
reader), the codec settings and the reader versions, so a moved or renamed file is still a hit and
an edited one is not. Files that cannot be read are cached too (with the reason), so a rebuild does
not parse a broken score again.

The workers here need only the codec and ``io``: no tokenizer, no torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import warnings
import zipfile
from dataclasses import asdict, dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np

from ..codec import CanonicalReport, CodecConfig, NoteArray, NotewiseCodec, Piece, quantize_ticks
from ..errors import MaiaError, MaiaInputError
from ..io import MIDI_SUFFIXES, SCORE_SUFFIXES, read_raw, to_piece
from .sources import FileTask, open_dataset_source

__all__ = [
    "CACHE_VERSION",
    "FileResult",
    "PieceCache",
    "ReadPiece",
    "default_cache_dir",
    "encode_file",
    "load_notes",
    "unfolded_notes",
]

# Bump when what a cache file holds, or how it is computed, changes.
CACHE_VERSION = 2


def default_cache_dir() -> Path:
    """``$MAIA_CACHE``, else ``$XDG_CACHE_HOME/maia``, else ``~/.cache/maia``."""
    if os.environ.get("MAIA_CACHE"):
        return Path(os.environ["MAIA_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "maia"


@dataclass
class FileResult:
    """What reading one file gave: its pieces (name, file-metadata composer, notes...) or why it failed.

    Args:
        task_index (`int`): position of the task in the scan.
        cache_file (`str`, *optional*): the ``.npz`` holding the pieces' notes.
        parsed (`bool`): the file was parsed in this build (False: it came from the cache).
        error (`str`, *optional*): why the file could not be read.
        pieces (`list[dict]`): per piece ``name``, ``composer`` (from the file's metadata, or None),
            ``notes`` (canonical), ``drum_notes_dropped`` and ``canonical`` (a `CanonicalReport` as a dict).
    """

    task_index: int
    cache_file: str | None = None
    parsed: bool = False
    error: str | None = None
    pieces: list[dict] = field(default_factory=list)


class PieceCache:
    """One ``.npz`` per file under ``root/pieces/``, keyed by content, suffix, codec settings and readers.

    Args:
        root (`Path`): the cache folder (see :func:`default_cache_dir`).
        codec_config (`CodecConfig`): the codec settings the notes are computed with.
    """

    def __init__(self, root, codec_config: CodecConfig):
        self.root = Path(root).expanduser() / "pieces"
        self.codec_config = codec_config
        self._salt = json.dumps(
            {
                "cache_version": CACHE_VERSION,
                "codec": codec_config.to_dict(),
                "symusic": _version("symusic"),
                "music21": _version("music21"),
            },
            sort_keys=True,
        )

    def key(self, task: FileTask) -> str:
        text = f"{self._salt}|{task.suffix}|{task.content_hash}"
        return hashlib.sha256(text.encode()).hexdigest()

    def file_for(self, task: FileTask) -> Path:
        key = self.key(task)
        return self.root / key[:2] / f"{key}.npz"

    def lookup(self, task: FileTask, index: int) -> FileResult | None:
        """The cached result of a task, or None (a miss, or an unreadable cache file)."""
        file = self.file_for(task)
        if not file.exists():
            return None
        try:
            with np.load(file, allow_pickle=False) as npz:
                meta = json.loads(str(npz["meta"]))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None  # a damaged cache file is rebuilt
        # The same bytes may have had another name when they were cached: rename.
        renames = [(b, a) for b, a in ((meta.get("path"), task.path), (meta.get("label"), task.label)) if b and a]

        def rename(text):
            for before, now in renames:
                text = text.replace(before, now) if text else text
            return text

        for piece in meta["pieces"]:
            piece["name"] = rename(piece["name"])
        return FileResult(index, str(file), parsed=False, error=rename(meta.get("error")), pieces=meta["pieces"])

    def store(self, task: FileTask, pieces, error: str | None = None) -> Path:
        """Write the pieces' notes (or the error) atomically; returns the cache file.

        ``pieces`` holds :class:`ReadPiece` records.
        """
        file = self.file_for(task)
        file.parent.mkdir(parents=True, exist_ok=True)
        arrays = {}
        for prefix, notes in (("", [p.piece.notes for p in pieces]), ("unfolded_", [p.unfolded for p in pieces])):
            notes = [n if n is not None else NoteArray.empty() for n in notes]
            joined = NoteArray.concatenate(notes)
            arrays[f"{prefix}pitch"] = joined.pitch.astype(np.int16)
            arrays[f"{prefix}start"] = joined.start.astype(np.int32)
            arrays[f"{prefix}end"] = joined.end.astype(np.int32)
            arrays[f"{prefix}velocity"] = joined.velocity.astype(np.int16)
            arrays[f"{prefix}offsets"] = np.cumsum([0] + [len(n) for n in notes]).astype(np.int64)
        meta = {
            "label": task.label,
            "path": task.path,
            "error": error,
            "pieces": [
                {
                    "name": p.piece.name,
                    "composer": p.piece.composer,
                    "notes": len(p.piece.notes),
                    "drum_notes_dropped": p.drum_notes_dropped,
                    "canonical": asdict(p.report),
                }
                for p in pieces
            ],
        }
        fd, tmp = tempfile.mkstemp(dir=file.parent, suffix=".tmp.npz")
        os.close(fd)
        try:
            np.savez(tmp, meta=np.array(json.dumps(meta)), **arrays)
            os.replace(tmp, file)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
        return file


@dataclass
class ReadPiece:
    """A piece as read: canonical, with its report, and its notes before folding when some folded.

    ``unfolded`` (quantized, at least one step long, pitches as in the file) is kept only for the
    rare pieces with notes outside the piano range, so that a transposition can follow the spec
    exactly (transpose the file's pitches, then fold); see :func:`maia_hf.data.encode_transposed`.
    """

    piece: Piece
    report: CanonicalReport
    drum_notes_dropped: int = 0
    unfolded: NoteArray | None = None


def load_notes(cache_file: str) -> list[tuple[NoteArray, NoteArray | None]]:
    """Each piece of a cache file: its canonical notes, and its notes before folding (None if none folded)."""

    def split(npz, prefix):
        fields = ("pitch", "start", "end", "velocity", "offsets")
        pitch, start, end, velocity, offsets = (npz[prefix + field] for field in fields)
        bounds = zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)
        return [NoteArray(pitch[a:b], start[a:b], end[a:b], velocity[a:b]) for a, b in bounds]

    with np.load(cache_file, allow_pickle=False) as npz:
        canonical, unfolded = split(npz, ""), split(npz, "unfolded_")
    return [(notes, before if len(before) else None) for notes, before in zip(canonical, unfolded, strict=True)]


def unfolded_notes(raw, codec: NotewiseCodec) -> NoteArray:
    """A raw piece's notes quantized and lengthened as :meth:`NotewiseCodec.canonicalize` does, not yet folded."""
    spq = codec.config.steps_per_quarter
    start = quantize_ticks(raw.notes.start, raw.ticks_per_quarter, spq)
    end = quantize_ticks(raw.notes.end, raw.ticks_per_quarter, spq)
    end = np.where(end <= start, start + 1, end)
    return NoteArray(raw.notes.pitch, start, end, np.clip(raw.notes.velocity, 1, 127))


def encode_file(task: FileTask, index: int, cache: PieceCache) -> FileResult:
    """Read one file into canonical pieces and store them in the cache; never raises for a bad file."""
    codec = NotewiseCodec(cache.codec_config)
    try:
        raws = read_task(task, codec)
        pieces = []
        for raw in raws:
            piece, report = to_piece(raw, codec)
            unfolded = unfolded_notes(raw, codec) if report.folded else None
            pieces.append(ReadPiece(piece, report, raw.drum_notes_dropped, unfolded))
    except MaiaError as exc:  # a bad file: remember why, so a rebuild does not parse it again
        file = cache.store(task, [], error=str(exc))
        return FileResult(index, str(file), parsed=True, error=str(exc))
    except Exception as exc:  # a reader failed unexpectedly: report it, do not cache it
        return FileResult(index, None, parsed=True, error=f"could not be read ({type(exc).__name__}: {exc})")
    file = cache.store(task, pieces)
    result = cache.lookup(task, index)
    result.parsed = True
    return result


def read_task(task: FileTask, codec: NotewiseCodec):
    """The raw pieces of a task: a file through :func:`maia_hf.io.read_raw`, a dataset row through a temp file.

    Score files are parsed here (``forceSource``, errors naming the task's label) and handed to
    ``read_raw`` as a stream, which also reads each score's composer from its metadata.
    """
    if task.dataset_row is not None:
        return _read_dataset_row(task, codec)
    if task.suffix in SCORE_SUFFIXES:
        return _read_score(task)
    raws = read_raw(task.path, codec)
    for raw in raws:
        raw.name = raw.name.replace(task.path, task.label, 1) if raw.name.startswith(task.path) else raw.name
    return raws


def _read_score(task: FileTask):
    import music21

    path = Path(task.path)
    if path.stat().st_size == 0:
        raise MaiaInputError(f"{task.label!r} is empty (0 bytes); re-export or re-download it")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stream = music21.converter.parse(str(path), forceSource=True)
    except Exception as exc:
        raise MaiaInputError(
            f"{task.label!r} could not be parsed as a {path.suffix} score by music21 ({exc}); check the file"
        ) from exc
    raws = read_raw(stream)
    for raw in raws:
        raw.name = raw.name.replace("<music21 stream>", task.label, 1)
    return raws


_DATASETS: dict[str, object] = {}  # hf:NAME -> its DatasetDict, loaded once per worker


def _read_dataset_row(task: FileTask, codec: NotewiseCodec):
    name, split, row, column = task.dataset_row
    if name not in _DATASETS:
        _DATASETS[name] = open_dataset_source(name)
    value = _DATASETS[name][split][row][column]
    data = value["bytes"] if isinstance(value, dict) else value
    suffix = task.suffix if task.suffix in MIDI_SUFFIXES + SCORE_SUFFIXES else ".mid"
    fd, tmp = tempfile.mkstemp(suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            raws = read_raw(tmp, codec)
        except MaiaError as exc:
            raise type(exc)(str(exc).replace(tmp, task.label)) from None
    finally:
        os.remove(tmp)
    for raw in raws:
        raw.name = raw.name.replace(tmp, task.label, 1)
    return raws


def _version(package: str) -> str:
    try:
        return importlib_metadata.version(package)
    except importlib_metadata.PackageNotFoundError:
        return "absent"
