"""Subcommands of ``maia`` that live in their own module; each has ``register(subparsers)``.

The helpers here are what the generating commands (``generate``, ``infill``) share: the output folder, the
model to load, and how a run's candidates and files are reported.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "add_guidance_arguments",
    "add_sampling_arguments",
    "make_output_folder",
    "model_or_default",
    "print_candidates",
    "print_files",
]


def add_sampling_arguments(p, candidates_help: str) -> None:
    """The flags every generating command takes: sampling, seed, candidates, longest note, WAV, ``--out``."""
    from ..generation import DEFAULT_MAX_NOTE_QUARTERS

    p.add_argument("--top-k", type=int, default=5, metavar="K", help="sample from the K likeliest words (default 5)")
    p.add_argument("--temperature", type=float, default=1.0, metavar="X")
    p.add_argument("--top-p", type=float, metavar="P")
    p.add_argument("--seed", type=int, metavar="S", help="make the output reproducible")
    p.add_argument("--candidates", type=int, default=1, metavar="N", help=candidates_help)
    p.add_argument(
        "--max-note-quarters", type=float, default=DEFAULT_MAX_NOTE_QUARTERS, metavar="Q",
        help=f"longest note in quarter notes (default {DEFAULT_MAX_NOTE_QUARTERS:g}; 0: no limit)",
    )  # fmt: skip
    add_guidance_arguments(p)
    p.add_argument("--no-wav", action="store_true", help="skip the WAV rendering")
    p.add_argument("--out", type=Path, required=True, help="output .mid (MusicXML, .txt, .png, .wav beside it)")


def add_guidance_arguments(p, grid: str = "off", key_guidance: float = 0.0) -> None:
    """``--grid`` and ``--key-guidance`` (:mod:`maia_hf.generation.guidance`), with these defaults."""
    from ..generation.guidance import parse_grid

    p.add_argument(
        "--grid", type=parse_grid, default=parse_grid(grid), metavar="auto|off|STEPS",
        help="keep every new onset on a rhythmic grid: auto (the one the music given keeps, e.g. eighth notes), "
        f"a number of steps (6: eighths at 12 a quarter) or off (default {grid})",
    )  # fmt: skip
    p.add_argument(
        "--key-guidance", type=float, default=key_guidance, metavar="X",
        help="lean toward the pitch classes of the music given with strength X: 0 off, 1 model and music alike "
        f"(default {key_guidance:g})",
    )  # fmt: skip


def make_output_folder(out: Path) -> None:
    """Create ``--out``'s folder, or say in one line why it cannot be."""
    from ..errors import MaiaInputError

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MaiaInputError(f"--out {str(out)!r}: cannot create its folder ({exc.strerror}); choose another") from None


def model_or_default(model):
    """``--model``, or the model shipped with maia (an error naming the flag when it is missing)."""
    from ..compose import default_model
    from ..errors import MaiaInputError

    model = model or default_model()
    if model is None:
        raise MaiaInputError(
            "maia_hf.DEFAULT_MODEL is missing from this installation; pass --model DIR (a saved model)"
        )
    return model


def print_candidates(candidate_scores: list[float], score: float, chosen: int) -> None:
    """The mean log-probability of every candidate, and which one was kept."""
    scores = ", ".join(f"{x:.3f}" for x in candidate_scores or [score])
    kept = f"; kept candidate {chosen + 1} of {len(candidate_scores)}" if len(candidate_scores) > 1 else ""
    print(f"  mean log-probability per new token (nats): {scores}{kept}")


def print_files(files: dict) -> None:
    """Each file written, by kind (or why no WAV was rendered)."""
    for kind, path in files.items():
        print(f"  {kind:<9} {path}" if kind != "wav_error" else f"  no WAV: {path}")
