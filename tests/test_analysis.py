"""Detection controls on synthetic features with a planted signal."""

import numpy as np
import pytest

pytest.importorskip("sklearn")

from hnggml.analysis import category_only, leave_one_group_out  # noqa: E402
from hnggml.features import SIGNALS  # noqa: E402


def planted(seed=0, n=240, n_features=60):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.5).astype(int)
    X = rng.normal(1.0, 0.3, size=(n, n_features)).astype(np.float32)
    X[:, 7] += 0.8 * y  # one neuron carries the label in every group
    S = rng.normal(0.0, 1.0, size=(n, len(SIGNALS)))
    S[:, SIGNALS.index("entropy")] += 0.3 * y  # a weak logit signal
    groups = [("a", "b", "c", "d")[i % 4] for i in range(n)]
    return X, S, y, groups


def test_loco_scores_every_group():
    X, S, y, groups = planted()
    result = leave_one_group_out(X, S, y, groups, C=0.3)
    assert [r["group"] for r in result["rows"]] == ["a", "b", "c", "d"]
    for row in result["rows"]:
        assert row["n"] == 60
        for key in ("risk", "risk_without_neurons", "h_neurons", "entropy", "neg_logprob", "one_minus_min_prob"):
            assert 0.0 <= row[key] <= 1.0
        assert row["neurons"] >= 1
    summary = result["summary"]
    # The planted neuron is found on unseen groups and adds to the logit signals.
    assert summary["h_neurons"]["mean"] > 0.8
    assert summary["risk"]["mean"] > summary["risk_without_neurons"]["mean"] + 0.05


def test_loco_skips_one_class_group():
    X, S, y, groups = planted()
    groups = ["solo" if label == 1 and i < 40 else g for i, (label, g) in enumerate(zip(y, groups))]
    y = np.asarray(y)
    result = leave_one_group_out(X, S, y, groups, C=0.3)
    assert "solo" not in [r["group"] for r in result["rows"]]


def test_category_only_baseline():
    y = np.array([0, 1] * 50)
    assert category_only(y, ["x" if v else "w" for v in y]) > 0.95
    rng = np.random.default_rng(1)
    assert category_only(y, list(rng.choice(["w", "x"], size=100))) < 0.75
