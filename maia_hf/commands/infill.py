"""``maia infill``: regenerate bars of a piece in place, or bridge two passages.

Example::

    maia infill piece.mid --bars 9-12 --out out.mid                    # bars 9 to 12 written anew
    maia infill --before a.mid --after b.mid --bars 4 --out bridge.mid  # 4 new bars from a into b
"""

from __future__ import annotations

import argparse

from . import add_sampling_arguments, make_output_folder, model_or_default, print_candidates, print_files

__all__ = ["register", "run_infill"]

_CANDIDATES_HELP = "sample N fillings as one batch and keep the one the model finds likeliest (default 1)"


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``infill`` to the ``maia`` command's subparsers."""
    p = subparsers.add_parser(
        "infill",
        help="regenerate bars of a piece (--bars 9-12), or bridge two passages (--before, --after, --bars N)",
        description="Fill in the middle: the model sees the music before and after the gap and writes bars that "
        "fit it exactly (bar lines from the piece's time signature). Notes outside the gap are kept note for note.",
    )
    p.add_argument("piece", nargs="?", help="MIDI, MusicXML, .krn, ABC or notewise file, or music21:NAME")
    p.add_argument("--bars", required=True, metavar="RANGE|N",
                   help="with a piece: bars to regenerate, 1-based and inclusive (9-12; several: 3-4,9-12); "
                   "with --before/--after: how many new bars")  # fmt: skip
    p.add_argument("--before", metavar="FILE", help="the passage the bridge starts from")
    p.add_argument("--after", metavar="FILE", help="the passage the bridge leads into")
    p.add_argument("--model", help="a saved maia model trained to infill (default: the model shipped with maia)")
    p.add_argument("--composer", help="composer token, e.g. mozart (default: the piece's, else unknown)")
    add_sampling_arguments(p, _CANDIDATES_HELP)
    p.set_defaults(handler=run_infill)
    return p


def run_infill(args) -> int:
    """Fill the gaps, write every format, and report what the constraints and candidates did."""
    from ..compose import infill
    from ..errors import MaiaInputError
    from ..generation.settings import check_generation_settings

    check_generation_settings(
        top_k=args.top_k, top_p=args.top_p, temperature=args.temperature, candidates=args.candidates,
        max_note_quarters=args.max_note_quarters or None, grid=args.grid, key_guidance=args.key_guidance, flags=True,
    )  # fmt: skip
    if args.out.suffix.lower() not in (".mid", ".midi"):
        raise MaiaInputError(f"--out {str(args.out)!r}: give a .mid path (the other formats are written beside it)")
    make_output_folder(args.out)
    result = infill(
        model_or_default(args.model), args.piece, args.out, bars=args.bars, before=args.before, after=args.after,
        composer=args.composer, top_k=args.top_k, top_p=args.top_p, temperature=args.temperature, seed=args.seed,
        candidates=args.candidates, max_note_quarters=args.max_note_quarters or None, wav=not args.no_wav,
        grid=args.grid, key_guidance=args.key_guidance,
    )  # fmt: skip
    for filled in result.infills:
        print(
            f"bars {filled.bars[0]}-{filled.bars[1]}: {len(filled.middle.notes)} new notes, {filled.tokens} tokens in "
            f"{filled.seconds:.1f} s; constraints changed the model's first choice {filled.interventions} times in "
            f"{filled.steps} steps"
        )
        print_candidates(filled.candidate_scores, filled.score, filled.chosen)
    print_files(result.files)
    return 0
