"""``maia data build`` and ``maia data stats``: build a training corpus and show its figures (docs/data.md).

Example::

    maia data build music21:bach,mozart --out corpus --seq-len 512
    maia data stats corpus
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register"]


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``data`` (with ``build`` and ``stats``) to the ``maia`` command's subparsers."""
    data = subparsers.add_parser("data", help="build a training corpus (a datasets.DatasetDict) and show its figures")
    data.set_defaults(handler=_data_help, data_parser=data)
    data_sub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")

    p = data_sub.add_parser(
        "build",
        help="encode music files as windows of token ids, split by piece, into a DatasetDict on disk",
        description="Build train/validation/test splits of notewise windows (see docs/data.md).",
    )
    p.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="a folder (searched recursively), a file, music21:NAME[,NAME...] (e.g. music21:bach,mozart) "
        "or hf:NAME[:SPLIT] (a dataset of MIDI files: a save_to_disk folder, a data folder or a Hub id)",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder (an earlier maia build there is replaced)")
    p.add_argument("--seq-len", type=int, default=512, metavar="N", help="tokens per window (default 512)")
    p.add_argument("--overlap", type=float, default=0.5, metavar="F", help="overlap of windows (default 0.5)")
    p.add_argument(
        "--transpositions",
        default="12",
        metavar="K",
        help="keys of each training piece: a count (12 = -5..+6), a range (-5..6) or a list (0,2,-2); default 12",
    )
    p.add_argument("--validation-fraction", type=float, default=0.05, metavar="F", help="default 0.05")
    p.add_argument("--test-fraction", type=float, default=0.05, metavar="F", help="default 0.05")
    p.add_argument("--num-proc", type=int, default=1, metavar="N", help="processes (default 1)")
    p.add_argument("--cache-dir", type=Path, help="cache of parsed files (default $MAIA_CACHE or ~/.cache/maia)")
    p.add_argument("--no-cache", action="store_true", help="parse every file again and keep nothing")
    p.add_argument("--tokenizer", type=Path, help="a saved MaiaTokenizer folder (default: MaiaTokenizer())")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=_data_build)

    p = data_sub.add_parser("stats", help="print a built corpus's table again and draw piece lengths and tokens")
    p.add_argument("dir", type=Path, metavar="DIR", help="a folder written by `maia data build`")
    p.add_argument("--png", type=Path, help="where to write the figure (default DIR/stats.png)")
    p.set_defaults(handler=_data_stats)
    return data


def _data_help(args) -> int:
    args.data_parser.print_help()
    return 0


def _data_build(args) -> int:
    from ..data import BuildConfig, build_dataset
    from ..errors import MaiaInputError

    if args.num_proc < 1:
        raise MaiaInputError(
            f"--num-proc must be a whole number >= 1 (processes that parse files), got {args.num_proc}"
        )

    tokenizer = None
    if args.tokenizer:
        from ..tokenization_maia import MaiaTokenizer

        tokenizer = MaiaTokenizer.from_pretrained(str(args.tokenizer))
    config = BuildConfig(
        seq_len=args.seq_len,
        overlap=args.overlap,
        transpositions=args.transpositions,
        validation_fraction=args.validation_fraction,
        test_fraction=args.test_fraction,
    )
    report = build_dataset(
        args.sources,
        args.out,
        config,
        tokenizer=tokenizer,
        num_proc=args.num_proc,
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
        progress=not args.quiet,
    )
    print(report.format())
    return 0


def _data_stats(args) -> int:
    from ..data import dataset_stats, format_stats, load_corpus, plot_stats

    corpus, report, tokenizer = load_corpus(args.dir)
    if report is not None:
        print(f"{args.dir}: {report.summary()}")
    print(format_stats(dataset_stats(corpus)))
    if report is not None:
        print(f"\nleft out ({len(report.skipped)}):\n{report.format_skipped()}")
        for remark in report.remarks:
            print(f"  {remark}")
    png = plot_stats(corpus, args.png or args.dir / "stats.png", tokenizer)
    print(f"\nwrote {png}")
    return 0
