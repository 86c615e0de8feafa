"""Musical statistics checked by hand, and the overlap of distributions against known densities."""

from __future__ import annotations

import math

import numpy as np
import pytest

from maia_hf.codec import NoteArray
from maia_hf.evaluation.statistics import (
    distribution_overlap,
    empty_beat_rate,
    groove_consistency,
    interval_histogram,
    kl_divergence,
    note_length_histogram,
    overlap_area,
    piece_statistics,
    pitch_class_entropy,
    pitch_range,
    polyphony,
    scale_consistency,
)


def notes(*triples) -> NoteArray:
    """Notes from (pitch, start, end) triples in steps."""
    pitch, start, end = zip(*triples, strict=True) if triples else ((), (), ())
    return NoteArray.from_lists(list(pitch), list(start), list(end))


C_MAJOR_CHORD_THEN_D = notes((60, 0, 24), (64, 0, 24), (67, 0, 12), (62, 24, 36))


def test_pitch_range_and_pitch_classes():
    assert pitch_range(C_MAJOR_CHORD_THEN_D) == 7.0
    # C, E, G, D once each: four equally likely pitch classes, 2 bits.
    assert pitch_class_entropy(C_MAJOR_CHORD_THEN_D) == pytest.approx(2.0)
    assert pitch_class_entropy(notes((60, 0, 1), (72, 1, 2))) == 0.0  # one pitch class
    chromatic = notes(*[(60 + i, i, i + 1) for i in range(12)])
    assert pitch_class_entropy(chromatic) == pytest.approx(math.log2(12))


def test_scale_consistency():
    assert scale_consistency(C_MAJOR_CHORD_THEN_D) == 1.0
    # The C major scale and an F#: 7 of the 8 notes fit C major (or G major), no scale holds all 8.
    c_major_and_f_sharp = notes(*[(p, i, i + 1) for i, p in enumerate([60, 62, 64, 65, 67, 69, 71, 66])])
    assert scale_consistency(c_major_and_f_sharp) == pytest.approx(7 / 8)
    chromatic = notes(*[(60 + i, i, i + 1) for i in range(12)])
    assert scale_consistency(chromatic) == pytest.approx(7 / 12)


def test_polyphony_counts_only_sounding_steps():
    # Steps 0-11: three notes; 12-23: two; 24-35: one; a rest 36-47 does not count.
    assert polyphony(C_MAJOR_CHORD_THEN_D) == pytest.approx((12 * 3 + 12 * 2 + 12 * 1) / 36)
    assert polyphony(notes((60, 0, 12), (62, 24, 36))) == 1.0


def test_empty_beat_rate():
    # Beats of 12 steps up to step 96: notes sound in beats 0, 1 and 5 (a note ending on a beat line leaves it).
    piece = notes((60, 0, 24), (62, 60, 72))
    assert empty_beat_rate(piece, length=96) == pytest.approx(5 / 8)
    assert empty_beat_rate(piece) == pytest.approx(3 / 6)  # up to the last offset
    assert empty_beat_rate(notes((60, 5, 7)), length=12) == 0.0  # a short note fills its beat
    assert math.isnan(empty_beat_rate(notes()))


def test_groove_consistency():
    same_rhythm = notes(*[(60 + b, 48 * b + s, 48 * b + s + 6) for b in range(3) for s in (0, 12, 18)])
    assert groove_consistency(same_rhythm) == 1.0
    # Three bars: bar 2 adds an onset at step 6, bar 3 has bar 1's rhythm: 2 differing steps over 2 x 48.
    changed = notes((60, 0, 6), (62, 48, 54), (64, 54, 60), (65, 96, 102))
    assert groove_consistency(changed, length=144) == pytest.approx(1 - 2 / 96)
    assert math.isnan(groove_consistency(notes((60, 0, 12))))  # one bar: undefined


def test_histograms():
    lengths = note_length_histogram(notes((60, 0, 3), (62, 3, 6), (64, 6, 12), (65, 12, 24), (67, 24, 48)))
    # 16ths (3) twice, an 8th (6), a quarter (12), a half (24).
    assert lengths.tolist() == [0, 0.4, 0, 0.2, 0, 0.2, 0, 0.2, 0, 0, 0]
    # Top line: the chord's G (67), then D (62), then a leap of 19 up to A (81), counted in the +12 bin.
    intervals = interval_histogram(notes((60, 0, 12), (67, 0, 12), (62, 12, 24), (81, 24, 36)))
    assert {i - 12: share for i, share in enumerate(intervals.tolist()) if share} == {-5: 0.5, 12: 0.5}
    # A C held over a moving bass stays the top line: the bass's notes are not melody.
    held = interval_histogram(notes((72, 0, 24), (48, 0, 6), (43, 6, 12), (50, 12, 24), (74, 24, 36)))
    assert {i - 12: share for i, share in enumerate(held.tolist()) if share} == {2: 1.0}
    assert interval_histogram(notes((60, 0, 12))).sum() == 0


def test_piece_statistics_of_nothing_are_undefined():
    stats = piece_statistics(notes(), length=96)
    assert math.isnan(stats["pitch_range"]) and math.isnan(stats["polyphony"])
    assert stats["empty_beat_rate"] == 1.0  # eight silent beats


# ---- overlap of distributions ------------------------------------------------------------------


def test_overlap_area_of_known_densities():
    # One sample each and a unit kernel: two unit normals d apart overlap by 2 * Phi(-d/2) = erfc(d / 2^1.5).
    for d in (0.5, 2.0, 4.0):
        assert overlap_area([0.0], [d], bandwidth=1.0) == pytest.approx(math.erfc(d / 2**1.5), abs=1e-4)
    assert overlap_area([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == pytest.approx(1.0)
    assert overlap_area([0.0, 0.1, 0.2], [10.0, 10.1, 10.2]) < 1e-6
    assert overlap_area([5.0, 5.0], [5.0]) == 1.0  # identical constants
    assert math.isnan(overlap_area([], [1.0]))


def test_kl_divergence_of_known_densities():
    # KL between unit normals d apart is d^2 / 2.
    assert kl_divergence([0.0], [2.0], bandwidth=1.0) == pytest.approx(2.0, abs=1e-3)
    assert kl_divergence([1.0, 2.0, 4.0], [1.0, 2.0, 4.0]) == pytest.approx(0.0, abs=1e-9)


def test_distribution_overlap_is_high_for_the_same_music_and_low_for_other_music():
    rng = np.random.default_rng(0)
    real = rng.normal(0, 1, 30)
    assert distribution_overlap(real, rng.normal(0, 1, 30))["overlap"] > 0.8
    assert distribution_overlap(real, rng.normal(20, 1, 30))["overlap"] < 0.01
    histograms = rng.dirichlet(np.ones(5), 30)
    assert distribution_overlap(histograms, rng.dirichlet(np.ones(5), 30))["overlap"] > 0.8
    assert distribution_overlap(histograms, np.tile(np.eye(5)[0], (30, 1)))["overlap"] < 0.5
    assert math.isnan(distribution_overlap([1.0], [2.0])["overlap"])  # one real piece: no intra-set distance
