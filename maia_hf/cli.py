"""The ``maia`` command line.

Each subcommand imports what it needs inside its handler, so ``maia --help`` answers at once.
Errors maia raises on purpose (bad input, unknown words) end the command with a one-line message
and exit status 2; the CLI holds no logic that the Python API lacks.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_INPUT_ERROR = 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 0
    from .codec import MaiaError

    try:
        return args.handler(args) or 0
    except MaiaError as exc:
        print(f"maia {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except KeyboardInterrupt:
        print(f"maia {args.command}: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maia",
        description="maia: compose classical music with the Hugging Face stack (notewise encoding, GPT-2 models).",
    )
    parser.add_argument("--version", action="version", version=f"maia-hf {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("tokenize", help="encode music files as notewise text (one line per piece)")
    p.add_argument("files", nargs="+", metavar="FILE", help="MIDI, MusicXML, .mxl, .krn, ABC, or music21:NAME")
    p.add_argument("--composer", help="composer of the pieces (adds <composer:NAME> with --special-tokens)")
    p.add_argument("--transpose", type=int, default=0, metavar="K", help="semitones to transpose (default 0)")
    p.add_argument("--special-tokens", action="store_true", help="wrap each piece in <start> <composer:..> <end>")
    p.add_argument("--out", type=Path, help="write here instead of standard output")
    p.set_defaults(handler=_tokenize)

    p = sub.add_parser("detokenize", help="decode a notewise text file to MIDI")
    p.add_argument("text_file", type=Path, metavar="TEXT_FILE")
    p.add_argument("--out", type=Path, required=True, help="output .mid (several pieces: OUT-1.mid, OUT-2.mid...)")
    p.set_defaults(handler=_detokenize)

    p = sub.add_parser("roundtrip", help="encode and decode files, and count the notes that come back")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--quiet", action="store_true", help="print the total only")
    p.set_defaults(handler=_roundtrip)

    p = sub.add_parser("lacrimosa", help="Mozart's Lacrimosa: encode the 8-bar opening and write it back as MIDI")
    p.add_argument("--out", type=Path, default=Path("lacrimosa"), help="output folder (default ./lacrimosa)")
    p.set_defaults(handler=_lacrimosa)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


# ---- handlers --------------------------------------------------------------------------------


def _tokenize(args) -> int:
    from .codec import NotewiseCodec
    from .io import format_notewise, read_raw, to_piece

    codec = NotewiseCodec()
    pieces = []
    for source in args.files:
        for raw in read_raw(source, codec):
            piece, _ = to_piece(raw, codec, transpose=args.transpose)
            piece.composer = args.composer or piece.composer
            if len(piece.notes) == 0:
                print(f"maia tokenize: warning: {raw.name!r} has no pitched notes", file=sys.stderr)
            pieces.append(piece)
    text = format_notewise(pieces, codec)
    if args.special_tokens:
        text = _with_special_tokens(text, pieces)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {len(pieces)} piece(s) to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _with_special_tokens(text: str, pieces) -> str:
    from .tokenization_maia import normalize_composer

    lines, i = [], 0
    for line in text.splitlines():
        if not line.startswith("#"):
            composer = normalize_composer(pieces[i].composer)
            line = f"<start> <composer:{composer}> {line} <end>".replace("  ", " ")
            i += 1
        lines.append(line)
    return "\n".join(lines) + "\n"


def _detokenize(args) -> int:
    from .codec import NotewiseCodec
    from .io import read_notewise, to_piece, write_midi

    codec = NotewiseCodec()
    if not args.text_file.exists():
        from .codec import MaiaInputError

        raise MaiaInputError(f"{str(args.text_file)!r} does not exist; give a notewise text file")
    raws = read_notewise(args.text_file, codec)
    for i, raw in enumerate(raws, start=1):
        piece, _ = to_piece(raw, codec)
        out = args.out if len(raws) == 1 else args.out.with_name(f"{args.out.stem}-{i}{args.out.suffix}")
        write_midi(piece, out, codec.config.steps_per_quarter)
        print(f"wrote {out} ({len(piece.notes)} notes)")
    return 0


def _roundtrip(args) -> int:
    from .codec import MaiaError, NotewiseCodec
    from .roundtrip import RoundTripReport, roundtrip_source

    codec = NotewiseCodec()
    total, failed = RoundTripReport(), 0
    header = f"{'file':<48} {'read':>8} {'on grid':>8} {'exact':>8} {'canon.':>8} {'restored':>8}  lossless"
    if not args.quiet:
        print(header)
    for source in args.files:
        try:
            report = roundtrip_source(source, codec)
        except MaiaError as exc:
            failed += 1
            print(f"{_short(source):<48} error: {exc}")
            continue
        total = total + report
        if not args.quiet:
            print(_row(_short(source), report))
    print(_row(f"total ({total.pieces} pieces, {failed} unreadable)", total))
    for reason, count in total.lost_reasons().items():
        print(f"  notes changed: {count:>9} {reason}")
    return 0 if total.lossless and not failed else 1


def _row(name: str, r) -> str:
    return (
        f"{name:<48} {r.notes_read:>8} {r.notes_on_grid:>8} {r.notes_exact:>8} {r.canonical_notes:>8} "
        f"{r.canonical_restored:>8}  {'yes' if r.lossless else 'NO'}"
    )


def _short(source: str, width: int = 48) -> str:
    return source if len(source) <= width else "..." + source[-(width - 3) :]


def _lacrimosa(args) -> int:
    from .codec import NotewiseCodec
    from .io import read_notewise, read_raw, to_piece, write_midi, write_notewise
    from .resources import LACRIMOSA_PROMPT

    codec = NotewiseCodec()
    raw = read_notewise(LACRIMOSA_PROMPT, codec)[0]
    piece, _ = to_piece(raw, codec)
    ids = codec.encode(piece.notes, canonical=True)
    bars = len(piece.bar_lines(codec.config.steps_per_quarter)) - 1
    out = args.out
    midi = write_midi(piece, out / "lacrimosa-prompt.mid", codec.config.steps_per_quarter)
    text = write_notewise([piece], out / "lacrimosa-prompt.txt", codec)
    back = to_piece(read_raw(midi)[0], codec)[0]
    same = back.notes.as_tuples() == piece.notes.as_tuples()
    print(f"Lacrimosa opening: {bars} bars of 12/8, {len(piece.notes)} notes -> {len(ids)} notewise words")
    print(f"wrote {text} (notewise text) and {midi} (MIDI)")
    print(f"read {midi} back: {len(back.notes)} notes, {'identical to' if same else 'DIFFERENT from'} the prompt")
    print("No model continues it yet: training and generation are open issues (see README).")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
