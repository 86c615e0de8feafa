"""Where a corpus comes from: SOURCE strings become one :class:`FileTask` per file (or dataset row).

A SOURCE is a folder (searched recursively for MIDI, MusicXML, ``.mxl``, ``.krn`` and ABC files), a
single file, ``music21:NAME[,NAME...]`` (composers or collections of the music21 corpus, or single
works such as ``music21:bach/bwv66.6``), or ``hf:NAME[:SPLIT]``, a Hugging Face dataset of MIDI files
(a folder saved with ``save_to_disk``, a local data folder, or a Hub id) with a binary column of file
bytes or a column of paths.

Scanning reads every file once to hash it (the hash is the piece's identity and its cache key) and
settles the first two tiers of the composer rule, which need no parsing: a ``metadata.csv`` beside the
files (or a ``composer`` column of a dataset), then the nearest enclosing folder named after a
composer. The third tier, the score's own metadata, comes with parsing (see ``pieces.py``).
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MaiaInputError
from ..io import MIDI_SUFFIXES, SCORE_SUFFIXES
from ..scores import MUSIC21_PREFIX
from ..tokenization_maia import normalize_composer

__all__ = ["FileTask", "ScanResult", "dataset_columns", "open_dataset_source", "resolve_composer", "scan_sources"]

FOLDER_SUFFIXES = MIDI_SUFFIXES + SCORE_SUFFIXES

HF_PREFIX = "hf:"
METADATA_FILE = "metadata.csv"
METADATA_PATH_COLUMNS = ("midi", "file", "path", "filename", "file_name")
DATASET_BYTES_COLUMNS = ("midi", "bytes", "content", "data", "file")
DATASET_PATH_COLUMNS = ("path", "file", "filename", "file_name", "midi", "midi_path")
CATCH_ALL_COMPOSERS = ("unknown", "traditional")


@dataclass(frozen=True)
class FileTask:
    """One file (or dataset row) to read, with what scanning learnt about it.

    Args:
        label (`str`): readable name, e.g. ``piano-midi-de/midis/Chopin/chpn_op10_e01.mid``.
        content_hash (`str`): sha256 of the file's bytes: the piece identity and the cache key.
        suffix (`str`): the file suffix, which picks the reader.
        path (`str`, *optional*): the file; None for a dataset row that holds the bytes.
        dataset_row (`tuple`, *optional*): ``(name, split, row, column)`` of a dataset row holding the bytes.
        composer (`str`, *optional*): composer named by a ``metadata.csv`` or a dataset column (tier 1).
        composer_origin (`str`): where ``composer`` came from, for the report.
        folder_composer (`str`, *optional*): composer token of the nearest folder named after one (tier 2).
        work_key (`str`): folder and stem; files of one work in several formats share it.
    """

    label: str
    content_hash: str
    suffix: str
    path: str | None = None
    dataset_row: tuple[str, str, int, str] | None = None
    composer: str | None = None
    composer_origin: str = ""
    folder_composer: str | None = None
    work_key: str = ""


@dataclass
class ScanResult:
    """Tasks to encode, files left out (file, reason), and remarks for the report."""

    tasks: list[FileTask] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    remarks: list[str] = field(default_factory=list)


def resolve_composer(name: str | None, known) -> str | None:
    """The composer token name for a composer written any way, or None when there is no token for it.

    An exact match (after :func:`~maia_hf.tokenization_maia.normalize_composer`) wins; otherwise one
    word of the name that is a known composer (``"J.S. Bach"``, ``"Palestrina, Giovanni Perluigi da"``).

    >>> known = {"bach", "cpe_bach", "palestrina", "unknown"}
    >>> resolve_composer("J.S. Bach", known), resolve_composer("C.P.E. Bach", known), resolve_composer("X", known)
    ('bach', 'cpe_bach', None)
    """
    if name is None or not name.strip():
        return None
    normalized = normalize_composer(name)
    if normalized in known:
        return normalized
    words = {normalize_composer(word) for word in normalized.split("_") if word}
    hits = sorted(w for w in words & set(known) if w not in CATCH_ALL_COMPOSERS)
    return hits[0] if len(hits) == 1 else None


def scan_sources(sources, known_composers, progress: bool = True) -> ScanResult:
    """Turn SOURCE strings into tasks: hash every file, find composers, drop duplicates.

    Args:
        sources (`list[str]`): folders, files, ``music21:NAME[,NAME...]`` or ``hf:NAME[:SPLIT]``.
        known_composers (`set[str]`): composer names that have a token.
        progress (`bool`, *optional*, defaults to `True`): show a progress bar while hashing.

    Raises:
        MaiaInputError: a source that does not exist or holds no music file.
    """
    from tqdm.auto import tqdm

    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    if not sources:
        raise MaiaInputError("no SOURCE given; give folders, files, music21:NAME or hf:NAME")
    result = ScanResult()
    metadata = _MetadataIndex(result.remarks)
    known = set(known_composers)
    candidates: list[_Candidate] = []  # in source order; paths and hashes, never file contents
    for source in sources:
        candidates.extend(_expand_source(str(source), result))
    seen_content: dict[str, str] = {}
    seen_work: dict[str, str] = {}
    for item in tqdm(candidates, desc="scanning files", unit="file", disable=not progress):
        try:
            task = item.to_task(metadata, known)
        except OSError as exc:  # vanished, unreadable: left out like any bad file
            result.skipped.append((item.label, f"cannot be read ({exc.strerror or exc}); check the file"))
            continue
        if task.content_hash in seen_content:
            result.skipped.append((task.label, f"same bytes as {seen_content[task.content_hash]}: left out"))
            continue
        if task.work_key and task.work_key in seen_work:
            other = seen_work[task.work_key]
            result.skipped.append((task.label, f"the same work as {other} in another format: left out"))
            continue
        seen_content[task.content_hash] = task.label
        if task.work_key:
            seen_work[task.work_key] = task.label
        result.tasks.append(task)
    return result


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------


@dataclass
class _Candidate:
    """A file or dataset row found by expanding a source, before it is hashed."""

    label: str
    suffix: str
    path: Path | None = None
    root: Path | None = None  # folders between the file and here may name its composer
    dataset_row: tuple[str, str, int, str] | None = None
    content_hash: str | None = None  # of a dataset row's bytes, hashed while expanding
    composer: str | None = None
    composer_origin: str = ""

    def to_task(self, metadata: _MetadataIndex, known: set[str]) -> FileTask:
        content_hash = self.content_hash or hashlib.sha256(self.path.read_bytes()).hexdigest()
        composer, origin = self.composer, self.composer_origin
        folder_composer = None
        if self.path is not None and self.root is not None:
            if composer is None:
                composer, origin = metadata.lookup(self.path, self.root.parent)
            folder_composer = _folder_composer(self.path, self.root, known)
        work_key = str(self.path.with_suffix("")) if self.path is not None else ""
        return FileTask(
            label=self.label,
            content_hash=content_hash,
            suffix=self.suffix,
            path=str(self.path) if self.path is not None else None,
            dataset_row=self.dataset_row,
            composer=composer,
            composer_origin=origin,
            folder_composer=folder_composer,
            work_key=work_key,
        )


def _expand_source(source: str, result: ScanResult) -> list[_Candidate]:
    if source.startswith(MUSIC21_PREFIX):
        return _expand_music21(source[len(MUSIC21_PREFIX) :])
    if source.startswith(HF_PREFIX):
        return _expand_dataset(source[len(HF_PREFIX) :], result)
    path = Path(source).expanduser()
    if not path.exists():
        raise MaiaInputError(
            f"{source!r} does not exist; give a folder, a file, music21:NAME (e.g. music21:bach) or hf:NAME"
        )
    if path.is_file():
        root = path.parent
        return [_Candidate(f"{root.name}/{path.name}", path.suffix.lower(), path=path, root=root)]
    found = []
    for folder, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            file = Path(folder) / name
            if not name.startswith(".") and file.suffix.lower() in FOLDER_SUFFIXES:
                label = f"{path.resolve().name}/{file.relative_to(path).as_posix()}"
                found.append(_Candidate(label, file.suffix.lower(), path=file, root=path))
    if not found:
        raise MaiaInputError(
            f"{source!r} holds no music file (searched recursively for {', '.join(FOLDER_SUFFIXES)}); check the folder"
        )
    return found


def _expand_music21(names: str) -> list[_Candidate]:
    import music21

    root = Path(music21.corpus.__file__).parent
    found = []
    for name in (n.strip() for n in names.split(",")):
        if not name:
            continue
        paths = [Path(p) for p in music21.corpus.getComposer(name)]
        if not paths:
            try:
                work = music21.corpus.getWork(name)
            except music21.exceptions21.CorpusException:
                work = []
            paths = [Path(p) for p in (work if isinstance(work, list) else [work])]
        paths = [p for p in paths if p.suffix.lower() in FOLDER_SUFFIXES]
        if not paths:
            folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
            raise MaiaInputError(
                f"'music21:{name}' names no composer, collection or work of the music21 corpus; "
                f"use one of {', '.join(folders)}, or a work such as music21:bach/bwv66.6"
            )
        for path in sorted(paths):
            rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
            top = root / rel.split("/")[0] if path.is_relative_to(root) else path.parent
            found.append(_Candidate(f"music21:{rel}", path.suffix.lower(), path=path, root=top))
    return found


def _folder_composer(path: Path, root: Path, known: set[str]) -> str | None:
    """The composer of the nearest folder, from the file's own up to ``root``, named after one."""
    folder = path.parent
    while True:
        composer = resolve_composer(folder.name, known)
        if composer is not None:
            return composer
        if folder == root or folder.parent == folder or not folder.is_relative_to(root):
            return None
        folder = folder.parent


class _MetadataIndex:
    """``metadata.csv`` files (columns ``composer`` and one of ``midi``/``file``/``path``) by folder."""

    def __init__(self, remarks: list[str]):
        self._tables: dict[Path, dict[str, str] | None] = {}
        self._remarks = remarks

    def lookup(self, path: Path, top: Path) -> tuple[str | None, str]:
        """The composer a ``metadata.csv`` in the file's folder or above (up to ``top``) gives it."""
        folder = path.parent
        while True:
            table = self._table(folder)
            if table is not None:
                composer = table.get(path.relative_to(folder).as_posix())
                if composer:  # a blank composer cell says nothing: the next rules decide
                    return composer, f"{folder / METADATA_FILE}"
            if folder == top or folder.parent == folder or not folder.is_relative_to(top):
                return None, ""
            folder = folder.parent

    def _table(self, folder: Path) -> dict[str, str] | None:
        if folder not in self._tables:
            self._tables[folder] = self._read(folder / METADATA_FILE)
        return self._tables[folder]

    def _read(self, file: Path) -> dict[str, str] | None:
        if not file.is_file():
            return None
        try:
            with open(file, newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                columns = {c.strip().lower(): c for c in reader.fieldnames or []}
                path_column = next((columns[c] for c in METADATA_PATH_COLUMNS if c in columns), None)
                if "composer" not in columns or path_column is None:
                    columns_needed = f"a 'composer' column and a file column ({', '.join(METADATA_PATH_COLUMNS)})"
                    self._remarks.append(f"{file} was ignored: it lacks {columns_needed}")
                    return None
                return {
                    Path(row[path_column].strip()).as_posix(): (row[columns["composer"]] or "").strip()
                    for row in reader
                    if row.get(path_column)
                }
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            self._remarks.append(f"{file} was ignored: it could not be read as CSV ({exc})")
            return None


# --------------------------------------------------------------------------------------------
# Hugging Face datasets of MIDI files
# --------------------------------------------------------------------------------------------


def open_dataset_source(name: str):
    """Load ``hf:NAME``: a folder saved with ``save_to_disk``, a local data folder, or a Hub id.

    Returns a ``DatasetDict`` (a single ``Dataset`` becomes the split ``train``).
    """
    import datasets

    path = Path(name).expanduser()
    try:
        if path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "state.json").exists()):
            loaded = datasets.load_from_disk(str(path))
        else:
            loaded = datasets.load_dataset(str(path) if path.exists() else name)
    except Exception as exc:
        raise MaiaInputError(
            f"'hf:{name}' could not be loaded as a dataset ({type(exc).__name__}: {exc}); give a folder saved "
            "with Dataset.save_to_disk, a local folder of data files, or a Hub id this machine can reach"
        ) from exc
    if isinstance(loaded, datasets.Dataset):
        loaded = datasets.DatasetDict({"train": loaded})
    return loaded


def dataset_columns(dataset, label: str) -> tuple[str, str]:
    """The column holding the files and its kind: ``"bytes"``, ``"struct"`` (bytes and path) or ``"path"``."""
    from datasets import Value

    features = dataset.features

    def kind(column):
        feature = features[column]
        if isinstance(feature, Value) and feature.dtype in ("binary", "large_binary"):
            return "bytes"
        if isinstance(feature, dict) and "bytes" in feature:
            return "struct"
        if isinstance(feature, Value) and feature.dtype in ("string", "large_string"):
            return "path"
        return None

    ordered = [c for c in DATASET_BYTES_COLUMNS if c in features] + list(features)
    for column in ordered:
        if kind(column) in ("bytes", "struct"):
            return column, kind(column)
    for column in [c for c in DATASET_PATH_COLUMNS if c in features]:
        if kind(column) == "path":
            return column, "path"
    raise MaiaInputError(
        f"{label} has no column of MIDI file bytes and no column of paths (its columns: {', '.join(features)}); "
        "name a binary column 'midi' or a string column 'path'"
    )


def _expand_dataset(spec: str, result: ScanResult) -> list[_Candidate]:
    name, split = spec, None
    if not Path(spec).expanduser().exists() and ":" in spec:
        name, split = spec.rsplit(":", 1)
    loaded = open_dataset_source(name)
    if split is not None and split not in loaded:
        raise MaiaInputError(f"'hf:{name}' has no split {split!r}; its splits are {', '.join(loaded)}")
    found = []
    for split_name in [split] if split else list(loaded):
        dataset = loaded[split_name]
        column, kind = dataset_columns(dataset, f"'hf:{name}' split {split_name!r}")
        columns = [column] + (["composer"] if "composer" in dataset.column_names and column != "composer" else [])
        row = 0
        for batch in dataset.select_columns(columns).iter(batch_size=64):
            for i, value in enumerate(batch[column]):
                composer = batch["composer"][i] if "composer" in batch else None
                candidate = _dataset_candidate(name, split_name, row, column, kind, value, result)
                if candidate is not None:
                    candidate.composer = composer or None
                    candidate.composer_origin = f"column 'composer' of hf:{name}" if composer else ""
                    found.append(candidate)
                row += 1
    return found


def _dataset_candidate(name, split, row, column, kind, value, result: ScanResult) -> _Candidate | None:
    where = f"hf:{name}:{split}/{row}"
    file = value.get("path") if kind == "struct" else (value if kind == "path" else None)
    if kind in ("bytes", "struct"):
        data = value.get("bytes") if kind == "struct" else value
        if not data:
            result.skipped.append((where, "the row holds no bytes"))
            return None
        suffix = Path(file).suffix.lower() if file else ""
        label = f"{where} ({Path(file).name})" if file else where
        return _Candidate(
            label,
            suffix if suffix in FOLDER_SUFFIXES else ".mid",
            dataset_row=(name, split, row, column),
            content_hash=hashlib.sha256(data).hexdigest(),
        )
    path = Path(file).expanduser()
    base = Path(name).expanduser()
    if not path.is_absolute() and base.is_dir():
        path = base / path
    if not path.is_file():
        result.skipped.append((where, f"{str(path)!r} does not exist"))
        return None
    return _Candidate(f"{where} ({path.name})", path.suffix.lower(), path=path, root=path.parent)
