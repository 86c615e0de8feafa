"""The prompt reader: files, corpus names, notewise text, MIDI bytes, pieces; bar-accurate clipping."""

from __future__ import annotations

from pathlib import Path

import pytest

from maia_hf.codec import NoteArray, NotewiseCodec, Piece, TimeSignature
from maia_hf.errors import MaiaInputError, MaiaTokenError
from maia_hf.generation import read_prompt
from maia_hf.io import load_pieces
from maia_hf.resources import LACRIMOSA_PROMPT


def test_prompt_bars_is_bar_accurate():
    prompt = read_prompt(str(LACRIMOSA_PROMPT), prompt_bars=3)
    assert prompt.notes.end.max() == 3 * 72 and prompt.notes.start.max() < 3 * 72
    full = read_prompt(str(LACRIMOSA_PROMPT))
    assert prompt.notes.as_tuples() == [(p, s, min(e, 216)) for p, s, e in full.notes.as_tuples() if s < 216]


def test_bars_follow_a_time_signature_change():
    piece = Piece(
        NoteArray.from_lists([60, 62, 64], [0, 36, 72], [36, 72, 144]),
        time_signatures=[TimeSignature(0, 3, 4), TimeSignature(72, 2, 4)],
    )
    assert piece.first_bars(3).notes.as_tuples() == [(60, 0, 36), (62, 36, 72), (64, 72, 96)]
    assert read_prompt(piece, prompt_bars=3).notes.as_tuples() == [(60, 0, 36), (62, 36, 72), (64, 72, 96)]


def test_notewise_text_prompt_and_unknown_word():
    assert read_prompt("p60 wait12 endp60").notes.as_tuples() == [(60, 0, 12)]
    with pytest.raises(MaiaTokenError, match="unknown word 'p6O' at position 0 of the prompt"):
        read_prompt("p6O wait12 endp60")


def test_text_with_metadata_lines_keeps_them():
    text = "# composer: chopin\n# time_signature: 0 3 4\n# tempo: 0 90\np60 wait12 endp60"
    piece = read_prompt(text)
    assert piece.notes.as_tuples() == [(60, 0, 12)] and piece.composer == "chopin"
    assert (piece.time_signatures[0].numerator, round(piece.tempos[0].qpm)) == (3, 90)
    with pytest.raises(MaiaTokenError, match="unknown word 'wait99' at position 1 of line 2 of the prompt"):
        read_prompt("# name: x\np60 wait99")


@pytest.mark.parametrize("kind", ["str", "path", "bytes"])
def test_a_midi_file_as_path_or_bytes(two_hands_midi, kind):
    prompt = {"str": str(two_hands_midi), "path": Path(two_hands_midi), "bytes": two_hands_midi.read_bytes()}[kind]
    piece = read_prompt(prompt, NotewiseCodec())
    assert piece.notes.as_tuples() == load_pieces(two_hands_midi)[0].notes.as_tuples()
    assert (piece.time_signatures[0].numerator, piece.time_signatures[0].denominator) == (3, 4)


def test_a_tokenizer_or_a_codec(tokenizer):
    assert read_prompt("p60 wait12 endp60", tokenizer).notes.as_tuples() == [(60, 0, 12)]


def test_text_as_bytes_and_nothing():
    assert read_prompt(b"p62 wait6 endp62").notes.as_tuples() == [(62, 0, 6)]
    assert len(read_prompt(None).notes) == 0 and len(read_prompt("  \n").notes) == 0


def test_errors_name_the_input_not_a_temporary_file(tmp_path):
    with pytest.raises(MaiaInputError, match="the prompt's MIDI bytes are damaged") as damaged:
        read_prompt(b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\xff\xff")
    with pytest.raises(MaiaInputError, match="line 1 of the prompt: '# tempo: fast'") as meta:
        read_prompt("# tempo: fast\np60 wait12 endp60")
    for error in (damaged, meta):
        assert "tmp" not in str(error.value) and "prompt.txt" not in str(error.value)
    with pytest.raises(MaiaInputError, match=r"'.*missing\.mid' does not exist"):
        read_prompt(str(tmp_path / "missing.mid"))
    with pytest.raises(MaiaInputError, match="cannot continue a int; give a file path, notewise text"):
        read_prompt(42)


def test_a_music21_corpus_name():
    piece = read_prompt("music21:bach/bwv66.6", prompt_bars=2)
    assert len(piece.notes) > 10 and piece.notes.end.max() <= 2 * 48


@pytest.mark.parametrize(
    ("prompt", "message"),
    [("tone.wav", "has an unknown suffix '.wav'"), ("no/such/piece.mid", "does not exist")],
    ids=["audio-file", "missing-file"],
)
def test_a_path_is_read_as_a_path_never_as_notewise_words(tmp_path, prompt, message):
    if prompt == "tone.wav":
        prompt = str(tmp_path / prompt)
        Path(prompt).write_bytes(b"RIFF....WAVE")
    with pytest.raises(MaiaInputError, match=message):
        read_prompt(prompt)


def test_a_folder_prompt_says_it_is_a_folder(tmp_path):
    with pytest.raises(MaiaInputError, match="is a folder; give a file"):
        read_prompt(str(tmp_path))


@pytest.mark.parametrize("prompt_bars", [0, -1, 2.5])
def test_prompt_bars_must_be_a_positive_whole_number(prompt_bars):
    with pytest.raises(MaiaInputError, match="prompt_bars must be a whole number of bars >= 1"):
        read_prompt("p60 wait12 endp60", prompt_bars=prompt_bars)
