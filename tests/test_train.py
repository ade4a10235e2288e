"""The fitting stages of training, on synthetic CETT features."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")

from hnggml.stats import auroc  # noqa: E402
from hnggml.features import SIGNALS  # noqa: E402
from hnggml.train import (  # noqa: E402
    choose_C,
    choose_default_risk,
    cross_fit,
    fit_columns,
    fit_neurons,
    out_of_fold_combiner,
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


def grouped(neuron_effect: float, entropy_effect: float, n: int = 320, seed: int = 0):
    """Synthetic features in four categories with a label signal of chosen strength."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.gamma(2.0, 0.01, size=(n, 80)).astype(np.float32)
    X[:, 5] += neuron_effect * y
    S = rng.normal(0.0, 1.0, size=(n, len(SIGNALS)))
    S[:, SIGNALS.index("entropy")] += entropy_effect * y
    categories = [("geography", "chemistry", "language", "technology")[i % 4] for i in range(n)]
    return X, S, y, categories


def test_default_risk_keeps_helpful_neurons():
    X, S, y, categories = grouped(neuron_effect=0.03, entropy_effect=1.0)
    selection = choose_default_risk(X, S, y, categories, C=0.3)
    assert selection["choice"] == "combined"
    assert selection["inputs"] == ["h_logit", "entropy", "neg_logprob", "one_minus_min_prob"]
    assert selection["groups"] == ["chemistry", "geography", "language", "technology"]
    assert selection["loco_auroc"]["combined"] > selection["loco_auroc"]["entropy"]


def test_default_risk_drops_useless_neurons():
    X, S, y, categories = grouped(neuron_effect=0.0, entropy_effect=1.5)
    selection = choose_default_risk(X, S, y, categories, C=0.3)
    assert selection["choice"] in ("signals", "entropy")
    assert selection["inputs"] is not None
    assert "h_logit" not in selection["inputs"]


def test_default_risk_needs_two_class_groups():
    X, S, y, categories = grouped(neuron_effect=0.03, entropy_effect=1.0, n=40)
    y = np.zeros_like(y)
    y[:3] = 1
    assert choose_default_risk(X, S, y, categories, C=0.3) is None


def test_out_of_fold_single_signal_keeps_ranking():
    X, S, y, _ = grouped(neuron_effect=0.0, entropy_effect=1.0)
    folds = stratified_folds(y, 5, 0)
    scores = out_of_fold_combiner(np.zeros(len(y)), S, y, folds, ["entropy"])
    assert auroc(y, scores) == pytest.approx(auroc(y, S[:, SIGNALS.index("entropy")]), abs=0.02)


@pytest.mark.slow
def test_train_pipeline_real_model(model_path, tmp_path):
    """The whole pipeline on 60 corpus questions, one sampled answer each, resumes from its folder."""
    from hnggml.paths import data_dir
    from hnggml.probe import HProbe
    from hnggml.train import train

    args = dict(n_samples=1, max_questions=60, labels="first", C=0.3, n_threads=1, show_progress=False)
    probe = train(model_path, [data_dir() / "corpus.jsonl"], tmp_path / "run", tmp_path / "probe.json", **args)
    loaded = HProbe.load(tmp_path / "probe.json")
    assert loaded.n_neurons == probe.n_neurons
    assert loaded.n_neurons >= 1
    assert loaded.training["n_questions"] == 60
    assert loaded.training["default_risk"] in ("combined", "signals", "h_neurons", "entropy", "neg_logprob",
                                               "one_minus_min_prob")
    assert 0.0 <= loaded.threshold <= 1.0
    assert len(loaded.controls) == 5
    assert (tmp_path / "run" / "first" / "features.npy").exists()

    # A rerun reads the stored samples and features and writes the same probe.
    again = train(model_path, [data_dir() / "corpus.jsonl"], tmp_path / "run", tmp_path / "again.json", **args)
    assert np.array_equal(again.neurons_, probe.neurons_)
    assert np.allclose(again.coef_, probe.coef_)
