"""Round trips on real music: every canonical note comes back, and the words are stable."""

from __future__ import annotations

import pytest
from helpers import (
    BROKEN_MIDI_FIXTURES,
    LACRIMOSA_REFERENCE,
    READABLE_MIDI_FIXTURES,
    needs_piano_midi_de,
    piano_midi_de_files,
)

from maia_hf.codec import NotewiseCodec
from maia_hf.errors import MaiaInputError
from maia_hf.io import load_pieces
from maia_hf.resources import LACRIMOSA_PROMPT
from maia_hf.roundtrip import RoundTripReport, roundtrip_source


@needs_piano_midi_de
def test_every_piano_midi_de_file_round_trips(codec):
    files = piano_midi_de_files()
    assert len(files) == 337
    total, failures = RoundTripReport(), []
    for path in files:
        report = roundtrip_source(path, codec)
        total = total + report
        if not report.lossless:
            failures.append(path.name)
    assert failures == []
    assert total.canonical_restored == total.canonical_notes > 500_000
    # Quantization moves notes; it never drops them. Only the two same-pitch rules remove notes.
    assert total.notes_read - total.canonical_notes == total.changes.merged_duplicates


@needs_piano_midi_de
def test_piano_midi_de_round_trips_in_every_key(codec):
    for path in piano_midi_de_files()[::40]:
        (piece,) = load_pieces(path, codec)
        for k in range(-5, 7):
            ids = codec.encode(piece.notes, transpose=k)
            canonical, _ = codec.canonicalize(piece.notes, transpose=k)
            assert codec.decode(ids).notes.as_tuples() == canonical.as_tuples(), (path.name, k)


@pytest.mark.parametrize(
    "work",
    ["bach/bwv66.6", "bach/bwv269", "mozart/k155/movement1", "haydn/opus74no1/movement3", "joplin/maple_leaf_rag"],
)
def test_music21_corpus_works_round_trip(work):
    report = roundtrip_source(f"music21:{work}", NotewiseCodec())
    assert report.lossless and report.canonical_notes > 50


def test_lacrimosa_prompt_is_eight_bars_of_twelve_eight(codec):
    (prompt,) = load_pieces(LACRIMOSA_PROMPT, codec)
    assert [(ts.numerator, ts.denominator) for ts in prompt.time_signatures] == [(12, 8)]
    assert prompt.composer == "mozart"
    assert prompt.bar_lines()[-1] == 8 * 72 and prompt.notes.end.max() == 8 * 72
    assert prompt.notes.as_tuples()[:3] == [(62, 0, 9), (65, 0, 9), (73, 6, 12)]  # D4 F4 in the strings, then C#5


@pytest.mark.skipif(not LACRIMOSA_REFERENCE.exists(), reason=f"{LACRIMOSA_REFERENCE} is not on this machine")
def test_lacrimosa_prompt_matches_mozarts_bars_note_for_note(codec):
    (prompt,) = load_pieces(LACRIMOSA_PROMPT, codec)
    (orchestral,) = load_pieces(LACRIMOSA_REFERENCE, codec)
    assert prompt.notes.as_tuples() == orchestral.first_bars(8).notes.as_tuples()


@pytest.mark.parametrize("name", sorted(READABLE_MIDI_FIXTURES))
def test_fixture_files_round_trip_losslessly(name, tmp_path, codec):
    path = READABLE_MIDI_FIXTURES[name](tmp_path / f"{name}.mid")
    report = roundtrip_source(path, codec)
    assert report.lossless and report.canonical_notes > 0
    (piece,) = load_pieces(path, codec)
    assert codec.decode(codec.encode(piece.notes)).notes.as_tuples() == piece.notes.as_tuples()


def test_fixture_metre_changes_survive_the_round_trip(tmp_path, codec):
    path = READABLE_MIDI_FIXTURES["metre-and-tempo-changes"](tmp_path / "changes.mid")
    (piece,) = load_pieces(path, codec)
    assert [(ts.numerator, ts.denominator) for ts in piece.time_signatures] == [(3, 4), (6, 8)]
    assert [round(t.qpm) for t in piece.tempos] == [96, 80, 66]


@pytest.mark.parametrize("name", sorted(BROKEN_MIDI_FIXTURES))
def test_broken_fixture_files_get_one_clear_error(name, tmp_path, codec):
    writer, message = BROKEN_MIDI_FIXTURES[name]
    path = writer(tmp_path / f"{name}.mid")
    with pytest.raises(MaiaInputError, match=message) as info:
        load_pieces(path, codec)
    assert str(path) in str(info.value)
