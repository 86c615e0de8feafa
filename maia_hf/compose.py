"""The jobs behind ``maia generate`` and ``maia lacrimosa``: load a model, read a prompt, continue it, write it.

Example:

```python
>>> from maia_hf.compose import read_prompt
>>> read_prompt("p60 wait12 endp60").notes.as_tuples()
[(60, 0, 12)]

```
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .codec import NoteArray, NotewiseCodec, Piece
from .errors import MaiaInputError
from .generation import DEFAULT_MAX_NOTE_QUARTERS
from .io import MIDI_SUFFIXES, SCORE_SUFFIXES, TEXT_SUFFIXES, load_pieces
from .resources import LACRIMOSA_PROMPT

__all__ = [
    "LACRIMOSA_BARS",
    "ComposeResult",
    "complete_lacrimosa",
    "compose",
    "default_model",
    "load_model",
    "read_prompt",
]

LACRIMOSA_BARS = 30  # the completed movement (Mozart's 8 bars and Süssmayr's 22)
DEFAULT_MODEL_DIR = Path(__file__).parent / "resources" / "maia-small"  # = maia_hf.DEFAULT_MODEL


def default_model() -> Path | None:
    """The model that ships inside the package, or None where none does yet."""
    return DEFAULT_MODEL_DIR if (DEFAULT_MODEL_DIR / "config.json").exists() else None


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


def read_prompt(prompt, codec: NotewiseCodec | None = None, prompt_bars: int | None = None) -> Piece:
    """A prompt piece from a file path, notewise text, or None (nothing: start from scratch).

    ``prompt_bars`` keeps exactly the first N bars (from the prompt's time signatures).
    """
    codec = codec or NotewiseCodec()
    if prompt is None:
        return Piece(NoteArray.empty())
    if isinstance(prompt, Piece):
        piece = prompt
    else:
        text = str(prompt)
        is_path = "\n" not in text and (
            Path(text).suffix.lower() in MIDI_SUFFIXES + SCORE_SUFFIXES + TEXT_SUFFIXES or text.startswith("music21:")
        )
        if is_path:
            pieces = load_pieces(text, codec)
            if not pieces:
                raise MaiaInputError(f"{text!r} holds no piece to continue")
            piece = pieces[0]
        else:
            indices = codec.words_to_indices([w for w in text.split() if not w.startswith("<")], source="the prompt")
            piece = Piece(codec.decode(indices).notes, name="prompt")
    return piece.first_bars(prompt_bars, codec.config.steps_per_quarter) if prompt_bars else piece


@dataclass
class ComposeResult:
    """What one generated piece became: the continuation and the files written."""

    continuation: object  # maia_hf.generation.Continuation
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
    wav: bool = True,
    progress: bool = True,
) -> list[ComposeResult]:
    """Continue ``prompt`` with the model in ``model_dir`` and write MIDI, MusicXML, notewise text, PNG and WAV.

    With several sequences the files are ``OUT-1.mid``, ``OUT-2.mid``, ...
    """
    from .generation import continue_piece
    from .render import write_outputs

    model, tokenizer = load_model(model_dir)
    piece = read_prompt(prompt, tokenizer.codec, prompt_bars)
    continuations = continue_piece(
        model, tokenizer, piece, composer=composer, bars=bars, max_new_tokens=max_new_tokens, top_k=top_k,
        top_p=top_p, temperature=temperature, seed=seed, num_return_sequences=num_return_sequences,
        max_note_quarters=max_note_quarters, progress=progress,
    )  # fmt: skip
    out = Path(out)
    results = []
    for i, continuation in enumerate(continuations, start=1):
        stem = out.with_suffix("") if num_return_sequences == 1 else out.with_name(f"{out.with_suffix('').name}-{i}")
        files = write_outputs(continuation.piece, stem, tokenizer.codec, continuation.prompt_end, wav=wav)
        results.append(ComposeResult(continuation, files))
    return results


def complete_lacrimosa(model_dir, out_dir, *, seed: int | None = 0, top_k: int = 5, wav: bool = True, progress=True):
    """Continue Mozart's 8 bars of the Lacrimosa to the movement's 30 bars; write every format into ``out_dir``."""
    return compose(
        model_dir, LACRIMOSA_PROMPT, Path(out_dir) / "lacrimosa.mid", bars=LACRIMOSA_BARS - 8, top_k=top_k,
        composer="mozart", seed=seed, wav=wav, progress=progress,
    )[0]  # fmt: skip
