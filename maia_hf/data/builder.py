"""Build a ``datasets.DatasetDict`` of notewise windows from music files: split, augment, cut, write.

A build runs in three passes, each with a progress bar:

1. **scan** (``sources.py``): find the files, hash them, settle composers from ``metadata.csv`` and
   folder names, leave out duplicates;
2. **read** (``pieces.py``): each file not in the cache is parsed (in ``num_proc`` processes) into
   canonical notes, which go to the cache;
3. **write**: per split, ``Dataset.from_generator`` (``num_proc`` shards for ``train``) writes one
   row per piece and key (its tokens from the cache, or encoded from the cached notes); a batched
   ``map`` in Arrow format cuts them into windows (vectorized: writing windows one Python dict at a
   time cost 0.2 ms each); then ``save_to_disk``. No pass holds more than one file's notes or 64
   sequences at a time.

The rules that cut the corpus (split by piece, keys, windows) are in ``windows.py``; turning a
planned piece into its sequences is in ``encoding.py``. This module plans the pieces, runs the
passes and saves the result.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from ..codec import CanonicalReport
from ..errors import MaiaInputError, MaiaTokenError
from .encoding import PlannedPiece, SequenceWriter, balanced_shards, generate_sequences
from .pieces import FileResult, PieceCache, default_cache_dir, encode_file
from .report import BuildReport, dataset_card
from .sources import FileTask, resolve_composer, scan_sources
from .stats import SPLITS, dataset_stats
from .windows import DEFAULT_TRANSPOSITIONS, assign_split, cut_windows, dataset_features, parse_transpositions

__all__ = ["BuildConfig", "build_dataset", "load_corpus"]

REPORT_FILE = "build_report.json"
CARD_FILE = "README.md"
TOKENIZER_FOLDER = "tokenizer"


@dataclass
class BuildConfig:
    """How a corpus is cut and split.

    Args:
        seq_len (`int`, *optional*, defaults to 512): tokens per window.
        overlap (`float`, *optional*, defaults to 0.5): fraction of a window shared with the next one
            (0.5: windows start every 256 tokens, as the original maia did).
        transpositions (*optional*, defaults to -5..+6): offsets in semitones of the training copies
            (see :func:`parse_transpositions` for the accepted forms).
        validation_fraction (`float`, *optional*, defaults to 0.05): share of pieces in ``validation``.
        test_fraction (`float`, *optional*, defaults to 0.05): share of pieces in ``test``.
    """

    seq_len: int = 512
    overlap: float = 0.5
    transpositions: tuple[int, ...] = DEFAULT_TRANSPOSITIONS
    validation_fraction: float = 0.05
    test_fraction: float = 0.05

    def __post_init__(self):
        self.transpositions = parse_transpositions(self.transpositions)
        if self.seq_len < 4:
            raise MaiaInputError(f"seq_len must be at least 4 tokens, got {self.seq_len}")
        if not 0 <= self.overlap < 1:
            raise MaiaInputError(f"overlap must be in [0, 1) (0.5 is half a window), got {self.overlap}")
        fractions = (self.validation_fraction, self.test_fraction)
        if min(fractions) < 0 or sum(fractions) >= 1:
            raise MaiaInputError(
                f"validation and test fractions must be >= 0 and leave pieces for training, got {fractions}"
            )

    @property
    def stride(self) -> int:
        return max(1, self.seq_len - round(self.seq_len * self.overlap))

    def to_dict(self) -> dict:
        return {**asdict(self), "transpositions": list(self.transpositions), "stride": self.stride}


# --------------------------------------------------------------------------------------------
# The build
# --------------------------------------------------------------------------------------------


def build_dataset(
    sources,
    out,
    config: BuildConfig | None = None,
    *,
    tokenizer=None,
    num_proc: int = 1,
    cache_dir=None,
    use_cache: bool = True,
    progress: bool = True,
    **overrides,
) -> BuildReport:
    """Build the corpus from ``sources`` and save it as a ``DatasetDict`` in ``out``.

    Args:
        sources (`list[str]`): folders, files, ``music21:NAME[,NAME...]`` or ``hf:NAME[:SPLIT]``.
        out (`str` or `Path`): the output folder; it is replaced if it holds an earlier maia build.
        config (`BuildConfig`, *optional*): window, key and split settings; keyword arguments
            (``seq_len=256``...) override single fields.
        tokenizer (`MaiaTokenizer`, *optional*): the vocabulary (default: ``MaiaTokenizer()``); it is
            saved in ``out/tokenizer``.
        num_proc (`int`, *optional*, defaults to 1): processes for parsing and for writing ``train``.
        cache_dir (`str` or `Path`, *optional*): the cache (default: :func:`default_cache_dir`).
        use_cache (`bool`, *optional*, defaults to `True`): False parses every file (into a
            temporary cache, removed afterwards).
        progress (`bool`, *optional*, defaults to `True`): show progress bars.

    Returns:
        `BuildReport`, also written to ``out/build_report.json`` and, as a dataset card, ``out/README.md``.

    Raises:
        MaiaInputError: a source is missing, no file could be read, or ``out`` is not a maia build.

    Example:

    ```python
    >>> import tempfile
    >>> from maia_hf.data import build_dataset
    >>> tmp = tempfile.mkdtemp()
    >>> report = build_dataset(["music21:bach/bwv66.6"], f"{tmp}/corpus", cache_dir=f"{tmp}/cache", seq_len=64,
    ...                        validation_fraction=0, test_fraction=0, progress=False)
    >>> report.stats[1]   # one chorale, in 12 keys, found under the corpus folder bach/
    StatsRow(split='train', composer='bach', pieces=1, sequences=12, notes=..., tokens=..., windows=...)

    ```
    """
    import datasets

    started = time.perf_counter()
    config = BuildConfig(**{**asdict(config or BuildConfig()), **overrides})
    if tokenizer is None:
        from ..tokenization_maia import MaiaTokenizer

        tokenizer = MaiaTokenizer()
    out = Path(out).expanduser()
    _check_out(out)
    sources = [str(s) for s in ([sources] if isinstance(sources, (str, os.PathLike)) else sources)]
    report = BuildReport(str(out), sources, config.to_dict(), tokenizer.codec.config.to_dict())
    bars_were_off = datasets.utils.are_progress_bars_disabled()
    if not progress:
        datasets.utils.disable_progress_bars()
    work = out.parent / f".{out.name}.work-{os.getpid()}"
    partial = out.parent / f".{out.name}.partial-{os.getpid()}"
    try:
        scan = scan_sources(sources, set(tokenizer.composers), progress)
        report.skipped += scan.skipped
        report.remarks += scan.remarks
        report.seconds["scan"] = round(time.perf_counter() - started, 2)

        cache_root = (Path(cache_dir).expanduser() if cache_dir else default_cache_dir()) if use_cache else work
        cache = PieceCache(cache_root, tokenizer.codec.config)
        results = _read_files(scan.tasks, cache, num_proc, progress)
        report.seconds["read"] = round(time.perf_counter() - started - report.seconds["scan"], 2)

        plans = _plan(scan.tasks, results, tokenizer, config, report)
        if report.pieces == 0:
            raise MaiaInputError(
                f"no piece could be read from {', '.join(sources)} ({len(report.skipped)} left out: "
                f"{'; '.join(r for _, r in report.skipped[:3])}); check the sources"
            )
        writer = SequenceWriter(
            tokenizer.codec.config.to_dict(),
            tokenizer.codec_offset,
            tokenizer.bos_token_id,
            tokenizer.eos_token_id,
            cache_tokens=use_cache,
        )
        written = time.perf_counter()
        report.stats = _write(plans, writer, config, partial, work, tokenizer, num_proc)
        report.seconds["write"] = round(time.perf_counter() - written, 2)
        report.seconds["total"] = round(time.perf_counter() - started, 2)
        (partial / REPORT_FILE).write_text(report.to_json(), encoding="utf-8")
        (partial / CARD_FILE).write_text(dataset_card(report), encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        partial.rename(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(partial, ignore_errors=True)
        if not progress and not bars_were_off:
            datasets.utils.enable_progress_bars()
    return report


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / REPORT_FILE).exists())):
        raise MaiaInputError(
            f"{str(out)!r} exists and is not a corpus maia built; choose another --out or remove it first"
        )


def _read_files(tasks: list[FileTask], cache: PieceCache, num_proc: int, progress: bool) -> list[FileResult]:
    """Each task's result, from the cache or parsed (in ``num_proc`` processes), in task order."""
    from tqdm.auto import tqdm

    results: list[FileResult | None] = [cache.lookup(task, i) for i, task in enumerate(tasks)]
    todo = [i for i, r in enumerate(results) if r is None]
    # Largest files first, so that a big quartet does not start last and leave the other processes idle.
    todo.sort(key=lambda i: -os.path.getsize(tasks[i].path) if tasks[i].path else 0)
    cached = len(tasks) - len(todo)
    with tqdm(total=len(tasks), initial=cached, desc="reading files", unit="file", disable=not progress) as bar:
        if num_proc > 1 and len(todo) > 1:
            with multiprocessing.Pool(min(num_proc, len(todo))) as pool:
                jobs = [(tasks[i], i, cache) for i in todo]
                for result in pool.imap_unordered(_encode_job, jobs):
                    results[result.task_index] = result
                    bar.update()
        else:
            for i in todo:
                results[i] = encode_file(tasks[i], i, cache)
                bar.update()
    return results


def _encode_job(job) -> FileResult:
    return encode_file(*job)


def _plan(tasks, results, tokenizer, config: BuildConfig, report: BuildReport) -> dict[str, list[PlannedPiece]]:
    """Decide every piece's id, composer and split; record what was left out and why."""
    known = set(tokenizer.composers)
    plans: dict[str, list[PlannedPiece]] = {split: [] for split in SPLITS}
    unresolved: Counter = Counter()
    canonical = CanonicalReport()
    for task, result in zip(tasks, results, strict=True):
        report.files += 1
        report.files_parsed += result.parsed
        report.files_from_cache += not result.parsed
        if result.error:
            report.skipped.append((task.label, result.error))
            continue
        for i, piece in enumerate(result.pieces):
            name = piece["name"] if len(result.pieces) > 1 else task.label
            canonical = canonical + CanonicalReport(**piece["canonical"])
            report.drum_notes_dropped += piece["drum_notes_dropped"]
            if piece["notes"] == 0:
                report.skipped.append((name, "no pitched notes"))
                continue
            composer = _composer(task, piece, known, unresolved)
            try:
                composer_id = tokenizer.composer_token_id(composer)
            except MaiaTokenError:
                unresolved[(composer, "the composer rule")] += 1
                composer, composer_id = "unknown", tokenizer.composer_token_id("unknown")
            piece_id = task.content_hash[:16] + (f"#{i + 1}" if len(result.pieces) > 1 else "")
            split = assign_split(piece_id, config.validation_fraction, config.test_fraction)
            keys = config.transpositions if split == "train" else (0,)
            plan = PlannedPiece(result.cache_file, i, piece_id, composer, composer_id, name, keys, piece["notes"])
            plans[split].append(plan)
            report.pieces += 1
    report.canonical = asdict(canonical)
    for (name, origin), count in sorted(unresolved.items()):
        report.remarks.append(
            f"composer {name!r} (from {origin}) has no token: {count} piece(s) written as <composer:unknown>"
        )
    for split, plan in plans.items():
        if not plan:
            report.remarks.append(f"the {split} split is empty: too few pieces for its fraction")
    return plans


def _composer(task: FileTask, piece: dict, known: set[str], unresolved: Counter) -> str:
    """metadata.csv (or a dataset column), else the nearest composer folder, else the file's metadata."""
    if task.composer is not None:
        name, origin = task.composer, task.composer_origin
    elif task.folder_composer is not None:
        return task.folder_composer
    elif piece["composer"]:
        name, origin = piece["composer"], "the file's metadata"
    else:
        return "unknown"
    resolved = resolve_composer(name, known)
    if resolved is None:
        unresolved[(name, origin)] += 1
        return "unknown"
    return resolved


def _write(plans, writer: SequenceWriter, config: BuildConfig, partial: Path, work: Path, tokenizer, num_proc: int):
    """Write the splits: sequences with ``Dataset.from_generator``, windows with a batched Arrow ``map``."""
    from datasets import Dataset, DatasetDict

    splits = {}
    for split, plan in plans.items():
        if not plan:
            empty = {name: [] for name in dataset_features()}
            splits[split] = Dataset.from_dict(empty, features=dataset_features(), split=split)
            continue
        shards = balanced_shards(plan, num_proc if split == "train" else 1)
        sequences = Dataset.from_generator(
            generate_sequences,
            features=dataset_features(windows=False),
            cache_dir=str(work / "arrow"),
            gen_kwargs={"shards": shards, "writer": writer},
            num_proc=len(shards) if len(shards) > 1 else None,
            split=split,
            fingerprint=uuid.uuid4().hex,
        )
        splits[split] = (
            sequences.with_format("arrow")
            .map(
                cut_windows,
                batched=True,
                batch_size=64,  # sequences; bounds memory with the longest pieces
                fn_kwargs={"seq_len": config.seq_len, "stride": config.stride},
                remove_columns=sequences.column_names,
                features=dataset_features(),
                num_proc=len(shards) if len(shards) > 1 else None,
                new_fingerprint=uuid.uuid4().hex,
                desc=f"cutting {split} windows",
            )
            .with_format(None)
        )
    shutil.rmtree(partial, ignore_errors=True)
    # An empty split needs one explicit (empty) shard: datasets 5.2 writes none, then cannot load it.
    empty = {split: 1 for split, dataset in splits.items() if len(dataset) == 0}
    DatasetDict(splits).save_to_disk(str(partial), num_shards=empty)
    del splits
    tokenizer.save_pretrained(str(partial / TOKENIZER_FOLDER))
    return dataset_stats(DatasetDict.load_from_disk(str(partial)))


def load_corpus(path):
    """Open a corpus built by :func:`build_dataset`: ``(DatasetDict, BuildReport or None, tokenizer or None)``.

    Raises:
        MaiaInputError: ``path`` is not a folder saved by ``DatasetDict.save_to_disk``.
    """
    from datasets import DatasetDict

    path = Path(path).expanduser()
    if not (path / "dataset_dict.json").is_file():
        raise MaiaInputError(f"{str(path)!r} is not a corpus (no dataset_dict.json); build one with `maia data build`")
    corpus = DatasetDict.load_from_disk(str(path))
    report_file = path / REPORT_FILE
    report = BuildReport.from_json(report_file.read_text(encoding="utf-8")) if report_file.is_file() else None
    tokenizer = None
    if (path / TOKENIZER_FOLDER / "tokenizer.json").is_file():
        from ..tokenization_maia import MaiaTokenizer

        tokenizer = MaiaTokenizer.from_pretrained(str(path / TOKENIZER_FOLDER))
    return corpus, report, tokenizer
