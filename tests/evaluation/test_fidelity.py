"""Key, metre and held notes of a continuation against its prompt."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import LACRIMOSA_REFERENCE

from maia_hf.codec import NoteArray, Piece, TimeSignature
from maia_hf.evaluation.fidelity import continuation_fidelity, estimate_key

MAJOR = [0, 2, 4, 5, 7, 9, 11]


def _scale(tonic: int, steps: list[int], start: int = 0, length: int = 6) -> NoteArray:
    pitches = [60 + tonic + s for s in steps] + [60 + tonic, 64 + tonic, 67 + tonic]
    onsets = [start + length * i for i in range(len(pitches))]
    return NoteArray.from_lists(pitches, onsets, [o + length for o in onsets])


@pytest.mark.parametrize(("tonic", "name"), [(0, "C major"), (7, "G major"), (2, "D major")])
def test_the_key_of_a_scale_and_its_triad(tonic, name):
    assert estimate_key(_scale(tonic, MAJOR))[0] == name


def test_a_continuation_that_leaves_the_key_and_the_grid_is_told_apart():
    ts = [TimeSignature(0, 12, 8)]
    prompt = _scale(2, [0, 2, 3, 5, 7, 8, 10])  # D minor, on eighth notes
    same = Piece(NoteArray.concatenate([prompt, _scale(2, [0, 2, 3, 5, 7, 8, 10], start=72)]), time_signatures=ts)
    off = _scale(6, MAJOR, start=73, length=5)  # F# major, off the eighth-note grid
    drifted = Piece(NoteArray.concatenate([prompt, off]), time_signatures=ts)
    good, bad = continuation_fidelity(same, 72), continuation_fidelity(drifted, 72)
    assert good["continuation_key"] == good["prompt_key"] == "D minor" and good["key_correlation"] > 0.95
    assert bad["continuation_key"] != "D minor" and bad["key_correlation"] < good["key_correlation"] - 0.3
    assert good["onsets_on_grid"] == 1.0 and bad["onsets_on_grid"] < 0.5
    held = Piece(NoteArray.concatenate([prompt, NoteArray.from_lists([62], [72], [72 + 180])]), time_signatures=ts)
    assert continuation_fidelity(held, 72)["longest_note_bars"] == pytest.approx(2.5)


@pytest.mark.skipif(not LACRIMOSA_REFERENCE.is_file(), reason="the Lacrimosa reference is not beside this checkout")
def test_suessmayrs_completion_keeps_d_minor_and_the_12_8_grid():
    from maia_hf.generation import read_prompt

    piece = read_prompt(str(LACRIMOSA_REFERENCE))
    figures = continuation_fidelity(piece, piece.bar_lines()[8])
    assert figures["prompt_key"] == figures["continuation_key"] == "D minor"
    assert figures["onsets_on_grid"] > 0.95 and figures["key_correlation"] > 0.9
    assert np.isfinite(figures["longest_note_bars"])
