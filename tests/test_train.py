"""The fitting stages of training, on synthetic CETT features."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")

from hnggml.stats import auroc  # noqa: E402
from hnggml.train import (  # noqa: E402
    choose_C,
    cross_fit,
    fit_columns,
    fit_neurons,
    select_questions,
    stratified_folds,
)
from hnggml.datasets import QAItem  # noqa: E402


def synthetic(n: int = 400, width: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.gamma(2.0, 0.01, size=(n, width)).astype(np.float32)
    X[:, 7] += 0.02 * y          # raised in hallucinations
    X[:, 42] += 0.015 * y
    X[:, 99] -= 0.005 * y        # lowered: must not be kept
    return X, y


def test_fit_neurons_keeps_positive_features():
    X, y = synthetic()
    fit = fit_neurons(X, y, C=0.1)
    assert 7 in fit.columns and 42 in fit.columns
    assert 99 not in fit.columns
    assert auroc(y, fit.logit(X)) > 0.8


def test_fit_neurons_coefficients_apply_to_raw_features():
    X, y = synthetic()
    fit = fit_neurons(X, y, C=0.1)
    by_hand = X[:, fit.columns].astype(np.float64) @ fit.coef + fit.intercept
    np.testing.assert_allclose(fit.logit(X), by_hand)


def test_cross_fit_out_of_fold_beats_random_columns():
    X, y = synthetic()
    folds = stratified_folds(y, 5, seed=0)
    oof = cross_fit(X, y, 0.1, folds)
    random_cols = np.array([1, 2, 3])
    control = fit_columns(X, y, random_cols)
    assert auroc(y, oof) > 0.75
    assert auroc(y, control.logit(X)) < 0.65


def test_choose_c_returns_grid_value():
    X, y = synthetic(n=200)
    folds = stratified_folds(y, 3, seed=0)
    best, scores = choose_C(X, y, [0.03, 0.3], folds, show_progress=False)
    assert best in (0.03, 0.3)
    assert set(scores) == {0.03, 0.3}


def test_stratified_folds_balanced():
    y = np.array([0] * 50 + [1] * 10)
    folds = stratified_folds(y, 5, seed=1)
    for f in range(5):
        assert (y[folds == f] == 1).sum() == 2


def test_select_questions_caps_generated_relations():
    items = [QAItem(id=f"k{i}", question=f"q{i}?", answers=("a",), category="geography", source="kb:x:capital")
             for i in range(10)]
    items += [QAItem(id=f"h{i}", question=f"h{i}?", answers=("a",), category="art", source="handwritten")
              for i in range(4)]
    kept = select_questions(items, 3)
    assert sum(1 for item in kept if item.source == "kb:x:capital") == 3
    assert sum(1 for item in kept if item.source == "handwritten") == 4
