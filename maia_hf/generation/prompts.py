"""The prompt reader: every way a user hands maia music to continue, read as one `Piece`.

``maia generate --prompt``, :func:`maia_hf.compose.compose` and both pipelines read their prompts
here, so a prompt means the same thing wherever it is given.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from ..codec import NoteArray, NotewiseCodec, Piece
from ..errors import MaiaInputError
from ..io import MUSIC21_PREFIX, load_pieces, to_piece

__all__ = ["read_prompt"]


def read_prompt(prompt, tokenizer_or_codec=None, prompt_bars: int | None = None) -> Piece:
    """Read a prompt as a piece on the codec's grid.

    Args:
        prompt: None (start from nothing), a `Piece`, a path (`str` or `os.PathLike`) to a MIDI,
            MusicXML, .mxl, .krn, ABC or notewise text file, ``"music21:<corpus path>"``, notewise text
            (``"p60 wait12 endp60"``, with ``# key: value`` metadata lines if wanted), MIDI bytes (other
            bytes are read as UTF-8 notewise text), a ``symusic.Score`` or a music21 stream. A file or
            text with several pieces gives its first.
        tokenizer_or_codec (`MaiaTokenizer` or `NotewiseCodec`, *optional*): whose grid and words to use
            (default: ``NotewiseCodec()``).
        prompt_bars (`int`, *optional*): keep exactly the first N bars (from the prompt's time signatures).

    Raises:
        MaiaInputError: a missing or unreadable file, damaged MIDI bytes, or a type maia cannot read.
        MaiaTokenError: notewise text with a word outside the vocabulary (named, with its position).

    Example:

    ```python
    >>> from maia_hf.generation import read_prompt
    >>> read_prompt("p60 wait12 endp60").notes.as_tuples()
    [(60, 0, 12)]
    >>> piece = read_prompt("# time_signature: 0 3 4\\np60 wait36 endp60 p62 wait36 endp62", prompt_bars=1)
    >>> piece.notes.as_tuples(), piece.time_signatures[0].numerator
    ([(60, 0, 36)], 3)
    >>> len(read_prompt(None).notes)
    0

    ```
    """
    codec = NotewiseCodec() if tokenizer_or_codec is None else getattr(tokenizer_or_codec, "codec", tokenizer_or_codec)
    if prompt_bars is not None and (
        isinstance(prompt_bars, bool) or not isinstance(prompt_bars, int) or prompt_bars < 1
    ):
        raise MaiaInputError(f"prompt_bars must be a whole number of bars >= 1 (or None for all), got {prompt_bars!r}")
    piece = _read_piece(prompt, codec)
    return piece.first_bars(prompt_bars, codec.config.steps_per_quarter) if prompt_bars else piece


def _read_piece(prompt, codec: NotewiseCodec) -> Piece:
    if prompt is None:
        return Piece(NoteArray.empty())
    if isinstance(prompt, Piece):
        return prompt
    if isinstance(prompt, (bytes, bytearray)):
        return _read_bytes(bytes(prompt), codec)
    if isinstance(prompt, os.PathLike) or (isinstance(prompt, str) and _names_a_file(prompt)):
        return _first_piece(load_pieces(prompt, codec), prompt)
    if isinstance(prompt, str):
        return _read_notewise_text(prompt, codec)
    if type(prompt).__module__.split(".")[0] in ("symusic", "music21"):
        return _first_piece(load_pieces(prompt, codec), type(prompt).__name__)
    raise MaiaInputError(
        f"cannot continue a {type(prompt).__name__}; give a file path, notewise text, MIDI bytes, a Piece or None"
    )


def _names_a_file(text: str) -> bool:
    """A string that names a file or folder (or a music21 corpus work), as opposed to notewise text.

    Notewise words have neither dots nor slashes, so one token with either (``tone.wav``, ``songs/``) is a
    path, and reading it says what is wrong with it (missing, a folder, a format maia does not read).
    """
    one_token = "\n" not in text and len(text.split()) == 1
    return text.startswith(MUSIC21_PREFIX) or (
        one_token and ("." in text or "/" in text or os.sep in text or Path(text.strip()).exists())
    )


def _first_piece(pieces: list[Piece], source) -> Piece:
    if not pieces:
        raise MaiaInputError(f"{str(source)!r} holds no piece to continue")
    return pieces[0]


def _read_bytes(data: bytes, codec: NotewiseCodec) -> Piece:
    if data[:4] != b"MThd":
        return _read_notewise_text(data.decode("utf-8", errors="replace"), codec)
    import symusic

    try:
        score = symusic.Score.from_midi(data)
    except Exception as exc:  # symusic raises RuntimeError/ValueError with terse messages
        raise MaiaInputError(f"the prompt's MIDI bytes are damaged ({exc}); re-export the MIDI file") from exc
    return _first_piece(load_pieces(score, codec), "the prompt's MIDI bytes")


def _read_notewise_text(text: str, codec: NotewiseCodec) -> Piece:
    """The first piece of notewise text: ``# key: value`` metadata lines, then a line of words."""
    from ..io import parse_notewise

    if len(text.splitlines()) == 1:
        where = lambda number: "the prompt"  # noqa: E731
    else:
        where = lambda number: f"line {number} of the prompt"  # noqa: E731
    raws = parse_notewise(text, codec, where=where, name="prompt")
    if not raws:
        return Piece(NoteArray.empty())
    raw = raws[0]
    if raw.name.startswith("prompt:"):
        raw = dataclasses.replace(raw, name="prompt")
    return to_piece(raw, codec)[0]
