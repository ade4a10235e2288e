"""Controls for the detection report: held-out categories, length, C, aggregation.

Everything here works on stored features (a training run's features.npy,
signals.npy and labels) and on `hnggml eval` records, so the tables can be
rebuilt without running the model again. scikit-learn is needed (through
hnggml.train).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .features import SIGNALS
from .stats import auroc
from .train import combiner_logit, cross_fit, fit_combiner, fit_neurons, logistic, stratified_folds

# Domains of at most a few dozen questions are held out together, so each
# held-out group has enough right and wrong answers for an AUROC.
CATEGORY_GROUPS = {
    "geography": "geography",
    "chemistry": "chemistry",
    "language": "language",
    "technology": "technology",
    "economics": "economics",
    "history": "history and politics",
    "politics": "history and politics",
    "literature": "arts and media",
    "film": "arts and media",
    "music": "arts and media",
    "art": "arts and media",
    "television": "arts and media",
    "architecture": "arts and media",
    "games": "arts and media",
    "physics": "natural sciences",
    "biology": "natural sciences",
    "medicine": "natural sciences",
    "space": "natural sciences",
    "earth-science": "natural sciences",
    "mathematics": "natural sciences",
    "nature": "natural sciences",
    "food": "everyday life",
    "sport": "everyday life",
    "transport": "everyday life",
    "everyday-life": "everyday life",
    "business": "everyday life",
    "mythology": "everyday life",
}


def category_group(category: str) -> str:
    return CATEGORY_GROUPS.get(category, "other")


def _safe_auroc(y: np.ndarray, score: np.ndarray) -> float | None:
    if len(y) == 0 or y.min() == y.max():
        return None
    return float(auroc(y, score))


def leave_one_group_out(X: np.ndarray, S: np.ndarray, y: np.ndarray, groups: list[str], C: float,
                        seed: int = 0, min_per_class: int = 5) -> dict[str, Any]:
    """Train on all other groups and test on the held-out one, for every signal.

    The combined risk is fitted on 3-fold out-of-fold neuron logits of the
    training groups, as in training, and applied to the held-out group.
    """
    groups_arr = np.asarray(groups)
    rows = []
    for group in sorted(set(groups)):
        test = groups_arr == group
        y_test = y[test]
        if (y_test == 1).sum() < min_per_class or (y_test == 0).sum() < min_per_class:
            continue
        train = ~test
        fit = fit_neurons(X[train], y[train], C, seed)
        h_test = fit.logit(X[test]) if len(fit.columns) else np.zeros(test.sum())
        folds = stratified_folds(y[train], 3, seed)
        h_oof = cross_fit(X[train], y[train], C, folds, seed)
        params = fit_combiner(h_oof, S[train], y[train])
        risk_test = combiner_logit(params, h_test, S[test])
        # The same second stage without the neuron logit: what the neurons add.
        params_plain = fit_combiner(np.zeros(train.sum()), S[train], y[train])
        plain_test = combiner_logit(params_plain, np.zeros(test.sum()), S[test])
        row = {
            "group": group,
            "n": int(test.sum()),
            "n_hallucinated": int(y_test.sum()),
            "h_neurons": _safe_auroc(y_test, h_test),
            "risk": _safe_auroc(y_test, risk_test),
            "risk_without_neurons": _safe_auroc(y_test, plain_test),
            "neurons": int(len(fit.columns)),
        }
        for i, name in enumerate(SIGNALS):
            if name != "n_tokens":
                row[name] = _safe_auroc(y_test, S[test, i])
        rows.append(row)
    summary = {}
    for key in ("h_neurons", "risk", "risk_without_neurons", "entropy", "neg_logprob", "one_minus_min_prob"):
        values = [(r[key], r["n"]) for r in rows if r[key] is not None]
        if values:
            summary[key] = {
                "mean": float(np.mean([v for v, _ in values])),
                "weighted_mean": float(np.average([v for v, _ in values], weights=[n for _, n in values])),
            }
    return {"rows": rows, "summary": summary, "C": C}


def category_only(y: np.ndarray, categories: list[str], seed: int = 0) -> float:
    """Out-of-fold AUROC of a logistic regression on the one-hot category alone."""
    names = sorted(set(categories))
    onehot = np.array([[c == name for name in names] for c in categories], dtype=float)
    folds = stratified_folds(y, 5, seed)
    out = np.zeros(len(y))
    for f in np.unique(folds):
        test = folds == f
        model = logistic(False, 1.0).fit(onehot[~test], y[~test])
        out[test] = model.decision_function(onehot[test])
    return float(auroc(y, out))


def c_sensitivity(X: np.ndarray, y: np.ndarray, X_test: np.ndarray, y_test: np.ndarray,
                  grid: list[float], seed: int = 0) -> list[dict[str, Any]]:
    """Neurons kept and held-out AUROC of the neuron stage for each C."""
    rows = []
    for C in grid:
        fit = fit_neurons(X, y, C, seed)
        score = fit.logit(X_test) if len(fit.columns) else np.zeros(len(y_test))
        rows.append({"C": C, "neurons": int(len(fit.columns)), "l1_nonzero": fit.l1_nonzero,
                     "heldout_auroc": _safe_auroc(y_test, score)})
    return rows


def length_confound(records: list[dict[str, Any]], bins: tuple[tuple[int, int], ...] = ((1, 1), (2, 3), (4, 10**6))
                    ) -> dict[str, Any]:
    """Risk against answer length, and AUROC within length bins."""
    scored = [r for r in records if r.get("label") is not None and "risk" in r]
    y = np.array([r["label"] for r in scored])
    length = np.array([r["n_tokens"] for r in scored])
    out: dict[str, Any] = {"length_auroc": _safe_auroc(y, length), "bins": []}
    for lo, hi in bins:
        sel = (length >= lo) & (length <= hi)
        row: dict[str, Any] = {"tokens": f"{lo}" if lo == hi else (f"{lo}-{hi}" if hi < 10**6 else f"{lo}+"),
                               "n": int(sel.sum()), "n_hallucinated": int(y[sel].sum())}
        for name in ("risk", "h_neurons", "entropy", "logprob", "one_minus_min_prob"):
            values = np.array([r[name] for r in scored], dtype=float)
            row[name] = _safe_auroc(y[sel], values[sel])
        for label, key in ((0, "mean_risk_right"), (1, "mean_risk_wrong")):
            pick = sel & (y == label)
            row[key] = float(np.mean([scored[i]["risk"] for i in np.flatnonzero(pick)])) if pick.any() else None
        out["bins"].append(row)
    return out


def aggregation(records: list[dict[str, Any]]) -> dict[str, float | None]:
    """AUROC of the neuron stage with mean over answer tokens, max, and the whole response."""
    scored = [r for r in records if r.get("label") is not None and "h_neurons" in r]
    y = np.array([r["label"] for r in scored])
    return {
        "mean over answer tokens": _safe_auroc(y, np.array([r["h_neurons"] for r in scored])),
        "max over answer tokens": _safe_auroc(y, np.array([r["h_neurons_max"] for r in scored])),
        "mean over the whole response": _safe_auroc(y, np.array([r["h_neurons_whole"] for r in scored])),
    }


def consistency_survival(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Count, per category, the questions the consistency filter keeps.

    records are collection records with sampled answers; a question survives
    when all its samples are right or all are wrong.
    """
    table: dict[str, dict[str, Any]] = {}
    for record in records:
        verdicts = [s["verdict"] for s in record["samples"]]
        row = table.setdefault(record["category"], {"category": record["category"], "n": 0, "all_right": 0,
                                                    "all_wrong": 0, "mixed_or_refusal": 0})
        row["n"] += 1
        complete = len(verdicts) >= record.get("n_samples", len(verdicts))
        if complete and set(verdicts) == {"correct"}:
            row["all_right"] += 1
        elif complete and set(verdicts) == {"wrong"}:
            row["all_wrong"] += 1
        else:
            row["mixed_or_refusal"] += 1
    return sorted(table.values(), key=lambda r: -r["n"])
