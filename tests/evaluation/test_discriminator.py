"""The discriminator: its logistic regression reaches the optimum, and its accuracy reads as it should."""

from __future__ import annotations

import math

import numpy as np

from maia_hf.evaluation.discriminator import discriminator_accuracy, fit_logistic_regression


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
