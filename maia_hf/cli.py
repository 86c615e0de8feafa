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
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C
_CANDIDATES_HELP = "sample N continuations as one batch and keep the likeliest (default 1)"
_VERBOSE_HELP = "show the libraries' warnings and progress bars (transformers weight loading, Accelerate, DeepSpeed)"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 0
    from .errors import MaiaError
    from .registration import set_library_verbosity

    set_library_verbosity(args.verbose)
    try:
        return args.handler(args) or 0
    except MaiaError as exc:
        print(f"maia {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except KeyboardInterrupt:
        print(f"maia {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        set_library_verbosity(None)  # a caller in the same process (a test, a notebook) gets the defaults back


def build_parser() -> argparse.ArgumentParser:
    from .commands import add_guidance_arguments, add_sampling_arguments
    from .compose import LACRIMOSA_GRID, LACRIMOSA_KEY_GUIDANCE

    parser = argparse.ArgumentParser(
        prog="maia",
        description="maia: compose classical music with the Hugging Face stack (notewise encoding, GPT-2 models).",
    )
    parser.add_argument("--version", action="version", version=f"maia-hf {_version()}")
    parser.add_argument("--verbose", action="store_true", help=f"{_VERBOSE_HELP} (before or after COMMAND)")
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

    p = sub.add_parser("generate", help="continue a prompt (or start from nothing) with a maia model")
    p.add_argument("--model", help="a saved maia model directory (default: the model shipped with maia)")
    p.add_argument("--prompt", help="MIDI, MusicXML, .krn, ABC or notewise file, music21:NAME, or notewise words")
    p.add_argument("--prompt-bars", type=int, metavar="N", help="keep exactly the prompt's first N bars")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--bars", type=int, metavar="N", help="continue for N bars and stop at the bar line")
    length.add_argument("--max-new-tokens", type=int, metavar="T", help="continue for at most T tokens")
    p.add_argument("--composer", help="composer token, e.g. mozart (default: the prompt's, else unknown)")
    p.add_argument("--num-return-sequences", type=int, default=1, metavar="M")
    add_sampling_arguments(p, _CANDIDATES_HELP)
    p.set_defaults(handler=_generate)

    p = sub.add_parser("lacrimosa", help="continue Mozart's 8 bars of the Lacrimosa to the movement's 30 bars")
    p.add_argument("--model", help="a saved maia model directory (default: the model shipped with maia)")
    p.add_argument("--out", type=Path, default=Path("lacrimosa"), help="output folder (default ./lacrimosa)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    p.add_argument("--candidates", type=int, default=1, metavar="N", help=_CANDIDATES_HELP)
    add_guidance_arguments(p, LACRIMOSA_GRID, LACRIMOSA_KEY_GUIDANCE)
    p.add_argument("--no-wav", action="store_true", help="skip the WAV rendering")
    p.set_defaults(handler=_lacrimosa)

    from .commands import data, demo, evaluate, infill

    data.register(sub)
    evaluate.register(sub)
    _add_push_parser(sub)
    infill.register(sub)
    demo.register(sub)
    _accept_verbose_after_the_command(parser)
    return parser


def _accept_verbose_after_the_command(parser: argparse.ArgumentParser) -> None:
    """``--verbose`` after a subcommand too (``maia generate --verbose``), for every subcommand registered."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                subparser.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=_VERBOSE_HELP)
                _accept_verbose_after_the_command(subparser)


def _add_push_parser(sub) -> None:
    p = sub.add_parser(
        "push",
        help="publish a saved model (and a corpus) on the Hugging Face Hub",
        description="Upload a saved maia model directory (weights, tokenizer, card, generation config, code) to a "
        "model repo, and a corpus built by `maia data build` to a dataset repo. The hub is HF_ENDPOINT "
        "(default huggingface.co); the token is HF_TOKEN or the one `hf auth login` saved.",
    )
    p.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="a directory written by save_pretrained")
    p.add_argument("repo_id", metavar="REPO_ID", help="user/name of the model repo (a bare name: the token's user)")
    p.add_argument("--dataset", type=Path, metavar="DIR", help="a corpus written by `maia data build` to push too")
    p.add_argument("--dataset-repo", metavar="ID", help="the corpus's dataset repo (default: REPO_ID)")
    p.add_argument("--private", action="store_true", help="create the repos private")
    p.set_defaults(handler=_push)


def _version() -> str:
    from . import __version__

    return __version__


# ---- handlers --------------------------------------------------------------------------------


def _tokenize(args) -> int:
    from .codec import NotewiseCodec
    from .io import format_notewise, read_raw, to_piece

    codec = NotewiseCodec()
    composer = _known_composer(args.composer) if args.composer else None
    pieces = []
    for source in args.files:
        for raw in read_raw(source, codec):
            piece, _ = to_piece(raw, codec, transpose=args.transpose)
            piece.composer = composer or piece.composer
            if len(piece.notes) == 0:
                print(f"maia tokenize: warning: {raw.name!r} has no pitched notes", file=sys.stderr)
            pieces.append(piece)
    text = format_notewise(pieces, codec)
    if args.special_tokens:
        text = _with_special_tokens(text, pieces)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {len(pieces)} piece(s) to {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def _known_composer(name: str) -> str:
    """The composer's token name, in any spelling; one clear error when the vocabulary has no such token."""
    from .errors import MaiaInputError, MaiaTokenError
    from .tokenization_maia import MaiaTokenizer, normalize_composer

    tokenizer = MaiaTokenizer()  # the one place that knows which composers have a token
    try:
        tokenizer.composer_token_id(name)
    except MaiaTokenError:
        raise MaiaInputError(f"--composer {name!r} has no token; use one of {', '.join(tokenizer.composers)}") from None
    return normalize_composer(name)


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
    from .errors import MaiaInputError
    from .io import MIDI_SUFFIXES, WRITABLE_SUFFIXES, read_notewise, to_piece, write_piece

    codec = NotewiseCodec()
    source, out = args.text_file, args.out
    if not source.is_file():
        raise MaiaInputError(f"{str(source)!r} does not exist or is not a file; give a notewise text file")
    if source.suffix.lower() in MIDI_SUFFIXES or source.read_bytes()[:4] == b"MThd":
        raise MaiaInputError(f"{str(source)!r} is a MIDI file, not notewise text; `maia tokenize` reads it")
    wav = out.suffix.lower() == ".wav"
    if not wav and out.suffix.lower() not in WRITABLE_SUFFIXES:
        raise MaiaInputError(f"--out {str(out)!r}: write one of {', '.join(WRITABLE_SUFFIXES)} or .wav")
    raws = read_notewise(source, codec)
    if not raws:
        raise MaiaInputError(f"{str(source)!r} holds no notewise words (an empty file?); nothing was written")
    for i, raw in enumerate(raws, start=1):
        piece, _ = to_piece(raw, codec)
        target = out if len(raws) == 1 else out.with_name(f"{out.stem}-{i}{out.suffix}")
        if wav:
            _write_wav(piece, target, codec)
        else:
            write_piece(piece, target, codec)
        print(f"wrote {target} ({len(piece.notes)} notes)")
    return 0


def _write_wav(piece, target: Path, codec) -> None:
    import tempfile

    from .io import write_midi
    from .render import render_wav

    with tempfile.TemporaryDirectory() as tmp:
        midi = write_midi(piece, Path(tmp) / "piece.mid", codec.config.steps_per_quarter)
        render_wav(midi, target)


def _roundtrip(args) -> int:
    from .codec import NotewiseCodec
    from .errors import MaiaError
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
    if total.pieces == 0:
        print(f"maia roundtrip: error: no piece could be read from {len(args.files)} input(s); nothing to check",
              file=sys.stderr)  # fmt: skip
        return 2
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


def _generate(args) -> int:
    from .compose import compose
    from .generation.settings import check_generation_settings

    check_generation_settings(
        bars=args.bars, max_new_tokens=args.max_new_tokens, prompt_bars=args.prompt_bars, top_k=args.top_k,
        top_p=args.top_p, temperature=args.temperature, num_return_sequences=args.num_return_sequences,
        candidates=args.candidates, max_note_quarters=args.max_note_quarters or None, grid=args.grid,
        key_guidance=args.key_guidance, flags=True,
    )  # fmt: skip
    from .commands import make_output_folder, model_or_default

    make_output_folder(args.out)
    results = compose(
        model_or_default(args.model), args.prompt, args.out, prompt_bars=args.prompt_bars, bars=args.bars,
        max_new_tokens=args.max_new_tokens, top_k=args.top_k, top_p=args.top_p, temperature=args.temperature,
        composer=args.composer, seed=args.seed, num_return_sequences=args.num_return_sequences,
        max_note_quarters=args.max_note_quarters or None, candidates=args.candidates, wav=not args.no_wav,
        grid=args.grid, key_guidance=args.key_guidance,
    )  # fmt: skip
    for result in results:
        _report_generation(result)
    return _interruption_status(results[-1])


def _interruption_status(result) -> int:
    """0, or 130 with a line saying what was written when Ctrl-C stopped the sampling (the files hold it)."""
    c = result.continuation
    if not c.interrupted:
        return 0
    ends = c.continuation.notes.end
    last = int(ends.max()) if len(ends) else c.prompt_end
    bars = sum(1 for b in c.piece.bar_lines(until=last) if c.prompt_end <= b < last)
    where = result.files.get("midi", "")
    print(
        f"interrupted: wrote {bars} bar{'s' * (bars != 1)} ({len(ends)} new notes) to {where} and the files beside it"
    )
    return EXIT_INTERRUPTED


def _report_generation(result) -> None:
    c = result.continuation
    print(
        f"{len(c.continuation.notes)} new notes, {c.tokens} tokens in {c.seconds:.1f} s "
        f"({c.tokens_per_second:.0f} tokens/s); constraints changed the model's first choice "
        f"{c.interventions} times in {c.steps} steps"
    )
    from .commands import print_candidates, print_files

    print_candidates(c.candidate_scores, c.score, c.chosen)
    print_files(result.files)


def _lacrimosa(args) -> int:
    from .compose import complete_lacrimosa, default_model
    from .generation.guidance import check_guidance
    from .generation.settings import check_candidates

    check_candidates(args.candidates, flags=True)
    check_guidance(args.grid, args.key_guidance, flags=True)
    model = args.model or default_model()
    if model is None:
        return _lacrimosa_prompt_only(args.out)
    result = complete_lacrimosa(model, args.out, seed=args.seed, candidates=args.candidates, wav=not args.no_wav,
                                grid=args.grid, key_guidance=args.key_guidance)  # fmt: skip
    bars = len(result.continuation.piece.bar_lines()) - 1
    print(f"Lacrimosa: Mozart's 8 bars continued by {model} to {bars} bars of 12/8.")
    c = result.continuation
    grid = f"every onset on a {c.grid_steps}-step grid (Mozart's)" if c.grid_steps else "onsets free"
    key = f"key guidance {c.key_guidance:g}" if c.key_guidance else "no key guidance"
    print(f"guidance: {grid}, {key}" + ("" if c.grid_steps is None and not c.key_guidance else
                                        " (the model alone: --grid off --key-guidance 0)"))  # fmt: skip
    _report_generation(result)
    from .compose import lacrimosa_fidelity

    print("\n".join(lacrimosa_fidelity(result)))
    return _interruption_status(result)


def _lacrimosa_prompt_only(out: Path) -> int:
    from .codec import NotewiseCodec
    from .generation import read_prompt
    from .io import read_raw, to_piece, write_midi, write_notewise
    from .resources import LACRIMOSA_PROMPT

    codec = NotewiseCodec()
    piece = read_prompt(LACRIMOSA_PROMPT, codec)
    ids = codec.encode(piece.notes, canonical=True)
    bars = len(piece.bar_lines(codec.config.steps_per_quarter)) - 1
    midi = write_midi(piece, out / "lacrimosa-prompt.mid", codec.config.steps_per_quarter)
    text = write_notewise([piece], out / "lacrimosa-prompt.txt", codec)
    back = to_piece(read_raw(midi)[0], codec)[0]
    same = back.notes.as_tuples() == piece.notes.as_tuples()
    print(f"Lacrimosa opening: {bars} bars of 12/8, {len(piece.notes)} notes -> {len(ids)} notewise words")
    print(f"wrote {text} (notewise text) and {midi} (MIDI)")
    print(f"read {midi} back: {len(back.notes)} notes, {'identical to' if same else 'DIFFERENT from'} the prompt")
    print("maia_hf.DEFAULT_MODEL is missing from this installation: pass --model DIR to continue it to 30 bars.")
    return 0 if same else 1


def _push(args) -> int:
    from .errors import MaiaInputError
    from .hub import check_dataset_dir, check_model_dir, push_dataset, push_model

    if args.dataset_repo and not args.dataset:
        raise MaiaInputError("--dataset-repo needs --dataset DIR, the corpus to push")
    check_model_dir(args.model_dir)  # both before either push, so a typo leaves nothing half published
    if args.dataset:
        check_dataset_dir(args.dataset)
    if not (args.model_dir / "README.md").is_file():
        print(f"maia push: note: {args.model_dir} has no README.md, so the repo gets no model card", file=sys.stderr)
    commit = push_model(args.model_dir, args.repo_id, private=args.private)
    print(f"pushed {args.model_dir} to {commit.repo_url} (commit {commit.oid[:12]})")
    if args.dataset:
        commit = push_dataset(args.dataset, args.dataset_repo or args.repo_id, private=args.private)
        print(f"pushed {args.dataset} to {commit.repo_url} (commit {commit.oid[:12]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
