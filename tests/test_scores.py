"""MusicXML writing: notated in passes of a few bars, the same score as music21 makes in one pass."""

from __future__ import annotations

import re

import numpy as np
import pytest

from maia_hf.codec import NotewiseCodec
from maia_hf.io import load_pieces
from maia_hf.notes import NoteArray, Piece, TempoChange, TimeSignature
from maia_hf.scores import BARS_PER_PASS, piece_to_music21, write_musicxml


def _random_piece(n_notes: int, seed: int = 0) -> Piece:
    """Chords, accidentals, long ties across bar lines and odd lengths (tuplets), in 3/4."""
    rng = np.random.default_rng(seed)
    start = np.sort(rng.integers(0, n_notes * 3, n_notes))
    length = rng.choice([3, 4, 6, 12, 18, 24, 36, 60, 100], n_notes)
    pitch = rng.integers(36, 90, n_notes)
    notes = NoteArray.from_lists(pitch.tolist(), start.tolist(), (start + length).tolist(), [80] * n_notes)
    return Piece(notes, [TempoChange(0, 96.0)], [TimeSignature(0, 3, 4)], "random", None)


def _without_ids(text: str) -> str:
    text = re.sub(r'id="[PI][0-9a-f]+"', 'id="X"', text)
    return re.sub(r"<encoding-date>.*</encoding-date>", "", text)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A 2,000-note piece (over 150 bars: three passes) written by maia and by music21 in one pass."""
    piece = _random_piece(2000)
    root = tmp_path_factory.mktemp("scores")
    ours = write_musicxml(piece, root / "passes.musicxml")
    reference = root / "one-pass.musicxml"
    piece_to_music21(piece).write("musicxml", fp=str(reference))
    return piece, ours, reference


def test_the_piece_spans_several_passes(written):
    piece, _, _ = written
    assert int(piece.notes.end.max()) > 2 * BARS_PER_PASS * 36  # 36 steps a bar of 3/4


def test_the_notes_read_back_as_from_music21s_own_writer(written):
    _, ours, reference = written
    codec = NotewiseCodec()
    (mine,), (theirs,) = load_pieces(ours, codec), load_pieces(reference, codec)
    assert len(mine.notes) > 1500 and mine.notes.as_tuples() == theirs.notes.as_tuples()
    assert [(t.numerator, t.denominator) for t in mine.time_signatures] == [(3, 4)]


def test_the_file_is_music21s_one_pass_file(written):
    """Measures, ties, beams, tuplets, accidentals and hidden rests: the same MusicXML, but for random ids."""
    _, ours, reference = written
    assert _without_ids(ours.read_text()) == _without_ids(reference.read_text())


@pytest.mark.parametrize("suffix", [".mxl", ".xml"])
def test_other_suffixes_and_an_empty_piece(tmp_path, suffix):
    empty = Piece(NoteArray.empty(), [], [], "empty", None)
    for piece in (_random_piece(40, seed=1), empty):
        path = write_musicxml(piece, tmp_path / f"{piece.name}{suffix}")
        (back,) = load_pieces(path, NotewiseCodec())
        assert len(back.notes) == len(
            load_pieces(write_musicxml(piece, tmp_path / "x.musicxml"), NotewiseCodec())[0].notes
        )
