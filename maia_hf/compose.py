"""The jobs behind ``maia generate`` and ``maia lacrimosa``: load a model, read a prompt, continue it, write it.

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
    "complete_lacrimosa",
    "compose",
    "default_model",
    "load_model",
]

LACRIMOSA_BARS = 30  # the completed movement (Mozart's 8 bars and Süssmayr's 22)


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
) -> list[ComposeResult]:
    """Continue ``prompt`` with the model in ``model_dir`` and write MIDI, MusicXML, notewise text, PNG and WAV.

    ``prompt`` is anything :func:`~maia_hf.generation.read_prompt` reads; the other arguments are those of
    :func:`~maia_hf.generation.continue_piece` (``candidates=N``: each sequence is the likeliest of N
    sampled as one batch). With several sequences the files are ``OUT-1.mid``, ``OUT-2.mid``, ...
    """
    from .generation import check_candidates
    from .render import write_outputs

    check_candidates(candidates)  # before the model loads
    model, tokenizer = load_model(model_dir)
    piece = read_prompt(prompt, tokenizer, prompt_bars)
    continuations = continue_piece(
        model, tokenizer, piece, composer=composer, bars=bars, max_new_tokens=max_new_tokens, top_k=top_k,
        top_p=top_p, temperature=temperature, seed=seed, num_return_sequences=num_return_sequences,
        max_note_quarters=max_note_quarters, candidates=candidates, progress=progress,
    )  # fmt: skip
    out = Path(out)
    results = []
    for i, continuation in enumerate(continuations, start=1):
        stem = out.with_suffix("") if num_return_sequences == 1 else out.with_name(f"{out.with_suffix('').name}-{i}")
        files = write_outputs(continuation.piece, stem, tokenizer.codec, continuation.prompt_end, wav=wav)
        results.append(ComposeResult(continuation, files))
    return results


def complete_lacrimosa(
    model_dir, out_dir, *, seed: int | None = 0, top_k: int = 5, candidates: int = 1, wav: bool = True, progress=True
):
    """Continue Mozart's 8 bars of the Lacrimosa to the movement's 30 bars; write every format into ``out_dir``.

    ``candidates=N`` keeps the likeliest of N completions sampled as one batch.
    """
    return compose(
        model_dir, LACRIMOSA_PROMPT, Path(out_dir) / "lacrimosa.mid", bars=LACRIMOSA_BARS - 8, top_k=top_k,
        composer="mozart", seed=seed, candidates=candidates, wav=wav, progress=progress,
    )[0]  # fmt: skip
