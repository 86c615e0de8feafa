"""Evaluation: statistics and overlap (hand-computed), memorisation, the discriminator, likelihood, and the
whole ``maia evaluate`` report for two tiny random models on a tiny corpus."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import TINY_GPT, make_midi

from maia_hf.cli import main
from maia_hf.codec import NoteArray, NotewiseCodec
from maia_hf.discriminator import discriminator_accuracy, fit_logistic_regression
from maia_hf.memorisation import copied_spans, longest_matches, memorisation_report
from maia_hf.music_statistics import (
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


# ---- statistics, by hand ---------------------------------------------------------------------

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


# ---- memorisation ----------------------------------------------------------------------------------


def brute_longest(query: np.ndarray, corpus: list[np.ndarray]) -> list[int]:
    out = []
    for i in range(len(query)):
        length = 0
        while i + length < len(query) and any(
            any(c[j : j + length + 1].tolist() == query[i : i + length + 1].tolist() for j in range(len(c)))
            for c in corpus
        ):
            length += 1
        out.append(length)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_longest_matches_agree_with_brute_force(seed):
    rng = np.random.default_rng(seed)
    corpus = [rng.integers(0, 3, int(rng.integers(1, 50))) for _ in range(3)]
    # Long verbatim copies (past the hash grid's steps) and random stretches.
    queries = [np.concatenate([corpus[0], rng.integers(0, 3, 4), corpus[1][::-1]]), rng.integers(0, 3, 30)]
    for query, found in zip(queries, longest_matches(queries, corpus), strict=True):
        assert found.tolist() == brute_longest(query, corpus)


def test_copied_span_is_measured_between_note_words(codec):
    words = codec.words_to_indices("p60 wait24 endp60 p62 wait24 endp62 wait48 p64 wait12 endp64")
    copy = copied_spans(words, np.array([6, 5, 4, 3, 2, 1, 0, 0, 0, 0]), codec)
    assert (copy.longest_ngram, copy.longest_span_steps, copy.span_start) == (6, 48, 0)
    assert copy.copies_bars(1) and not copy.copies_bars(2)


def test_memorisation_finds_a_transposed_copy(codec: NotewiseCodec):
    rng = np.random.default_rng(0)
    starts = np.arange(0, 4 * 48, 12)  # four bars of quarter notes
    training = notes(
        *[(int(p), int(s), int(s) + 12) for p, s in zip(rng.integers(55, 80, len(starts)), starts, strict=True)]
    )
    corpus = [codec.encode(training)]
    copy = codec.encode(training, transpose=3)
    other = codec.encode(
        notes(*[(int(p), int(s), int(s) + 6) for p, s in zip(rng.integers(40, 90, 16), starts, strict=True)])
    )
    copied, fresh = memorisation_report([copy, other], corpus, codec)
    assert copied.longest_ngram == len(copy) and copied.copies_bars(2)
    assert copied.longest_span_steps == 4 * 48
    assert fresh.longest_ngram < 6 and not fresh.copies_bars(2)
    # Compared in its own key only, the transposed copy shares only short chance n-grams.
    (own_key,) = memorisation_report([copy], corpus, codec, keys=[0])
    assert own_key.longest_ngram < 10 and not own_key.copies_bars(1)


# ---- discriminator ---------------------------------------------------------------------------------


def test_logistic_regression_reaches_its_optimum():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (30, 80))  # more features than samples, as in the test
    y = (x[:, 0] + 0.5 * rng.normal(size=30) > 0).astype(float)
    w = fit_logistic_regression(x, y, l2=1.0)
    xb = np.hstack([x, np.ones((30, 1))])
    p = 1 / (1 + np.exp(-xb @ w))
    assert np.abs(xb.T @ (p - y) + w).max() < 1e-6  # the gradient of the regularised loss vanishes


def test_discriminator_accuracy():
    rng = np.random.default_rng(1)
    apart = discriminator_accuracy(rng.normal(0, 1, (20, 4)), rng.normal(4, 1, (20, 4)))
    assert apart["accuracy"] == 1.0 and apart["folds"] == 5 and apart["stderr"] == 0.0
    same = [discriminator_accuracy(rng.normal(0, 1, (30, 4)), rng.normal(0, 1, (30, 4)), seed=s) for s in range(5)]
    assert 0.3 < np.mean([r["accuracy"] for r in same]) < 0.7
    assert math.isnan(discriminator_accuracy(np.zeros((1, 3)), np.ones((5, 3)))["accuracy"])
    with_gaps = discriminator_accuracy(np.full((6, 2), np.nan), rng.normal(3, 1, (6, 2)))
    assert 0 <= with_gaps["accuracy"] <= 1  # missing values are filled, not propagated


def test_well_formedness_rates():
    from maia_hf.evaluation import well_formedness

    totals = dict(tokens=2000, ignored_note_offs=4, closed_at_end=2, restruck=1, skipped_specials=3)
    w = well_formedness({**totals, "pieces_with_repairs": 2}, pieces=4)
    assert w["repairs_per_1000_tokens"] == 5.0 and w["ignored_note_offs_per_1000_tokens"] == 2.0
    assert w["skipped_specials_per_1000_tokens"] == 1.5 and w["share_of_pieces_with_repairs"] == 0.5


# ---- the corpus, the models, the report -----------------------------------------------------------


def piece_notes(seed: int, n_notes: int = 50) -> list[tuple[int, int, int, int]]:
    """A made-up 4/4 piece (pitch, start tick, duration, velocity) at 480 ticks a quarter."""
    rng = np.random.default_rng(seed)
    starts = np.cumsum(rng.integers(1, 4, n_notes) * 240)
    return [
        (int(p), int(s), int(d), 80)
        for p, s, d in zip(rng.integers(55, 80, n_notes), starts, [480] * n_notes, strict=True)
    ]


def build(tmp: Path, name: str, seq_len: int) -> Path:
    """A corpus of 12 made-up pieces; their bytes put 7 in train, 1 in validation and 4 in test."""
    from datasets import load_from_disk

    from maia_hf.data import build_dataset

    midis = tmp / "midis" / "mozart"
    midis.mkdir(parents=True, exist_ok=True)
    for i in range(12):
        make_midi(midis / f"piece{i}.mid", [(piece_notes(i), False)], time_signature=(4, 4))
    out = tmp / name
    build_dataset(
        [midis.parent], out, seq_len=seq_len, transpositions="0,1", validation_fraction=0.25, test_fraction=0.25,
        cache_dir=tmp / "cache", progress=False,
    )  # fmt: skip
    pieces = {split: len(set(rows["piece_id"])) for split, rows in load_from_disk(str(out)).items()}
    assert pieces == {"train": 7, "validation": 1, "test": 4}, f"the split by content hash changed: {pieces}"
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny GPT-2 and a tiny LSTM with random weights, saved with the default tokenizer."""
    from maia_hf import MaiaConfig, MaiaForCausalLM, MaiaLstmConfig, MaiaLstmForCausalLM, MaiaTokenizer

    tmp = tmp_path_factory.mktemp("models")
    tokenizer = MaiaTokenizer()
    torch.manual_seed(0)
    gpt = MaiaForCausalLM(MaiaConfig(vocab_size=len(tokenizer), **{**TINY_GPT, "n_positions": 48}))
    lstm = MaiaLstmForCausalLM(MaiaLstmConfig(vocab_size=len(tokenizer), hidden_size=16))
    for name, model in (("tiny-gpt", gpt), ("tiny-lstm", lstm)):
        model.save_pretrained(tmp / name)
        tokenizer.save_pretrained(tmp / name)
    return tmp / "tiny-gpt", tmp / "tiny-lstm"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("corpus"), "corpus", seq_len=64)


def test_read_sequences_stitches_windows_back(corpus, tokenizer):
    from datasets import load_from_disk

    from maia_hf.evaluation_corpus import read_sequences

    train = load_from_disk(str(corpus))["train"]
    sequences = read_sequences(train)
    assert {k for k in sequences} == set(zip(train["piece_id"], train["transpose"], strict=True))
    for (piece_id, key), (composer, ids) in sequences.items():
        windows = [r for r in train if r["piece_id"] == piece_id and r["transpose"] == key]
        assert composer == "mozart" and len(ids) == windows[0]["n_tokens"]
        for row in windows:  # every window is the sequence at its start
            assert ids[row["window_start"] : row["window_start"] + len(row["input_ids"])].tolist() == row["input_ids"]


def test_the_evaluation_corpus(corpus, tokenizer):
    from datasets import load_from_disk

    from maia_hf import MaiaTokenizer
    from maia_hf.errors import MaiaInputError
    from maia_hf.evaluation_corpus import load_evaluation_corpus

    c = load_evaluation_corpus(corpus, tokenizer, pieces=6, bars=2, max_reference_words=1, seed=0)
    assert len(c.references) == 1  # the word budget is spent by the first sequence
    assert len(c.memory) == 7  # every training piece once, in its original key
    assert (c.held_out_split, c.nll_split_name) == ("test", "validation")
    test_pieces = set(load_from_disk(str(corpus))["test"]["piece_id"])
    assert len(c.excerpts) == 6 and {s.name.split()[0] for s in c.excerpts} == test_pieces  # each piece first
    for s in c.excerpts:
        assert s.length == 96 and s.notes.start.min() >= 0 and s.notes.end.max() <= 96
        assert tokenizer.codec.decode(s.words).notes.as_tuples() == s.notes.as_tuples()
    everything = load_evaluation_corpus(corpus, tokenizer, pieces=1, bars=2)
    assert len(everything.references) == 14  # 7 pieces in 2 keys
    with pytest.raises(MaiaInputError, match="another vocabulary"):
        load_evaluation_corpus(corpus, MaiaTokenizer(composers=["bach"]), pieces=1, bars=2)


@pytest.mark.parametrize("model_index", [0, 1], ids=["gpt-48-positions", "lstm"])
def test_validation_nll_scores_every_token_once(corpus, models, model_index):
    from datasets import load_from_disk

    from maia_hf.compose import load_model
    from maia_hf.evaluation import validation_nll
    from maia_hf.evaluation_corpus import read_sequences

    model, tokenizer = load_model(models[model_index])
    validation = load_from_disk(str(corpus))["validation"]
    nll = validation_nll(model, tokenizer, validation, max_windows=0, batch_size=4)
    sequences = read_sequences(validation)
    assert len(validation) > 2 and nll["windows"] == len(validation)
    assert nll["tokens"] == sum(len(ids) - 1 for _, ids in sequences.values())  # windows of 64, GPT of 48
    on = tokenizer.codec_offset + np.arange(tokenizer.codec.n_pitches)
    assert nll["notes"] == sum(int(np.isin(ids[1:], on).sum()) for _, ids in sequences.values())
    assert nll["nats_per_token"] == pytest.approx(math.log(len(tokenizer)), abs=0.3)  # random weights
    assert nll["bits_per_token"] == pytest.approx(nll["nats_per_token"] / math.log(2))
    assert nll["bits_per_note"] == pytest.approx(nll["bits_per_token"] * nll["tokens"] / nll["notes"])


def test_validation_nll_equals_the_models_loss_on_whole_sequences(tmp_path, models):
    from datasets import load_from_disk

    from maia_hf.compose import load_model
    from maia_hf.evaluation import validation_nll
    from maia_hf.evaluation_corpus import read_sequences

    one_window = build(tmp_path, "long-windows", seq_len=1024)  # every sequence fits one window
    model, tokenizer = load_model(models[1])
    validation = load_from_disk(str(one_window))["validation"]
    nll = validation_nll(model, tokenizer, validation, max_windows=0)
    assert len(validation) == 1  # one piece, one window
    total, count = 0.0, 0
    for _, ids in read_sequences(validation).values():
        x = torch.from_numpy(ids)[None]
        with torch.no_grad():
            loss = model(input_ids=x, labels=x).loss
        total, count = total + float(loss) * (len(ids) - 1), count + len(ids) - 1
    assert nll["tokens"] == count
    assert nll["nats_per_token"] == pytest.approx(total / count, rel=1e-5)


@pytest.fixture(scope="module")
def report_dir(corpus, models, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("evaluation") / "report"
    argv = ["evaluate", "--model", str(models[0]), "--model", str(models[1]), "--data", str(corpus)]
    argv += ["--out", str(out), "--pieces", "3", "--bars", "2", "--tokens-per-bar", "40", "--nll-windows", "8"]
    assert main([*argv, "--quiet"]) == 0
    return out


def test_the_report_files(report_dir):
    import matplotlib.image

    names = {p.relative_to(report_dir).as_posix() for p in report_dir.rglob("*") if p.is_file()}
    assert names == {
        "report.md", "report.json", "ngram_strip.png", "statistics.png",
        "samples/real.txt", "samples/tiny-gpt.txt", "samples/tiny-lstm.txt",
    }  # fmt: skip
    for png in ("ngram_strip.png", "statistics.png"):
        assert matplotlib.image.imread(report_dir / png).shape[0] > 300
    markdown = (report_dir / "report.md").read_text()
    for heading in ("Likelihood", "BLEU", "Musical statistics", "Memorisation", "Well-formedness", "Discriminator"):
        assert f"## {heading}" in markdown
    assert "![cumulated n-gram strip plot](ngram_strip.png)" in markdown and "tiny-lstm" in markdown
    assert (report_dir / "samples" / "tiny-gpt.txt").read_text().count("# name:") == 3


def test_the_reports_numbers_are_sane(report_dir, tokenizer):
    report = json.loads((report_dir / "report.json").read_text())
    real = report["real"]
    assert report["data"]["real_excerpts"] == 3 and report["data"]["held_out_split"] == "test"
    assert report["data"]["train_pieces"] == 7 and report["data"]["reference_sequences"] == 14  # 2 keys each
    assert set(report["models"]) == {"tiny-gpt", "tiny-lstm"}
    for name, m in report["models"].items():
        nll = m["nll"]
        assert nll["tokens"] > 100
        assert nll["nats_per_token"] == pytest.approx(math.log(len(tokenizer)), abs=0.3), name  # random weights
        assert nll["bits_per_note"] > nll["bits_per_token"] > 0
        # Random weights write few of the corpus's n-grams; real music from the same hand writes many.
        assert 0 <= m["bleu"]["bleu"] <= real["bleu"]["bleu"] <= 1
        assert m["bleu"]["precision_1"] < real["bleu"]["precision_1"]
        assert len(m["cumulative_bleu"]["5"]) == 3
        for stat in ("pitch_range", "polyphony", "pitch_class_entropy"):
            assert m["statistics"][stat]["mean"] > 0
            assert m["overlap"][stat]["overlap"] is None or 0 <= m["overlap"][stat]["overlap"] <= 1
        assert m["statistics"]["pitch_class_entropy"]["mean"] <= math.log2(12)
        memorisation = m["memorisation"]
        assert 0 <= memorisation["share_copying"] <= 1 and len(memorisation["per_piece"]) == 3
        loose = m["well_formedness"]
        assert loose["pieces"] == 3 and loose["tokens"] > 0
        assert loose["repairs_per_1000_tokens"] > 0  # random weights without constraints: ill-formed
        kinds = ("ignored_note_offs", "closed_at_end", "restruck", "skipped_specials")
        assert loose["repairs_per_1000_tokens"] == pytest.approx(1000 * sum(loose[k] for k in kinds) / loose["tokens"])
        assert 0 < m["generation"]["intervention_rate"] <= 1  # ... so the constraints step in
        d = m["discriminator"]
        assert (d["real"], d["generated"], d["folds"]) == (3, 3, 3) and 0 <= d["accuracy"] <= 1
    assert real["memorisation"]["longest_ngram_max"] >= 1
    assert real["statistics"]["scale_consistency"]["mean"] > 0.5


def test_evaluate_names_a_missing_model(tmp_path, corpus, capsys):
    assert main(["evaluate", "--model", str(tmp_path / "nope"), "--data", str(corpus), "--out", str(tmp_path)]) == 2
    assert "nope" in capsys.readouterr().err
