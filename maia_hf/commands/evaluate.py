"""``maia evaluate``: compare saved models with real music and write a report (docs/evaluation.md).

Example::

    maia evaluate --model runs/maia-small/final --data corpus --out report --pieces 20
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import add_guidance_arguments

__all__ = ["register"]


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``evaluate`` to the ``maia`` command's subparsers."""
    from ..generation import DEFAULT_MAX_NOTE_QUARTERS as longest

    p = subparsers.add_parser(
        "evaluate",
        help="compare models with real music: likelihood, BLEU, statistics, memorisation, a discriminator",
        description="Evaluate saved models against a corpus and write a Markdown report with figures "
        "(see docs/evaluation.md).",
    )
    p.add_argument("--model", action="append", required=True, metavar="DIR", help="a saved model (repeat for several)")
    p.add_argument("--data", type=Path, required=True, metavar="DIR", help="a corpus written by `maia data build`")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="where to write report.md and the PNGs")
    p.add_argument("--pieces", type=int, default=20, metavar="N", help="pieces generated per model (default 20)")
    p.add_argument("--bars", type=int, default=8, metavar="N", help="bars per piece and real excerpt (default 8)")
    p.add_argument(
        "--top-k", type=int, default=5, metavar="K", help="sample from the K likeliest words (default 5; 0: off)"
    )
    p.add_argument("--top-p", type=float, metavar="P", help="nucleus sampling: the likeliest words up to probability P")
    p.add_argument("--temperature", type=float, default=1.0, metavar="X")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument("--candidates", type=int, default=1, metavar="N",
                   help="each generated piece is the likeliest of N sampled as one batch (default 1)")  # fmt: skip
    p.add_argument("--prompt-bars", type=int, default=0, metavar="N",
                   help="continue the N bars before each real excerpt instead of starting from nothing, so that "
                   "real and generated music follow the same prompt (default 0: from nothing)")  # fmt: skip
    add_guidance_arguments(p)
    p.add_argument("--max-note-quarters", type=float, default=longest, metavar="Q",
                   help=f"longest generated note in quarter notes (default {longest:g}; 0: no limit)")  # fmt: skip
    p.add_argument("--unconstrained-pieces", type=int, metavar="N", help="pieces sampled without constraints")
    p.add_argument("--tokens-per-bar", type=int, default=160, metavar="N", help="token budget a bar (default 160)")
    p.add_argument("--nll-windows", type=int, default=256, metavar="N", help="validation windows scored (0: all)")
    p.add_argument("--batch-size", type=int, default=8, metavar="N")
    p.add_argument(
        "--max-reference-words", type=int, default=2_000_000, metavar="N", help="BLEU reference words (0: all)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(handler=_evaluate)
    return p


# Each count flag and the least it may be; checked before any model or corpus is read.
_AT_LEAST = {"batch_size": 1, "tokens_per_bar": 1, "candidates": 1, "nll_windows": 0, "max_reference_words": 0,
             "seed": 0, "unconstrained_pieces": 0, "prompt_bars": 0}  # fmt: skip


def _check_counts(args) -> None:
    from ..errors import MaiaInputError

    for name, least in _AT_LEAST.items():
        value = getattr(args, name)
        if value is not None and value < least:
            flag = "--" + name.replace("_", "-")
            meaning = " (0: all)" if name in ("nll_windows", "max_reference_words") else ""
            raise MaiaInputError(f"{flag} must be a whole number >= {least}{meaning}, got {value}")


def _evaluate(args) -> int:
    from ..evaluation import EvaluationConfig, evaluate_models
    from ..generation.settings import check_generation_settings

    _check_counts(args)
    check_generation_settings(
        top_k=args.top_k, top_p=args.top_p, temperature=args.temperature, grid=args.grid,
        key_guidance=args.key_guidance, max_note_quarters=args.max_note_quarters or None, flags=True,
    )  # fmt: skip

    config = EvaluationConfig(
        pieces=args.pieces, bars=args.bars, top_k=args.top_k, top_p=args.top_p, temperature=args.temperature,
        seed=args.seed, unconstrained_pieces=args.unconstrained_pieces, nll_windows=args.nll_windows,
        batch_size=args.batch_size, max_reference_words=args.max_reference_words, tokens_per_bar=args.tokens_per_bar,
        candidates=args.candidates, prompt_bars=args.prompt_bars, grid=args.grid, key_guidance=args.key_guidance,
        max_note_quarters=args.max_note_quarters or None,
    )  # fmt: skip
    report = evaluate_models(args.model, args.data, args.out, config, progress=not args.quiet)
    print(f"wrote {report['files']['markdown']}, {report['files']['ngram_strip']}, {report['files']['statistics']}")
    return 0
