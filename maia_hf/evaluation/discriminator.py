"""A discriminator test: can a small classifier tell real excerpts from generated ones?

In place of the original maia's listening test, :func:`discriminator_accuracy` trains an
L2-regularised logistic regression on feature vectors of real and generated excerpts (see
:func:`excerpt_features`) and reports its cross-validated accuracy: each excerpt is
classified once, by a model trained on the other folds. 50% means the classifier cannot tell them
apart; 100% means it always can. Pure numpy.

Example:

```python
>>> import numpy as np
>>> from maia_hf.evaluation.discriminator import discriminator_accuracy
>>> rng = np.random.default_rng(0)
>>> same = discriminator_accuracy(rng.normal(0, 1, (40, 3)), rng.normal(0, 1, (40, 3)))
>>> 0.3 <= same["accuracy"] <= 0.7   # one distribution: chance level
True

```
"""

from __future__ import annotations

import math

import numpy as np

from ..codec import NotewiseCodec
from .corpus import BEATS_PER_BAR, Sample
from .statistics import HISTOGRAMS, STATISTICS, piece_histograms, piece_statistics

__all__ = ["discriminator_accuracy", "excerpt_features", "fit_logistic_regression"]

_BIGRAM_BUCKETS = 256


def excerpt_features(sample: Sample, codec: NotewiseCodec) -> np.ndarray:
    """What the discriminator sees of an excerpt: its statistics, histograms, word and hashed word-pair frequencies.

    >>> from maia_hf.codec import NoteArray
    >>> notes = NoteArray.from_lists([60, 64], [0, 12], [12, 24])
    >>> codec = NotewiseCodec()
    >>> excerpt_features(Sample(codec.encode(notes), notes, 48), codec).shape  # 6 + 11 + 25 + 224 words + 256 pairs
    (522,)
    """
    spq = codec.config.steps_per_quarter
    stats = piece_statistics(sample.notes, spq, BEATS_PER_BAR, sample.length)
    hists = piece_histograms(sample.notes, spq)
    words = np.asarray(sample.words, dtype=np.int64)
    unigrams = np.bincount(words, minlength=codec.size)[: codec.size].astype(np.float64)
    pairs = (words[:-1] * 7919 + words[1:]) % _BIGRAM_BUCKETS if len(words) > 1 else np.zeros(0, dtype=np.int64)
    bigrams = np.bincount(pairs, minlength=_BIGRAM_BUCKETS).astype(np.float64)
    return np.concatenate(
        [
            [stats[name] for name in STATISTICS],
            *(hists[name] for name in HISTOGRAMS),
            unigrams / max(1, len(words)),
            bigrams / max(1, len(words) - 1),
        ]
    )


def fit_logistic_regression(x: np.ndarray, y: np.ndarray, l2: float = 1.0, iterations: int = 50) -> np.ndarray:
    """Weights (the last one the bias) minimising the log-loss plus ``l2/2 * |w|^2``, by Newton's method.

    Each Newton step solves its system through the Woodbury identity in the space of the n samples
    rather than of the d features, which is what this test has: a few dozen excerpts, hundreds of features.

    >>> x = np.array([[-2.0], [-1.0], [1.0], [2.0]])
    >>> w = fit_logistic_regression(x, np.array([0, 0, 1, 1]), l2=1.0)
    >>> bool(w[0] > 0), bool(abs(w[1]) < 1e-9)   # rising with x; the classes are balanced around 0
    (True, True)
    """
    xb = np.hstack([x, np.ones((len(x), 1))])  # (n, d+1)
    gram = xb @ xb.T  # (n, n)
    w = np.zeros(xb.shape[1])
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-np.clip(xb @ w, -30, 30)))
        gradient = xb.T @ (p - y) + l2 * w
        weight = np.clip(p * (1 - p), 1e-10, None)
        # (l2 I + X^T S X)^-1 g = (g - X^T (l2 S^-1 + X X^T)^-1 X g) / l2
        step = (gradient - xb.T @ np.linalg.solve(np.diag(l2 / weight) + gram, xb @ gradient)) / l2
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return w


def discriminator_accuracy(real, generated, folds: int = 5, seed: int = 0, l2: float = 1.0) -> dict:
    """Held-out accuracy of a logistic regression telling real (rows of ``real``) from generated excerpts.

    Stratified k-fold cross-validation: each excerpt is classified once by a model that did not see it.
    Features are standardised on each training fold (a missing value becomes the fold's mean).

    Args:
        real, generated (`np.ndarray` of shape `(excerpts, features)`): one feature vector per excerpt.
        folds (`int`, *optional*, defaults to 5): at most this many folds (and no more than the smaller class).
        seed (`int`, *optional*, defaults to 0): the random deal of excerpts into folds.
        l2 (`float`, *optional*, defaults to 1.0): the regularisation on standardised features.

    Returns:
        `dict`: ``accuracy`` (0.5: cannot tell them apart), ``stderr`` (binomial), ``folds``, ``real``,
        ``generated``; NaN accuracy when a class has fewer than two excerpts.

    >>> rng = np.random.default_rng(0)
    >>> apart = discriminator_accuracy(rng.normal(0, 1, (20, 3)), rng.normal(5, 1, (20, 3)))
    >>> apart["accuracy"], apart["folds"]
    (1.0, 5)
    """
    real, generated = np.asarray(real, dtype=np.float64), np.asarray(generated, dtype=np.float64)
    x = np.vstack([real, generated])
    y = np.concatenate([np.ones(len(real)), np.zeros(len(generated))])
    k = min(folds, len(real), len(generated))
    result = {"real": len(real), "generated": len(generated), "folds": k}
    if k < 2:
        return {**result, "accuracy": math.nan, "stderr": math.nan}
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=np.int64)
    for label in (0, 1):  # stratified: each class dealt round-robin over the folds, in random order
        rows = rng.permutation(np.flatnonzero(y == label))
        fold[rows] = np.arange(len(rows)) % k
    correct = 0
    for f in range(k):
        train, test = fold != f, fold == f
        with np.errstate(all="ignore"):
            mean = np.nanmean(np.where(np.isfinite(x[train]), x[train], np.nan), axis=0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        filled = np.where(np.isfinite(x), x, mean)
        std = filled[train].std(axis=0)
        z = (filled - mean) / np.where(std > 0, std, 1.0)
        w = fit_logistic_regression(z[train], y[train], l2)
        predicted = np.hstack([z[test], np.ones((int(test.sum()), 1))]) @ w > 0
        correct += int((predicted == (y[test] == 1)).sum())
    accuracy = correct / len(y)
    return {**result, "accuracy": accuracy, "stderr": math.sqrt(accuracy * (1 - accuracy) / len(y))}
