"""Statistics for probe and compliance results, with numpy only.

Interval functions return ``(low, high)``.  Estimators that also report a
point value return a :class:`SlopeEstimate` ``(slope, low, high)``.
Rates are fractions in [0, 1], so multiply a slope by 100 for percentage
points per unit of alpha.
"""

from __future__ import annotations

import logging
import math
from statistics import NormalDist
from typing import Any, Callable, NamedTuple

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "SlopeEstimate",
    "auroc",
    "balanced_accuracy",
    "bootstrap_ci",
    "slope_bootstrap_ci",
    "slope_with_ci",
    "wilson_interval",
]


class SlopeEstimate(NamedTuple):
    """A least-squares slope of rate against alpha with its confidence interval."""

    slope: float
    low: float
    high: float


def _check_level(level: float) -> float:
    if not isinstance(level, (int, float)) or not 0.0 < level < 1.0:
        raise ValueError(f"level must be a confidence level strictly between 0 and 1, such as 0.95, got {level!r}")
    return float(level)


def _z_for_level(level: float) -> float:
    return NormalDist().inv_cdf(0.5 + _check_level(level) / 2.0)


def _check_n_boot(n_boot: int) -> int:
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive int, such as 1000, got {n_boot!r}")
    return int(n_boot)


def _binary_labels(y: Any, name: str) -> np.ndarray:
    labels = np.asarray(y)
    if labels.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {labels.shape}")
    if labels.size and not np.isin(labels, (0, 1)).all():
        bad = labels[~np.isin(labels, (0, 1))][:5]
        raise ValueError(f"{name} must contain only 0 and 1 (or booleans), got values such as {bad.tolist()}")
    return labels.astype(bool)


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Return the Wilson score interval ``(low, high)`` for ``k`` successes in ``n`` trials.

    ``z`` is the normal quantile: 1.96 gives a 95% interval.  The bounds are
    clipped to [0, 1], and ``k == 0`` gives a lower bound of exactly 0 (and
    ``k == n`` an upper bound of exactly 1).
    """
    for name, value in (("k", k), ("n", n)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an int count, got {type(value).__name__}: {value!r}")
    if n <= 0:
        raise ValueError(f"n must be a positive number of trials, got {n}; a rate over 0 trials has no interval")
    if not 0 <= k <= n:
        raise ValueError(f"k must be between 0 and n={n}, got {k}")
    if not z > 0:
        raise ValueError(f"z must be a positive normal quantile such as 1.96, got {z!r}")

    p = k / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half_width = z / denominator * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    low = 0.0 if k == 0 else max(0.0, centre - half_width)
    high = 1.0 if k == n else min(1.0, centre + half_width)
    return low, high


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, with tied values sharing the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    boundaries = np.flatnonzero(np.diff(sorted_values)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [values.size]))
    mean_ranks = (starts + ends + 1) / 2.0
    ranks = np.empty(values.size, dtype=float)
    ranks[order] = np.repeat(mean_ranks, ends - starts)
    return ranks


def auroc(y: Any, score: Any) -> float:
    """Return the area under the ROC curve of ``score`` for binary labels ``y``.

    Computed from ranks (the Mann-Whitney U statistic divided by
    ``n_pos * n_neg``), so a tie between a positive and a negative counts
    one half.  Raises ValueError when ``y`` lacks either class or ``score``
    has a NaN.
    """
    labels = _binary_labels(y, "y")
    scores = np.asarray(score, dtype=float)
    if scores.shape != labels.shape:
        raise ValueError(f"y and score must have the same shape, got {labels.shape} and {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError(f"score contains {int(np.isnan(scores).sum())} NaN values; drop or impute them first")
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"y must contain both classes, got {n_pos} positives and {n_neg} negatives")

    ranks = _average_ranks(scores)
    u_statistic = ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u_statistic / (n_pos * n_neg))


def balanced_accuracy(y: Any, yhat: Any) -> float:
    """Return the mean per-class recall of predictions ``yhat`` for labels ``y``.

    The mean runs over the classes present in ``y``.  A predicted class that
    never occurs in ``y`` adds no term of its own, but it lowers the recall of
    the true class it replaced.  Labels may be numbers, booleans or strings.
    """
    truth = np.asarray(y)
    predicted = np.asarray(yhat)
    if truth.ndim != 1 or truth.shape != predicted.shape:
        raise ValueError(f"y and yhat must be one-dimensional and of equal length, got {truth.shape} and {predicted.shape}")
    if truth.size == 0:
        raise ValueError("y is empty; balanced accuracy needs at least one labelled item")
    recalls = [float(np.mean(predicted[truth == label] == label)) for label in np.unique(truth)]
    return float(np.mean(recalls))


def _resample_indices(rng: np.random.Generator, size: int, strata: np.ndarray | None) -> np.ndarray:
    if strata is None:
        return rng.integers(0, size, size=size)
    parts = []
    for value in np.unique(strata):
        members = np.flatnonzero(strata == value)
        parts.append(rng.choice(members, size=members.size, replace=True))
    return np.concatenate(parts)


def bootstrap_ci(
    fn: Callable[..., float],
    *arrays: Any,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    stratify: Any = None,
) -> tuple[float, float]:
    """Return the percentile bootstrap interval ``(low, high)`` of ``fn(*arrays)``.

    The arrays are resampled together along their first axis, with
    replacement, ``n_boot`` times from ``numpy.random.default_rng(seed)``.
    ``stratify`` (labels of the same length) resamples within each label so
    that every resample keeps the class counts, which :func:`auroc` needs.
    Resamples where ``fn`` returns a non-finite value are dropped with a
    warning; ValueError is raised if all of them are.
    """
    if not callable(fn):
        raise TypeError(f"fn must be a callable that returns a float, got {fn!r}")
    if not arrays:
        raise ValueError("bootstrap_ci needs at least one array to resample")
    n_boot = _check_n_boot(n_boot)
    level = _check_level(level)
    data = [np.asarray(array) for array in arrays]
    size = data[0].shape[0] if data[0].ndim else 0
    for index, array in enumerate(data):
        if array.ndim == 0 or array.shape[0] != size:
            raise ValueError(f"all arrays must share their first dimension {size}, but array {index} has shape {array.shape}")
    if size == 0:
        raise ValueError("the arrays are empty; bootstrap needs at least one item")
    strata = None
    if stratify is not None:
        strata = np.asarray(stratify)
        if strata.shape != (size,):
            raise ValueError(f"stratify must have shape ({size},), got {strata.shape}")

    rng = np.random.default_rng(seed)
    values = np.empty(n_boot, dtype=float)
    for b in range(n_boot):
        indices = _resample_indices(rng, size, strata)
        values[b] = fn(*(array[indices] for array in data))

    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise ValueError("fn returned a non-finite value on every resample; check fn on the full data first")
    if finite.size < n_boot:
        logger.warning("bootstrap_ci dropped %d of %d resamples where fn was not finite", n_boot - finite.size, n_boot)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)


def _check_alphas(xs: Any) -> np.ndarray:
    alphas = np.asarray(xs, dtype=float)
    if alphas.ndim != 1 or alphas.size < 2:
        raise ValueError(f"xs must be a one-dimensional grid of at least 2 alphas, got shape {alphas.shape}")
    if not np.isfinite(alphas).all():
        raise ValueError(f"xs must be finite, got {alphas.tolist()}")
    if np.ptp(alphas) == 0:
        raise ValueError(f"xs must contain at least two different alphas to define a slope, got {alphas.tolist()}")
    return alphas


def slope_with_ci(xs: Any, ys_rates: Any, ns: Any, level: float = 0.95) -> SlopeEstimate:
    """Fit rate against alpha by weighted least squares and return the slope with its interval.

    Each alpha is weighted by its number of judged items ``ns``, which gives
    the same slope as ordinary least squares on the item-level 0/1 outcomes.
    The standard error comes from binomial variances ``p(1 - p) / n`` at the
    fitted rates, clipped to ``[0.5 / n, 1 - 0.5 / n]`` so that a rate of 0
    or 1 keeps some variance.  The interval is ``slope +/- z * se``.

    The alphas are treated as independent samples.  When the same items are
    run at every alpha, their outcomes are positively correlated, and this
    interval is wider than needed.  :func:`slope_bootstrap_ci` resamples
    items and keeps that pairing.
    """
    alphas = _check_alphas(xs)
    rates = np.asarray(ys_rates, dtype=float)
    counts = np.asarray(ns, dtype=float)
    if rates.shape != alphas.shape or counts.shape != alphas.shape:
        raise ValueError(
            f"xs, ys_rates and ns must have the same length, got {alphas.shape}, {rates.shape} and {counts.shape}"
        )
    if not (np.isfinite(rates).all() and (rates >= 0).all() and (rates <= 1).all()):
        raise ValueError(f"ys_rates must be fractions in [0, 1], got {rates.tolist()}; divide percentages by 100")
    if not (np.isfinite(counts).all() and (counts > 0).all()):
        raise ValueError(f"ns must be positive item counts, got {counts.tolist()}")
    z = _z_for_level(level)

    weights = counts / counts.sum()
    mean_alpha = float(np.sum(weights * alphas))
    centred = alphas - mean_alpha
    sxx = float(np.sum(counts * centred**2))
    slope = float(np.sum(counts * centred * rates) / sxx)
    intercept = float(np.sum(weights * rates)) - slope * mean_alpha

    fitted = np.clip(intercept + slope * alphas, 0.5 / counts, 1.0 - 0.5 / counts)
    rate_variance = fitted * (1.0 - fitted) / counts
    coefficients = counts * centred / sxx
    standard_error = math.sqrt(float(np.sum(coefficients**2 * rate_variance)))
    return SlopeEstimate(slope, slope - z * standard_error, slope + z * standard_error)


def _ols_slopes(alphas: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """Ordinary least-squares slopes of each row of ``rates`` against ``alphas``."""
    centred = alphas - alphas.mean()
    return (rates - rates.mean(axis=-1, keepdims=True)) @ centred / float(centred @ centred)


def _column_rates(outcomes: np.ndarray) -> np.ndarray:
    """Mean over the item axis (the last but one), ignoring NaN, and NaN where an alpha has no value."""
    judged = ~np.isnan(outcomes)
    counts = judged.sum(axis=-2)
    totals = np.where(judged, outcomes, 0.0).sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)


def slope_bootstrap_ci(
    xs: Any,
    outcomes: Any,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> SlopeEstimate:
    """Return the least-squares slope of rate against alpha with a bootstrap interval over items.

    ``outcomes`` has shape ``(n_items, n_alphas)``: 1 when the item complied
    at that alpha, 0 when it did not, NaN when the response was unparsed.
    The rate at each alpha is the mean over its judged items, and the slope
    is the ordinary least-squares slope of those rates against ``xs``, each
    alpha weighted equally.  The interval is the percentile interval over
    ``n_boot`` resamples of whole items (rows), so the pairing of an item's
    outcomes across alphas is kept.  Resamples that leave an alpha with no
    judged item are dropped with a warning.
    """
    alphas = _check_alphas(xs)
    table = np.asarray(outcomes, dtype=float)
    if table.ndim != 2 or table.shape[1] != alphas.size:
        raise ValueError(f"outcomes must have shape (n_items, {alphas.size}), got {table.shape}")
    if table.shape[0] == 0:
        raise ValueError("outcomes has no items; the bootstrap needs at least one")
    judged_values = table[~np.isnan(table)]
    if not np.isin(judged_values, (0.0, 1.0)).all():
        raise ValueError("outcomes must contain only 0, 1 and NaN (unparsed)")
    n_boot = _check_n_boot(n_boot)
    level = _check_level(level)

    rates = _column_rates(table)
    if np.isnan(rates).any():
        raise ValueError(f"alphas {alphas[np.isnan(rates)].tolist()} have no judged item; drop them from xs and outcomes")
    slope = float(_ols_slopes(alphas, rates))

    rng = np.random.default_rng(seed)
    indices = rng.integers(0, table.shape[0], size=(n_boot, table.shape[0]))
    resampled_rates = _column_rates(table[indices])
    slopes = _ols_slopes(alphas, resampled_rates)
    finite = slopes[np.isfinite(slopes)]
    if finite.size == 0:
        raise ValueError("every resample left an alpha with no judged item; too few parsed responses")
    if finite.size < n_boot:
        logger.warning("slope_bootstrap_ci dropped %d of %d resamples with an alpha lacking judged items", n_boot - finite.size, n_boot)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return SlopeEstimate(slope, float(low), float(high))
