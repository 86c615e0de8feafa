"""maia's BLEU (`maia_hf.metrics`): hand-computed values, the pure function, and the `evaluate` module offline."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from helpers import REPO, run_python

from maia_hf.metrics import (
    MAIA_BLEU_PATH,
    MAIA_BLEU_WEIGHTS,
    count_matches,
    count_matches_per_prediction,
    cumulative_bleu,
    notewise_bleu,
)

SCALE = "p60 wait6 endp60 p62 wait6 endp62 p64 wait6 endp64"
CHANGED = "p60 wait6 endp60 p62 wait6 endp62 p67 wait6 endp67"  # the last note differs


def weighted(precisions, weights=MAIA_BLEU_WEIGHTS) -> float:
    return math.exp(sum(w * math.log(p) for w, p in zip(weights, precisions, strict=True)))


# ---- hand-computed values ----------------------------------------------------------------


def test_weights_are_fixed_and_skip_long_ngrams():
    assert MAIA_BLEU_WEIGHTS == (0.05, 0.05, 0.1, 0.4, 0.4)
    assert sum(MAIA_BLEU_WEIGHTS[:3]) == pytest.approx(0.2) and sum(MAIA_BLEU_WEIGHTS) == pytest.approx(1.0)


def test_a_prediction_inside_a_reference_scores_one():
    result = notewise_bleu([SCALE], [f"p57 wait6 endp57 {SCALE} p65 wait6 endp65"])
    assert result["bleu"] == 1.0
    assert [result[f"precision_{n}"] for n in range(1, 6)] == [1.0] * 5


def test_changing_the_last_note():
    # 9 words: 7 of them, 5 of 8 bigrams, 4 of 7 trigrams, 3 of 6 4-grams, 2 of 5 5-grams occur in SCALE.
    result = notewise_bleu([CHANGED], [SCALE])
    expected = [7 / 9, 5 / 8, 4 / 7, 3 / 6, 2 / 5]
    assert [result[f"precision_{n}"] for n in range(1, 6)] == pytest.approx(expected)
    assert result["bleu"] == pytest.approx(weighted(expected))
    assert result["bleu"] == pytest.approx(0.47912, abs=1e-5)


def test_counts_are_clipped_by_the_one_reference_where_an_ngram_is_commonest():
    # "a" occurs once in each reference: three "a" in the prediction match once, not twice.
    m = count_matches(["a a a"], ["a b", "a c"], max_order=1)
    assert m.matches.tolist() == [[1]] and m.totals.tolist() == [[3]]
    m = count_matches(["a a a"], ["a b", "a a c"], max_order=1)
    assert m.matches.tolist() == [[2]]


def test_a_missing_order_zeroes_the_score_unless_smoothed():
    prediction, reference = "p60 wait6 endp60 p64 wait6 endp64", "p60 wait6 endp60"
    plain = notewise_bleu([prediction], [reference])
    assert [plain[f"precision_{n}"] for n in range(1, 6)] == pytest.approx([3 / 6, 2 / 5, 1 / 4, 0, 0])
    assert plain["bleu"] == 0.0
    smoothed = notewise_bleu([prediction], [reference], smooth=True)
    assert smoothed["bleu"] == pytest.approx(weighted([4 / 7, 3 / 6, 2 / 5, 1 / 4, 1 / 3]))


def test_corpus_bleu_sums_matches_over_predictions():
    result = notewise_bleu([SCALE, CHANGED], [SCALE])
    expected = [(9 + 7) / 18, (8 + 5) / 16, (7 + 4) / 14, (6 + 3) / 12, (5 + 2) / 10]
    assert [result[f"precision_{n}"] for n in range(1, 6)] == pytest.approx(expected)
    assert result["bleu"] == pytest.approx(weighted(expected))


def test_brevity_penalty_is_reported_and_off_by_default():
    short = "p60 wait6 endp60 p62 wait6 endp62"  # 6 words; the closest reference has 9
    off = notewise_bleu([short], [SCALE, SCALE + " p65 wait6 endp65"])
    on = notewise_bleu([short], [SCALE, SCALE + " p65 wait6 endp65"], brevity_penalty=True)
    assert (off["prediction_length"], off["reference_length"]) == (6, 9)
    assert off["length_ratio"] == pytest.approx(6 / 9)
    assert off["brevity_penalty"] == 1.0 and off["bleu"] == 1.0
    assert on["brevity_penalty"] == pytest.approx(math.exp(1 - 9 / 6))
    assert on["bleu"] == pytest.approx(math.exp(1 - 9 / 6))


def test_cumulative_bleu_per_piece():
    m = count_matches([SCALE, CHANGED], [SCALE])
    assert cumulative_bleu(m, 2).tolist() == pytest.approx([1.0, math.sqrt(7 / 9 * 5 / 8)])
    assert cumulative_bleu(m, 5)[1] == pytest.approx((7 / 9 * 5 / 8 * 4 / 7 * 3 / 6 * 2 / 5) ** (1 / 5))


# ---- inputs ----------------------------------------------------------------------------------


def test_special_tokens_are_dropped_and_ids_work_like_words(tokenizer):
    with_specials = notewise_bleu([f"<start> <composer:mozart> {CHANGED} <end>"], [SCALE])
    assert with_specials == notewise_bleu([CHANGED], [SCALE])
    as_ids = notewise_bleu(
        [np.array(tokenizer.convert_tokens_to_ids(CHANGED.split()))], [tokenizer.convert_tokens_to_ids(SCALE.split())]
    )
    assert as_ids == notewise_bleu([CHANGED], [SCALE])
    with pytest.raises(ValueError, match="mix words and integer ids"):
        notewise_bleu([CHANGED], [[1, 2, 3]])


def test_references_per_prediction():
    # Each prediction against its own reference: the matches of both, summed.
    separate = count_matches_per_prediction([SCALE, CHANGED], [[CHANGED], [SCALE]])
    assert separate.matches.sum(axis=0).tolist() == [7 + 7, 5 + 5, 4 + 4, 3 + 3, 2 + 2]
    shared = count_matches_per_prediction([SCALE, CHANGED], [[SCALE], [SCALE]])
    assert shared.matches.sum(axis=0).tolist() == count_matches([SCALE, CHANGED], [SCALE]).matches.sum(0).tolist()


def naive_matches(prediction: list, references: list[list], n: int) -> tuple[int, int]:
    def grams(seq):
        return Counter(tuple(seq[i : i + n]) for i in range(len(seq) - n + 1))

    counts = grams(prediction)
    most = Counter()
    for ref in references:
        most |= grams(ref)  # the largest count in any one reference
    return sum(min(c, most[g]) for g, c in counts.items()), sum(counts.values())


@pytest.mark.parametrize("seed", range(5))
def test_matches_agree_with_a_naive_count(seed):
    rng = np.random.default_rng(seed)
    vocab = int(rng.integers(2, 6))
    predictions = [rng.integers(0, vocab, int(rng.integers(0, 30))) for _ in range(4)]
    references = [rng.integers(0, vocab, int(rng.integers(1, 40))) for _ in range(3)]
    m = count_matches(predictions, references)
    for i, prediction in enumerate(predictions):
        for n in range(1, 6):
            expected = naive_matches(prediction.tolist(), [r.tolist() for r in references], n)
            assert (m.matches[i, n - 1], m.totals[i, n - 1]) == expected


# ---- the evaluate module -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def maia_bleu():
    import evaluate

    return evaluate.load(MAIA_BLEU_PATH)


def test_evaluate_module_loads_offline_and_matches_the_pure_function(maia_bleu):
    result = maia_bleu.compute(predictions=[SCALE, CHANGED], references=[[SCALE, CHANGED], [SCALE]])
    expected = [(9 + 7) / 18, (8 + 5) / 16, (7 + 4) / 14, (6 + 3) / 12, (5 + 2) / 10]  # as in the corpus test
    assert [result[f"precision_{n}"] for n in range(1, 6)] == pytest.approx(expected)
    assert result["bleu"] == pytest.approx(weighted(expected))
    assert all(isinstance(v, (int, float)) for v in result.values())  # a flat dict
    assert set(result) >= {"bleu", "brevity_penalty", "length_ratio"} | {f"precision_{n}" for n in range(1, 6)}
    single = maia_bleu.compute(predictions=[CHANGED], references=[SCALE])  # one reference per prediction
    assert single["bleu"] == pytest.approx(0.47912, abs=1e-5)
    assert maia_bleu.compute(predictions=[CHANGED], references=[[SCALE]], brevity_penalty=True)["bleu"] == (
        pytest.approx(0.47912, abs=1e-5)
    )


def test_evaluate_module_describes_itself(maia_bleu):
    assert "Papineni" in maia_bleu.citation
    assert "0.05, 0.05, 0.1, 0.4, 0.4" in maia_bleu.description
    assert "precision_5" in maia_bleu.inputs_description


def test_evaluate_loads_the_folder_by_relative_path(monkeypatch):
    import evaluate

    monkeypatch.chdir(REPO)
    metric = evaluate.load("maia_hf/metrics/maia_bleu")
    assert metric.compute(predictions=[SCALE], references=[[SCALE]])["bleu"] == 1.0


def test_the_math_needs_neither_maia_nor_evaluate():
    # evaluate.load copies notewise_bleu.py beside the metric script: it must stand alone.
    out = run_python(
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('nb', {MAIA_BLEU_PATH + '/notewise_bleu.py'!r})\n"
        "nb = importlib.util.module_from_spec(spec); spec.loader.exec_module(nb)\n"
        f"print(round(nb.notewise_bleu([{CHANGED!r}], [{SCALE!r}])['bleu'], 5))\n"
        "print(sorted(m for m in ('maia_hf', 'evaluate', 'datasets', 'torch') if m in sys.modules))\n"
    )
    assert out.split("\n")[:2] == ["0.47912", "[]"]
