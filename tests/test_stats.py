"""Tests for hnggml.stats.

The module is imported from src/ (run with ``PYTHONPATH=src``).
"""

from __future__ import annotations

import numpy as np
import pytest

from hnggml.stats import (
    SlopeEstimate,
    auroc,
    balanced_accuracy,
    bootstrap_ci,
    slope_bootstrap_ci,
    slope_with_ci,
    wilson_interval,
)

# (y, score, AUROC counted by hand over all positive-negative pairs)
AUROC_CASES = [
    ([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.75),
    ([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4], 1.0),
    ([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4], 0.0),
    # one tie between a positive and a negative counts one half: 3.5 / 4
    ([0, 0, 1, 1], [1.0, 2.0, 2.0, 3.0], 0.875),
    # every score tied
    ([0, 1, 0, 1], [5.0, 5.0, 5.0, 5.0], 0.5),
    # ties inside one class do not matter: 6 of 6 pairs ordered
    ([0, 0, 1, 1, 1], [1.0, 1.0, 2.0, 2.0, 2.0], 1.0),
    # positives 0.9, 0.5, 0.6 against negatives 0.5, 0.7 win 2 + 0.5 + 1 = 3.5 of 6 pairs
    ([1, 0, 1, 0, 1], [0.9, 0.5, 0.5, 0.7, 0.6], 3.5 / 6.0),
]


@pytest.mark.parametrize(("y", "score", "expected"), AUROC_CASES)
def test_auroc_hand_computed(y: list[int], score: list[float], expected: float) -> None:
    assert auroc(y, score) == pytest.approx(expected)


def test_auroc_accepts_booleans() -> None:
    assert auroc(np.array([False, True]), np.array([0.2, 0.9])) == 1.0


def test_auroc_matches_pair_count_on_random_ties() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=200)
    score = rng.integers(0, 5, size=200).astype(float)
    positives = score[y == 1][:, None]
    negatives = score[y == 0][None, :]
    expected = np.mean((positives > negatives) + 0.5 * (positives == negatives))
    assert auroc(y, score) == pytest.approx(expected)


def test_auroc_rejects_single_class() -> None:
    with pytest.raises(ValueError, match="both classes"):
        auroc([1, 1, 1], [0.1, 0.2, 0.3])


def test_auroc_rejects_non_binary_labels() -> None:
    with pytest.raises(ValueError, match="only 0 and 1"):
        auroc([0, 2, 1], [0.1, 0.2, 0.3])


def test_auroc_rejects_nan_score() -> None:
    with pytest.raises(ValueError, match="NaN"):
        auroc([0, 1], [0.1, float("nan")])


def test_auroc_rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="same shape"):
        auroc([0, 1], [0.1, 0.2, 0.3])


# (k, n, low, high) to four decimals: the roots of
# (k/n - p)^2 = z^2 p (1 - p) / n for z = 1.96, found by bisection.
WILSON_CASES = [
    (5, 10, 0.2366, 0.7634),
    (0, 10, 0.0, 0.2775),
    (10, 10, 0.7225, 1.0),
    (1, 1, 0.2065, 1.0),
    (50, 100, 0.4038, 0.5962),
    (81, 263, 0.2553, 0.3662),
]


@pytest.mark.parametrize(("k", "n", "low", "high"), WILSON_CASES)
def test_wilson_interval_known_values(k: int, n: int, low: float, high: float) -> None:
    got_low, got_high = wilson_interval(k, n)
    assert got_low == pytest.approx(low, abs=1e-4)
    assert got_high == pytest.approx(high, abs=1e-4)


def test_wilson_interval_exact_bounds_at_extremes() -> None:
    assert wilson_interval(0, 7)[0] == 0.0
    assert wilson_interval(7, 7)[1] == 1.0


def test_wilson_interval_wider_for_larger_z() -> None:
    narrow = wilson_interval(30, 100, z=1.0)
    wide = wilson_interval(30, 100, z=2.58)
    assert wide[0] < narrow[0]
    assert wide[1] > narrow[1]


def test_wilson_interval_rejects_zero_trials() -> None:
    with pytest.raises(ValueError, match="positive number of trials"):
        wilson_interval(0, 0)


def test_wilson_interval_rejects_k_above_n() -> None:
    with pytest.raises(ValueError, match="between 0 and n=5"):
        wilson_interval(6, 5)


def test_wilson_interval_rejects_float_count() -> None:
    with pytest.raises(TypeError, match="int count"):
        wilson_interval(2.5, 10)  # type: ignore[arg-type]


BALANCED_CASES = [
    ([0, 0, 1, 1], [0, 0, 1, 1], 1.0),
    ([0, 0, 0, 1], [0, 0, 0, 0], 0.5),
    ([0, 0, 1, 1], [0, 1, 1, 1], 0.75),
    (["a", "b", "c"], ["a", "b", "a"], 2.0 / 3.0),
    ([1, 1, 1], [1, 0, 1], 2.0 / 3.0),
]


@pytest.mark.parametrize(("y", "yhat", "expected"), BALANCED_CASES)
def test_balanced_accuracy_table(y: list, yhat: list, expected: float) -> None:
    assert balanced_accuracy(y, yhat) == pytest.approx(expected)


def test_balanced_accuracy_rejects_length_mismatch() -> None:
    with pytest.raises(ValueError, match="equal length"):
        balanced_accuracy([0, 1], [0])


def test_balanced_accuracy_rejects_empty() -> None:
    with pytest.raises(ValueError, match="empty"):
        balanced_accuracy([], [])


def test_bootstrap_ci_covers_mean() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(loc=2.0, scale=1.0, size=400)
    low, high = bootstrap_ci(np.mean, values, n_boot=500, seed=1)
    assert low < values.mean() < high
    # about 1.96 * 1 / sqrt(400) = 0.098 on each side
    assert 0.06 < (high - low) / 2 < 0.14


def test_bootstrap_ci_is_reproducible() -> None:
    values = np.arange(50, dtype=float)
    first = bootstrap_ci(np.mean, values, n_boot=200, seed=7)
    second = bootstrap_ci(np.mean, values, n_boot=200, seed=7)
    assert first == second


def test_bootstrap_ci_stratified_auroc() -> None:
    rng = np.random.default_rng(5)
    y = np.array([0] * 30 + [1] * 5)
    score = rng.normal(size=35) + y
    low, high = bootstrap_ci(auroc, y, score, n_boot=300, seed=0, stratify=y)
    assert 0.0 <= low <= auroc(y, score) <= high <= 1.0


def test_bootstrap_ci_rejects_mismatched_arrays() -> None:
    with pytest.raises(ValueError, match="first dimension"):
        bootstrap_ci(auroc, [0, 1, 0], [0.1, 0.2])


def test_bootstrap_ci_rejects_zero_resamples() -> None:
    with pytest.raises(ValueError, match="n_boot must be a positive int"):
        bootstrap_ci(np.mean, [1.0, 2.0], n_boot=0)


def test_bootstrap_ci_rejects_all_nan_statistic() -> None:
    with pytest.raises(ValueError, match="every resample"):
        bootstrap_ci(lambda a: float("nan"), [1.0, 2.0], n_boot=10)


ALPHAS = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0])


def test_slope_with_ci_exact_line() -> None:
    rates = 0.3 + 0.05 * ALPHAS
    estimate = slope_with_ci(ALPHAS, rates, [200] * ALPHAS.size)
    assert isinstance(estimate, SlopeEstimate)
    assert estimate.slope == pytest.approx(0.05)
    assert estimate.low < 0.05 < estimate.high


def test_slope_with_ci_weights_by_count() -> None:
    # The slope equals ordinary least squares on the item-level 0/1 outcomes.
    xs = np.array([0.0, 1.0, 3.0])
    ks = np.array([10, 30, 90])
    ns = np.array([50, 100, 150])
    item_x = np.repeat(xs, ns)
    item_y = np.concatenate([np.r_[np.ones(k), np.zeros(n - k)] for k, n in zip(ks, ns)])
    expected = np.polyfit(item_x, item_y, 1)[0]
    assert slope_with_ci(xs, ks / ns, ns).slope == pytest.approx(expected)


def test_slope_with_ci_covers_true_slope() -> None:
    rng = np.random.default_rng(11)
    true_slope = 0.04
    probabilities = 0.3 + true_slope * ALPHAS
    n = 300
    covered = 0
    repeats = 400
    for _ in range(repeats):
        rates = rng.binomial(n, probabilities) / n
        estimate = slope_with_ci(ALPHAS, rates, [n] * ALPHAS.size)
        covered += estimate.low <= true_slope <= estimate.high
    # nominal 95%; 400 repeats give a standard error of about 1.1 points
    assert 0.91 <= covered / repeats <= 0.99


def test_slope_with_ci_rejects_percentages() -> None:
    with pytest.raises(ValueError, match="divide percentages by 100"):
        slope_with_ci([0, 1], [30.0, 40.0], [10, 10])


def test_slope_with_ci_rejects_single_alpha() -> None:
    with pytest.raises(ValueError, match="two different alphas"):
        slope_with_ci([1.0, 1.0], [0.2, 0.3], [10, 10])


def test_slope_with_ci_rejects_zero_count() -> None:
    with pytest.raises(ValueError, match="positive item counts"):
        slope_with_ci([0, 1], [0.2, 0.3], [10, 0])


def _paired_outcomes(rng: np.random.Generator, n_items: int, true_slope: float) -> np.ndarray:
    """0/1 outcomes where each item has its own base rate, shared across alphas."""
    base = rng.uniform(0.1, 0.6, size=(n_items, 1))
    probabilities = np.clip(base + true_slope * ALPHAS[None, :], 0.0, 1.0)
    return (rng.random((n_items, ALPHAS.size)) < probabilities).astype(float)


def test_slope_bootstrap_ci_covers_true_slope() -> None:
    rng = np.random.default_rng(21)
    true_slope = 0.03
    covered = 0
    repeats = 150
    for seed in range(repeats):
        outcomes = _paired_outcomes(rng, 150, true_slope)
        estimate = slope_bootstrap_ci(ALPHAS, outcomes, n_boot=300, seed=seed)
        covered += estimate.low <= true_slope <= estimate.high
    # nominal 95%; 150 repeats give a standard error of about 1.8 points
    assert 0.88 <= covered / repeats <= 1.0


def test_slope_bootstrap_ci_ignores_unparsed() -> None:
    outcomes = np.array(
        [
            [0.0, 0.0, 1.0],
            [0.0, 1.0, 1.0],
            [np.nan, 0.0, np.nan],
        ]
    )
    estimate = slope_bootstrap_ci([0.0, 1.0, 2.0], outcomes, n_boot=200, seed=0)
    # rates 0, 1/3, 1 give an OLS slope of 0.5
    assert estimate.slope == pytest.approx(0.5)
    assert estimate.low <= estimate.slope <= estimate.high


def test_slope_bootstrap_ci_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"shape \(n_items, 3\)"):
        slope_bootstrap_ci([0.0, 1.0, 2.0], np.zeros((4, 2)))


def test_slope_bootstrap_ci_rejects_non_binary() -> None:
    with pytest.raises(ValueError, match="only 0, 1 and NaN"):
        slope_bootstrap_ci([0.0, 1.0], np.array([[0.0, 0.5]]))


def test_slope_bootstrap_ci_rejects_empty_alpha() -> None:
    with pytest.raises(ValueError, match="no judged item"):
        slope_bootstrap_ci([0.0, 1.0], np.array([[0.0, np.nan], [1.0, np.nan]]))
