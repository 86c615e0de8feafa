"""The corpus: a ``datasets.DatasetDict`` of notewise windows built from MIDI folders, scores and music21.

``maia data build SOURCE... --out DIR`` and ``maia data stats DIR`` are the command-line face of
:func:`build_dataset` and :func:`dataset_stats` / :func:`plot_stats`. ``docs/data.md`` states the
rules (composer, split, augmentation, windows, cache) and the figures of the reference build.

Modules: ``sources`` (SOURCE strings to files, composers), ``pieces`` (parsing and the cache),
``windows`` (splits, keys, windows), ``fim`` (the fill-in-the-middle format and training transform),
``encoding`` (planned pieces to token sequences), ``builder`` (the
passes of a build, writing), ``report`` (the build report and card), ``stats`` (tables and the PNG).
"""

from .builder import BuildConfig, build_dataset, load_corpus
from .encoding import encode_transposed
from .fim import FimParts, FimTransform, fim_ids, split_at_gap
from .pieces import PieceCache, default_cache_dir
from .report import BuildReport, dataset_card
from .sources import resolve_composer, scan_sources
from .stats import StatsRow, dataset_stats, format_stats, plot_stats, stats_markdown, token_counts
from .windows import assign_split, cut_windows, dataset_features, parse_transpositions, window_starts

__all__ = [
    "BuildConfig",
    "BuildReport",
    "FimParts",
    "FimTransform",
    "PieceCache",
    "StatsRow",
    "assign_split",
    "build_dataset",
    "cut_windows",
    "dataset_card",
    "dataset_features",
    "dataset_stats",
    "default_cache_dir",
    "encode_transposed",
    "fim_ids",
    "format_stats",
    "load_corpus",
    "parse_transpositions",
    "plot_stats",
    "resolve_composer",
    "scan_sources",
    "split_at_gap",
    "stats_markdown",
    "token_counts",
    "window_starts",
]
