"""The notewise codec: the rules of docs/encoding.md, one test each, and property tests."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maia_hf.codec import NotewiseCodec, quantize_ticks
from maia_hf.errors import MaiaTokenError
from maia_hf.notes import NoteArray, Piece, TimeSignature


def notes(*rows):
    """NoteArray from (pitch, start, end) rows in steps."""
    pitch, start, end = zip(*rows, strict=True) if rows else ((), (), ())
    return NoteArray.from_lists(list(pitch), list(start), list(end))


class TestVocabulary:
    def test_default_vocabulary_layout(self, codec):
        words = codec.vocabulary()
        assert words[0] == "p21" and words[87] == "p108"
        assert words[88] == "endp21" and words[175] == "endp108"
        assert words[176] == "wait1" and words[-1] == "wait48"
        assert len(words) == 88 + 88 + 48

    def test_velocity_words_only_when_configured(self):
        assert not any(w.startswith("v") for w in NotewiseCodec().vocabulary())
        assert NotewiseCodec(velocity_bins=4).vocabulary()[-4:] == ["v0", "v1", "v2", "v3"]

    def test_unknown_word_names_word_and_position(self, codec):
        with pytest.raises(MaiaTokenError, match=r"'p200' at position 2 of song.txt.*p21\.\.p108"):
            codec.words_to_indices("p60 wait4 p200 endp60", source="song.txt")


class TestQuantization:
    def test_nearest_step_with_halves_rounding_up(self):
        # 480 ticks per quarter: one step is 40 ticks; 20 ticks is exactly half a step.
        assert quantize_ticks(np.array([0, 19, 20, 39, 60, 480]), 480).tolist() == [0, 0, 1, 1, 2, 12]

    def test_zero_length_note_keeps_one_step(self, codec):
        raw = NoteArray.from_lists([60], [480], [485])  # 5 ticks: snaps to zero length
        canonical, report = codec.canonicalize(raw, ticks_per_quarter=480)
        assert canonical.as_tuples() == [(60, 12, 13)]
        assert report.lengthened == 1 and report.off_grid == 1


class TestWordOrder:
    def test_offs_before_ons_each_ascending(self, codec):
        text = codec.encode_text(notes((64, 0, 12), (60, 0, 12), (67, 12, 24), (62, 12, 24)))
        assert text == "p60 p64 wait12 endp60 endp64 p62 p67 wait12 endp62 endp67"

    def test_long_rest_is_several_waits(self, codec):
        assert (
            codec.encode_text(notes((60, 0, 1), (62, 101, 102)))
            == "p60 wait1 endp60 wait48 wait48 wait4 p62 wait1 endp62"
        )

    def test_leading_silence_is_kept(self, codec):
        assert codec.encode_text(notes((60, 6, 12))) == "wait6 p60 wait6 endp60"

    def test_empty_notes_encode_to_nothing(self, codec):
        assert codec.encode_text(NoteArray.empty()) == ""


class TestMergeRules:
    def test_unison_doubling_becomes_one_note_with_later_offset(self, codec):
        canonical, report = codec.canonicalize(notes((60, 0, 12), (60, 0, 24)))
        assert canonical.as_tuples() == [(60, 0, 24)]
        assert report.merged_duplicates == 1

    def test_restrike_ends_the_sounding_note(self, codec):
        canonical, report = codec.canonicalize(notes((60, 0, 24), (60, 12, 36)))
        assert canonical.as_tuples() == [(60, 0, 12), (60, 12, 36)]
        assert report.cut_by_restrike == 1
        assert codec.encode_text(canonical) == "p60 wait12 endp60 p60 wait24 endp60"

    @pytest.mark.parametrize(
        ("pitch", "folded"), [(10, 22), (20, 32), (21, 21), (108, 108), (109, 97), (127, 103)], ids=str
    )
    def test_pitches_outside_the_piano_fold_by_octaves(self, codec, pitch, folded):
        canonical, report = codec.canonicalize(notes((pitch, 0, 12)))
        assert canonical.pitch.tolist() == [folded]
        assert report.folded == (pitch != folded)

    def test_transposition_folds_then_merges(self, codec):
        # 106 + 5 = 111 folds to 99, which collides with 94 + 5 = 99 at the same onset.
        canonical, report = codec.canonicalize(notes((106, 0, 12), (94, 0, 24)), transpose=5)
        assert canonical.as_tuples() == [(99, 0, 24)]
        assert report.folded == 1 and report.merged_duplicates == 1


class TestDecodeRepairs:
    def test_endp_of_silent_note_is_ignored_and_counted(self, codec):
        result = codec.decode_text("endp60 p62 wait4 endp62 endp62")
        assert result.notes.as_tuples() == [(62, 0, 4)]
        assert result.ignored_note_offs == 2

    def test_notes_sounding_at_the_end_are_closed(self, codec):
        result = codec.decode_text("p60 wait4 p64 wait2")
        assert result.notes.as_tuples() == [(60, 0, 6), (64, 4, 6)]
        assert result.closed_at_end == 2

    def test_strike_of_sounding_pitch_restrikes(self, codec):
        result = codec.decode_text("p60 wait4 p60 wait4 endp60")
        assert result.notes.as_tuples() == [(60, 0, 4), (60, 4, 8)]
        assert result.restruck == 1

    def test_note_closed_in_its_own_step_lasts_one_step(self, codec):
        assert codec.decode_text("p60 endp60 wait3").notes.as_tuples() == [(60, 0, 1)]

    def test_out_of_vocabulary_indices_are_skipped(self, codec):
        ids = np.array([-4, 999, codec.vocabulary().index("p60"), codec.vocabulary().index("wait2")])
        assert codec.decode(ids).notes.as_tuples() == [(60, 0, 2)]


class TestVelocity:
    def test_velocity_word_written_only_when_the_bin_changes(self):
        codec = NotewiseCodec(velocity_bins=4)
        raw = NoteArray.from_lists([60, 64, 67], [0, 0, 12], [12, 12, 24], [100, 100, 20])
        assert codec.encode_text(raw) == "v3 p60 p64 wait12 endp60 endp64 v0 p67 wait12 endp67"

    def test_decoded_velocity_is_the_middle_of_its_bin(self):
        codec = NotewiseCodec(velocity_bins=4)
        decoded = codec.decode_text("v3 p60 wait1 endp60 p61 wait1 endp61").notes
        assert decoded.velocity.tolist() == [codec.bin_to_velocity(np.array([3]))[0]] * 2
        assert codec.velocity_to_bin(decoded.velocity).tolist() == [3, 3]

    def test_default_velocity_without_dynamics(self, codec):
        assert codec.decode_text("p60 wait1 endp60").notes.velocity.tolist() == [80]


class TestBars:
    def test_bar_lines_follow_time_signature_changes(self):
        # Two bars of 3/4 (36 steps each), then 12/8 (72 steps).
        piece = Piece(notes((60, 0, 400)), time_signatures=[TimeSignature(0, 3, 4), TimeSignature(72, 12, 8)])
        assert piece.bar_lines(until=216) == [0, 36, 72, 144, 216]

    def test_first_bars_cuts_at_the_bar_line(self):
        piece = Piece(notes((60, 0, 30), (62, 30, 60), (64, 72, 80)), time_signatures=[TimeSignature(0, 4, 4)])
        clipped = piece.first_bars(1)
        assert clipped.notes.as_tuples() == [(60, 0, 30), (62, 30, 48)]


# ---- properties ---------------------------------------------------------------------------

note_rows = st.lists(
    st.tuples(st.integers(0, 127), st.integers(0, 400), st.integers(-3, 60), st.integers(1, 127)), max_size=60
)


@settings(max_examples=200, deadline=None)
@given(rows=note_rows, velocity_bins=st.sampled_from([0, 8]), max_wait=st.sampled_from([5, 48]))
def test_random_scores_round_trip(rows, velocity_bins, max_wait):
    codec = NotewiseCodec(velocity_bins=velocity_bins, max_wait=max_wait)
    raw = NoteArray.from_lists(
        [r[0] for r in rows], [r[1] for r in rows], [r[1] + r[2] for r in rows], [r[3] for r in rows]
    )
    canonical, _ = codec.canonicalize(raw)
    ids = codec.encode(canonical, canonical=True)
    decoded = codec.decode(ids)
    assert decoded.notes.as_tuples() == canonical.as_tuples()
    assert decoded.ignored_note_offs == decoded.closed_at_end == decoded.restruck == 0
    if velocity_bins:
        assert (
            codec.velocity_to_bin(decoded.notes.velocity).tolist() == codec.velocity_to_bin(canonical.velocity).tolist()
        )
    assert np.array_equal(codec.encode(decoded.notes), ids)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-5, 240), max_size=200), st.sampled_from([0, 4]))
def test_random_word_sequences_decode_to_valid_notes(indices, velocity_bins):
    codec = NotewiseCodec(velocity_bins=velocity_bins)
    result = codec.decode(np.array(indices, dtype=np.int64))
    n = result.notes
    assert np.all(n.end > n.start)
    assert np.all((n.pitch >= 21) & (n.pitch <= 108))
    assert np.all(n.start >= 0) and np.all(n.end <= max(result.total_steps, 0) + 1)
    # Whatever came out is well formed: it re-encodes and decodes to itself.
    canonical, _ = codec.canonicalize(n)
    assert codec.decode(codec.encode(canonical, canonical=True)).notes.as_tuples() == canonical.as_tuples()
