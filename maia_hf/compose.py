"""The jobs behind ``maia generate``, ``maia lacrimosa`` and ``maia infill``: load a model, read a prompt,
continue it (or fill a gap in it), write it.

Example:

```python
>>> from maia_hf.compose import default_model
>>> default_model().name
'maia-small'

```
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import DEFAULT_MODEL
from .errors import MaiaInputError
from .generation import DEFAULT_MAX_NOTE_QUARTERS, continue_piece, read_prompt
from .resources import LACRIMOSA_PROMPT

__all__ = [
    "LACRIMOSA_BARS",
    "ComposeResult",
    "InfillResult",
    "complete_lacrimosa",
    "compose",
    "default_model",
    "infill",
    "lacrimosa_fidelity",
    "lacrimosa_reference",
    "load_model",
    "parse_bar_ranges",
]

LACRIMOSA_BARS = 30  # the completed movement (Mozart's 8 bars and Süssmayr's 22)
# What `maia lacrimosa` asks of the continuation by default (docs/maia-small.md measures them against the
# model alone): every onset on the grid Mozart's bars keep (eighth notes), and a lean toward his pitch classes.
LACRIMOSA_GRID = "auto"
LACRIMOSA_KEY_GUIDANCE = 1.0


def default_model() -> Path | None:
    """The model that ships inside the package (``maia_hf.DEFAULT_MODEL``), or None where it is missing."""
    path = Path(DEFAULT_MODEL)
    return path if (path / "config.json").exists() else None


def load_model(model_dir):
    """Load a saved maia model and its tokenizer (``AutoModelForCausalLM`` / ``AutoTokenizer``), in eval mode.

    Raises:
        MaiaInputError: the directory is missing or is not a saved model.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .registration import register

    register()
    path = Path(model_dir)
    if not (path / "config.json").exists():
        reason = "does not exist" if not path.exists() else "holds no config.json"
        raise MaiaInputError(f"model directory {str(path)!r} {reason}; give a directory written by save_pretrained")
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    if not hasattr(tokenizer, "codec"):
        raise MaiaInputError(f"{str(path)!r} has no maia tokenizer; save a MaiaTokenizer into it")
    return model, tokenizer


@dataclass
class ComposeResult:
    """What one generated piece became: the continuation and the files written.

    Attributes:
        continuation (`maia_hf.generation.Continuation`): the notes, words and figures of the run.
        files (`dict`): kind (``midi``, ``musicxml``, ``notewise``, ``png``, ``wav``) -> path written, or
            ``wav_error`` -> why no WAV was rendered.
    """

    continuation: object
    files: dict


def compose(
    model_dir,
    prompt=None,
    out="maia.mid",
    *,
    prompt_bars: int | None = None,
    bars: int | None = None,
    max_new_tokens: int | None = None,
    top_k: int = 5,
    top_p: float | None = None,
    temperature: float = 1.0,
    composer: str | None = None,
    seed: int | None = None,
    num_return_sequences: int = 1,
    max_note_quarters: float | None = DEFAULT_MAX_NOTE_QUARTERS,
    candidates: int = 1,
    wav: bool = True,
    progress: bool = True,
    grid=None,
    key_guidance: float = 0.0,
) -> list[ComposeResult]:
    """Continue ``prompt`` with the model in ``model_dir`` and write MIDI, MusicXML, notewise text, PNG and WAV.

    ``prompt`` is anything :func:`~maia_hf.generation.read_prompt` reads; the other arguments are those of
    :func:`~maia_hf.generation.continue_piece` (``candidates=N``: each sequence is the likeliest of N
    sampled as one batch; ``grid``, ``key_guidance``: keep the prompt's rhythmic grid and lean toward its key,
    :mod:`~maia_hf.generation.guidance`). With several sequences the files are ``OUT-1.mid``, ``OUT-2.mid``, ...

    Ctrl-C while sampling keeps what was sampled: the sequences finished and the one interrupted are written
    (its notes closed where it stopped) and the last result's ``continuation.interrupted`` is True.
    """
    from .generation import check_candidates
    from .generation.guidance import check_guidance
    from .render import write_outputs

    check_candidates(candidates)  # before the model loads
    check_guidance(grid, key_guidance)
    model, tokenizer = load_model(model_dir)
    piece = read_prompt(prompt, tokenizer, prompt_bars)
    continuations = continue_piece(
        model, tokenizer, piece, composer=composer, bars=bars, max_new_tokens=max_new_tokens, top_k=top_k,
        top_p=top_p, temperature=temperature, seed=seed, num_return_sequences=num_return_sequences,
        max_note_quarters=max_note_quarters, candidates=candidates, progress=progress, keep_interrupted=True,
        grid=grid, key_guidance=key_guidance,
    )  # fmt: skip
    out = Path(out)
    results = []
    for i, continuation in enumerate(continuations, start=1):
        stem = out.with_suffix("") if num_return_sequences == 1 else out.with_name(f"{out.with_suffix('').name}-{i}")
        files = write_outputs(continuation.piece, stem, tokenizer.codec, continuation.prompt_end, wav=wav)
        results.append(ComposeResult(continuation, files))
    return results


def complete_lacrimosa(
    model_dir,
    out_dir,
    *,
    seed: int | None = 0,
    top_k: int = 5,
    candidates: int = 1,
    wav: bool = True,
    progress=True,
    grid=LACRIMOSA_GRID,
    key_guidance: float = LACRIMOSA_KEY_GUIDANCE,
):
    """Continue Mozart's 8 bars of the Lacrimosa to the movement's 30 bars; write every format into ``out_dir``.

    ``candidates=N`` keeps the likeliest of N completions sampled as one batch. ``grid`` and ``key_guidance``
    (:mod:`~maia_hf.generation.guidance`) default to keeping Mozart's eighth-note grid and leaning toward
    his pitch classes, the settings ``docs/maia-small.md`` measured; ``grid=None, key_guidance=0`` is the
    model alone.
    """
    return compose(
        model_dir, LACRIMOSA_PROMPT, Path(out_dir) / "lacrimosa.mid", bars=LACRIMOSA_BARS - 8, top_k=top_k,
        composer="mozart", seed=seed, candidates=candidates, wav=wav, progress=progress, grid=grid,
        key_guidance=key_guidance,
    )[0]  # fmt: skip


def lacrimosa_reference() -> Path | None:
    """Süssmayr's completion (the whole movement), where this checkout's ``../shared/reference`` holds it, or
    ``$MAIA_LACRIMOSA_REFERENCE``; None elsewhere (it does not ship with maia)."""
    import os

    named = os.environ.get("MAIA_LACRIMOSA_REFERENCE")
    path = (
        Path(named)
        if named
        else Path(__file__).resolve().parents[2] / "shared" / "reference" / "lacrimosa-orchestral.mid"
    )
    return path if path.is_file() else None


def lacrimosa_fidelity(result: ComposeResult) -> list[str]:
    """What a listener checks in a Lacrimosa completion: key, the 12/8 grid, held notes; beside Süssmayr's."""
    from .evaluation.fidelity import continuation_fidelity

    c = result.continuation
    ours = continuation_fidelity(c.piece, c.prompt_end)
    theirs = None
    reference = lacrimosa_reference()
    if reference is not None:
        piece = read_prompt(str(reference))
        theirs = continuation_fidelity(piece.first_bars(LACRIMOSA_BARS), piece.bar_lines()[8])

    def beside(key: str, form: str) -> str:
        return f"{form.format(ours[key])}" + (f" (Süssmayr {form.format(theirs[key])})" if theirs else "")

    return [
        f"  key: {ours['prompt_key']} prompt, {ours['continuation_key']} continuation; pitch-class profiles "
        f"correlate at r = {beside('key_correlation', '{:.2f}')}",
        f"  metre: {beside('onsets_on_grid', '{:.0%}')} of onsets on the 12/8 eighth-note grid, "
        f"{beside('onsets_on_beats', '{:.0%}')} on the beats; longest note "
        f"{beside('longest_note_bars', '{:.1f}')} bars",
    ]


@dataclass
class InfillResult:
    """What an infilling job wrote: every filled gap and the files.

    Attributes:
        infills (`list[maia_hf.generation.Infill]`): one per gap, in order; the last one's ``piece`` holds them all.
        files (`dict`): kind -> path written, as for :class:`ComposeResult`.
    """

    infills: list
    files: dict

    @property
    def piece(self):
        """The piece with every gap filled."""
        return self.infills[-1].piece


def parse_bar_ranges(text: str) -> list[tuple[int, int]]:
    """``"9-12"``, ``"9"`` or ``"3-4,9-12"`` as sorted ``(first, last)`` bar ranges (1-based, inclusive).

    Raises:
        MaiaInputError: a range that is not ``N`` or ``N-M``, an empty one, or two that overlap.

    >>> parse_bar_ranges("9-12,3-4"), parse_bar_ranges("5")
    ([(3, 4), (9, 12)], [(5, 5)])
    """
    ranges = []
    for part in str(text).split(","):
        first, _, last = part.strip().partition("-")
        if not first.strip().isdigit() or (last and not last.strip().isdigit()):
            raise MaiaInputError(f"--bars {text!r}: write bars as N or N-M (e.g. 9-12), several joined by commas")
        a, b = int(first), int(last or first)
        if a < 1 or b < a:
            raise MaiaInputError(f"--bars {text!r}: bars {a}-{b} is an empty gap; bars count from 1, first then last")
        ranges.append((a, b))
    ranges.sort()
    for (a, b), (c, d) in zip(ranges, ranges[1:], strict=False):
        if c <= b:
            raise MaiaInputError(f"--bars {text!r}: bars {a}-{b} and {c}-{d} overlap; give each bar once")
    return ranges


def infill(
    model_dir,
    piece=None,
    out="maia-infill.mid",
    *,
    bars,
    before=None,
    after=None,
    composer: str | None = None,
    top_k: int = 5,
    top_p: float | None = None,
    temperature: float = 1.0,
    seed: int | None = None,
    candidates: int = 1,
    max_note_quarters: float | None = DEFAULT_MAX_NOTE_QUARTERS,
    wav: bool = True,
    progress: bool = True,
    grid=None,
    key_guidance: float = 0.0,
) -> InfillResult:
    """Regenerate bars of ``piece``, or bridge ``before`` and ``after``; write MIDI, MusicXML, notewise, PNG, WAV.

    Args:
        model_dir: a saved maia model trained to infill.
        piece: anything :func:`~maia_hf.generation.read_prompt` reads; with ``bars`` as ``"9-12"`` (several
            ranges: ``"3-4,9-12"``, filled in order, each seeing the ones before it filled).
        before, after: two passages to bridge instead (``bars``: how many new bars, an `int`).
        out: the MIDI path; the other formats are written beside it. The piano roll shows the new bars in
            their own colour.
        composer, top_k, top_p, temperature, seed, candidates, max_note_quarters, grid, key_guidance: as for
            :func:`~maia_hf.generation.infill_piece`.
    """
    from .generation import check_candidates, infill_between, infill_piece
    from .generation.guidance import check_guidance
    from .render import write_outputs

    check_candidates(candidates)
    check_guidance(grid, key_guidance)
    bridging = before is not None or after is not None
    if bridging and (before is None or after is None or piece is not None):
        raise MaiaInputError(
            "a bridge needs both --before and --after (and no piece); to regenerate bars, give a piece"
        )
    if not bridging and piece is None:
        raise MaiaInputError("give a piece whose bars to regenerate, or --before and --after to bridge two passages")
    if bridging and (isinstance(bars, bool) or not str(bars).strip().isdigit() or int(bars) < 1):
        raise MaiaInputError(f"--bars {bars!r}: a bridge takes a number of new bars, at least 1 (e.g. --bars 4)")
    ranges = None if bridging else parse_bar_ranges(bars)
    model, tokenizer = load_model(model_dir)
    options = dict(composer=composer, top_k=top_k, top_p=top_p, temperature=temperature, candidates=candidates,
                   max_note_quarters=max_note_quarters, progress=progress, grid=grid,
                   key_guidance=key_guidance)  # fmt: skip
    if bridging:
        first, second = read_prompt(before, tokenizer), read_prompt(after, tokenizer)
        infills = infill_between(model, tokenizer, first, second, int(bars), seed=seed, **options)
    else:
        current, infills = read_prompt(piece, tokenizer), []
        for i, (a, b) in enumerate(ranges):
            filled = infill_piece(model, tokenizer, current, a, b, seed=None if seed is None else seed + i, **options)
            infills.append(filled[0])
            current = filled[0].piece
    last = infills[-1]
    spans = [(x.gap_start, x.gap_end) for x in infills]
    files = write_outputs(last.piece, Path(out), tokenizer.codec, wav=wav, highlight=spans)
    return InfillResult(infills, files)
