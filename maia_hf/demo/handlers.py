"""The demo's work as plain functions: read the prompt, continue or infill it, write the files, sum it up.

Nothing here imports gradio, so a test calls :func:`continue_request` and :func:`infill_request` directly.
Each request works in a fresh folder of :class:`RequestFolders`; an upload is copied into it under a fixed
name (``upload`` and the upload's suffix, only if maia reads that suffix), so nothing a user sends is used
as a path. Every refusal is a :class:`~maia_hf.errors.MaiaError` with the CLI's one-line message.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..codec import NoteArray, Piece
from ..errors import MaiaError, MaiaInputError
from ..io import MIDI_SUFFIXES, SCORE_SUFFIXES, TEXT_SUFFIXES
from ..resources import LACRIMOSA_PROMPT
from .limits import DemoLimits
from .watch import DecodingWatch, GenerationTimeout

__all__ = [
    "PROMPT_EXAMPLES",
    "READABLE_SUFFIXES",
    "UPLOAD",
    "DemoResult",
    "LoadedModel",
    "RequestFolders",
    "Sampling",
    "continue_request",
    "copy_upload",
    "escape_markdown",
    "infill_request",
    "read_demo_prompt",
]

READABLE_SUFFIXES = MIDI_SUFFIXES + SCORE_SUFFIXES + TEXT_SUFFIXES
UPLOAD = "Upload a file"
PROMPT_EXAMPLES = {
    "Mozart: Lacrimosa, the first 8 bars": str(LACRIMOSA_PROMPT),
    "Bach: chorale BWV 66.6 (music21)": "music21:bach/bwv66.6",
    "Mozart: string quartet K. 155, I (music21)": "music21:mozart/k155/movement1",
    "Joplin: Maple Leaf Rag (music21)": "music21:joplin/maple_leaf_rag",
    "Chopin: mazurka op. 6 no. 2 (music21)": "music21:chopin/mazurka06-2",
}
Report = Callable[[float, str], None]


@dataclass
class LoadedModel:
    """A model and its tokenizer, loaded once and shared by the demo's requests (which run one at a time).

    Example:

    ```python
    >>> from maia_hf.demo import LoadedModel
    >>> loaded = LoadedModel.load()  # the model shipped with maia
    >>> loaded.name, "mozart" in loaded.tokenizer.composers
    ('maia-small', True)

    ```
    """

    model: object
    tokenizer: object
    name: str

    @classmethod
    def load(cls, model_dir=None) -> LoadedModel:
        """Load ``model_dir`` (default: the model shipped with maia) with :func:`maia_hf.compose.load_model`."""
        from ..compose import default_model, load_model

        path = Path(model_dir) if model_dir is not None else default_model()
        if path is None:
            raise MaiaInputError("the model shipped with maia is missing from this install; give --model DIR")
        model, tokenizer = load_model(path)
        return cls(model, tokenizer, path.name)


@dataclass
class Sampling:
    """How to sample: the settings of :func:`~maia_hf.generation.continue_piece` the page offers."""

    composer: str | None = None
    top_k: int = 5
    temperature: float = 1.0
    seed: int | None = None
    candidates: int = 1
    grid: str | int | None = None
    key_guidance: float = 0.0


@dataclass
class DemoResult:
    """What a request wrote.

    Attributes:
        files (`dict`): as :func:`maia_hf.render.write_outputs` returns (``midi``, ``musicxml``, ``notewise``,
            ``png``, ``wav`` or ``wav_error``).
        summary (`str`): Markdown for the page: notes, tokens, seconds, constraints, candidates, the WAV.
        words (`str`): the new music as notewise words.
        cut_short (`bool`): the cap on generation time stopped it before the last bar.
    """

    files: dict
    summary: str
    words: str
    cut_short: bool = False


class RequestFolders:
    """One temporary root folder, and a fresh folder inside it for each request.

    Gradio copies the files a request returns into its own cache after the request, so a folder cannot go
    at once: each new request removes the folders older than ``keep_seconds``.

    Example:

    ```python
    >>> from maia_hf.demo import RequestFolders
    >>> folders = RequestFolders()
    >>> first, second = folders.new(), folders.new()
    >>> first != second and first.parent == second.parent == folders.root
    True

    ```
    """

    def __init__(self, root=None, keep_seconds: float = 3600.0):
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="maia-demo-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.keep_seconds = keep_seconds

    def new(self) -> Path:
        cutoff = time.time() - self.keep_seconds
        for old in self.root.iterdir():
            if old.is_dir() and old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix="request-", dir=self.root))


def copy_upload(upload, folder: Path, limits: DemoLimits) -> Path:
    """Copy an uploaded file into ``folder`` as ``upload<suffix>``; refuse unread suffixes and big files."""
    source = Path(upload)
    suffix = source.suffix.lower()
    if suffix not in READABLE_SUFFIXES:
        raise MaiaInputError(
            f"{source.name!r} has an unknown suffix {suffix!r}; maia reads {', '.join(READABLE_SUFFIXES)}"
        )
    limits.check_upload_size(source.stat().st_size, source.name)
    target = folder / f"upload{suffix}"
    target.write_bytes(source.read_bytes())
    return target


def read_demo_prompt(source: str, upload, folder: Path, tokenizer, limits: DemoLimits, prompt_bars=None) -> Piece:
    """The prompt a request names: an uploaded file (copied into ``folder``) or one of :data:`PROMPT_EXAMPLES`."""
    from ..generation import read_prompt

    if source in PROMPT_EXAMPLES:
        piece = read_prompt(PROMPT_EXAMPLES[source], tokenizer, prompt_bars)
    elif source == UPLOAD:
        if upload is None:
            raise MaiaInputError("upload a MIDI, MusicXML, .krn, ABC or notewise file, or pick an example")
        copy, name = copy_upload(upload, folder, limits), Path(upload).name
        try:
            piece = read_prompt(copy, tokenizer, prompt_bars)
        except MaiaError as exc:  # name the file as the user knows it, not by the request's folder
            raise type(exc)(str(exc).replace(str(copy), name)) from None
        piece = dataclasses.replace(piece, name=piece.name.replace(str(copy), name))
    else:
        raise MaiaInputError(f"unknown prompt {source!r}; pick {UPLOAD!r} or one of {', '.join(PROMPT_EXAMPLES)}")
    limits.check_prompt_notes(len(piece.notes))
    return piece


def continue_request(loaded: LoadedModel, piece: Piece, bars: int, sampling: Sampling, folder: Path,
                     limits: DemoLimits, report: Report | None = None) -> DemoResult:  # fmt: skip
    """Continue ``piece`` for ``bars`` bars and write every format into ``folder``.

    Raises:
        MaiaInputError: a request over ``limits``, a bad setting, or a best-of-N run the time cap stopped (a
            single continuation the cap stops comes back cut short, with the notes written so far).
    """
    from ..generation import continue_piece, prompt_end
    from ..generation.continuation import TOKENS_PER_BAR

    limits.check_request(bars, sampling.candidates)
    tokenizer, spq = loaded.tokenizer, loaded.tokenizer.codec.config.steps_per_quarter
    start = prompt_end(piece, spq)
    new_bar_lines = [b for b in piece.bar_lines(spq, until=start + bars * 16 * spq) if b > start][:bars]
    streamed: list[tuple[int, int, int]] = []

    def describe(steps: int) -> tuple[float, str]:
        if streamed:  # one continuation: bars, from the notes as they are completed
            done = sum(1 for line in new_bar_lines if line <= streamed[-1][2])
            return done / bars, f"maia is writing bar {min(done + 1, bars)} of {bars}"
        many = f"{sampling.candidates} candidates: " if sampling.candidates > 1 else ""
        return min(steps / (TOKENS_PER_BAR * bars), 0.99), f"{many}tokens written: {steps:,}"

    with DecodingWatch(loaded.model, limits.max_seconds, describe, report) as watch:
        try:
            (result,) = continue_piece(
                loaded.model, tokenizer, piece, composer=sampling.composer, bars=bars, top_k=sampling.top_k,
                temperature=sampling.temperature, seed=sampling.seed, candidates=sampling.candidates,
                grid=sampling.grid, key_guidance=sampling.key_guidance, progress=False,
                on_note=lambda *note: streamed.append(note),
            )  # fmt: skip
        except GenerationTimeout:
            result = None
    if result is None:
        return _cut_short(loaded, piece, start, streamed, sampling, folder, limits, watch)
    files = _write(result.piece, folder / "maia-continuation", tokenizer, result.prompt_end)
    summary = _summary(result, bars, len(result.continuation.notes), files)
    return DemoResult(files, summary, result.words)


def _cut_short(loaded, piece, start, streamed, sampling, folder, limits, watch) -> DemoResult:
    """What a continuation the time cap stopped had written: its completed notes, after the prompt."""
    if sampling.candidates > 1:
        raise MaiaInputError(
            f"the {limits.max_seconds:g} s cap on generation time stopped the {sampling.candidates} candidates "
            "before they finished; ask for fewer candidates or fewer bars"
        )
    pitch, onset, offset = (list(column) for column in zip(*streamed, strict=True)) if streamed else ([], [], [])
    new = NoteArray.from_lists(pitch, onset, offset)
    merged = Piece(NoteArray.concatenate([piece.notes, new]).sorted(), piece.tempos, piece.time_signatures,
                   piece.name, piece.composer)  # fmt: skip
    files = _write(merged, folder / "maia-continuation", loaded.tokenizer, start)
    relative = NoteArray(new.pitch, new.start - start, new.end - start, new.velocity)
    words = loaded.tokenizer.codec.encode_text(relative.sorted()) if len(new) else ""
    summary = (
        f"**The {limits.max_seconds:g} s cap on generation time cut maia short** after {len(new):,} notes "
        f"({watch.steps:,} tokens in {watch.seconds:.1f} s); below is what it had written." + _wav_line(files)
    )
    return DemoResult(files, summary, words, cut_short=True)


def infill_request(loaded: LoadedModel, piece: Piece, start_bar: int, end_bar: int, sampling: Sampling,
                   folder: Path, limits: DemoLimits, report: Report | None = None) -> DemoResult:  # fmt: skip
    """Regenerate bars ``start_bar``-``end_bar`` (1-based, inclusive) of ``piece``; write every format.

    Raises:
        MaiaInputError: infilling is missing from this maia or the model has no FIM tokens, a request over
            ``limits``, bars outside the piece, or a run the time cap stopped.
    """
    from ..generation.continuation import TOKENS_PER_BAR

    infill_piece = _infill_api(loaded.tokenizer)
    if end_bar < start_bar:
        raise MaiaInputError(f"the last bar to regenerate ({end_bar}) comes before the first ({start_bar})")
    limits.check_request(end_bar - start_bar + 1, sampling.candidates)

    def describe(steps: int) -> tuple[float, str]:
        return min(steps / (TOKENS_PER_BAR * (end_bar - start_bar + 1)), 0.99), f"tokens of the gap written: {steps:,}"

    with DecodingWatch(loaded.model, limits.max_seconds, describe, report):
        try:
            (result,) = infill_piece(
                loaded.model, loaded.tokenizer, piece, start_bar, end_bar, composer=sampling.composer,
                top_k=sampling.top_k, temperature=sampling.temperature, seed=sampling.seed,
                candidates=sampling.candidates, grid=sampling.grid, key_guidance=sampling.key_guidance,
                progress=False,
            )  # fmt: skip
        except GenerationTimeout:
            raise MaiaInputError(
                f"the {limits.max_seconds:g} s cap on generation time stopped the infilling before it finished; "
                "regenerate fewer bars or ask for fewer candidates"
            ) from None
    files = _write(result.piece, folder / "maia-infill", loaded.tokenizer, None, (result.gap_start, result.gap_end))
    summary = _summary(result, end_bar - start_bar + 1, len(result.middle.notes), files,
                       what=f"bars {start_bar}-{end_bar}")  # fmt: skip
    return DemoResult(files, summary, result.words)


def _infill_api(tokenizer):
    """:func:`maia_hf.generation.infill.infill_piece`, or a clear error where this maia or model lacks it."""
    try:
        from ..generation.infill import infill_piece
    except ImportError:
        raise MaiaInputError("this version of maia cannot infill yet; use the Continue tab") from None
    if not getattr(tokenizer.layout, "has_fim", False):
        raise MaiaInputError(
            "this model has no fill-in-the-middle tokens (<fim_prefix> <fim_suffix> <fim_middle>); infilling "
            "needs a model trained with FIM windows (give one with `maia demo --model DIR`)"
        )
    return infill_piece


def _write(piece: Piece, stem: Path, tokenizer, prompt_end, highlight=None) -> dict:
    """Every format of ``piece``; an infill's piano roll colours its gap apart (``highlight``)."""
    from ..render import write_outputs

    return write_outputs(piece, stem, tokenizer.codec, prompt_end, wav=True, highlight=highlight)


def _summary(result, bars: int, new_notes: int, files: dict, what: str | None = None) -> str:
    """Markdown: what was written, how fast, what the constraints and the candidates did."""
    tokens = getattr(result, "tokens", None) or len(result.words.split())
    seconds = getattr(result, "seconds", 0.0)
    speed = f" in {seconds:.1f} s ({tokens / seconds:,.0f} tokens/s)" if seconds else ""
    lines = [f"**maia wrote {new_notes:,} notes in {what or f'{bars} bars'}**: {tokens:,} tokens{speed}."]
    if result.steps:
        share = 100 * result.interventions / result.steps
        lines.append(
            f"The notewise constraints changed the model's first choice at {result.interventions:,} of "
            f"{result.steps:,} steps ({share:.1f} %)."
        )
    scores = list(result.candidate_scores)
    if len(scores) > 1:
        chosen = scores.index(max(scores))
        listed = ", ".join(f"**{s:.3f}**" if i == chosen else f"{s:.3f}" for i, s in enumerate(scores))
        lines.append(
            f"Best of {len(scores)} candidates: kept number {chosen + 1} (mean log-probability per token, "
            f"nats: {listed})."
        )
    return "\n\n".join(lines) + _wav_line(files)


def _wav_line(files: dict) -> str:
    """Why there is no audio, where there is none (named by file name, not by the request's folder)."""
    if "wav_error" not in files:
        return ""
    reason = files["wav_error"].replace(f"{Path(files['midi']).parent}/", "")
    return f"\n\n**No audio:** {escape_markdown(reason)}"


def escape_markdown(text: str) -> str:
    r"""``text`` shown as written in a Markdown block (``<fim_prefix>`` and ``MAIA_SOUNDFONT`` intact).

    >>> escape_markdown("<fim_prefix> and *.mid")
    '&lt;fim\\_prefix&gt; and \\*.mid'
    """
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for mark in "\\`*_[]#|":
        text = text.replace(mark, "\\" + mark)
    return text
