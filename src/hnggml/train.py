"""Find a model's H-neurons and build its probe.

Pipeline: collect consistent answers (hnggml.collect), teacher-force each
representative answer and capture CETT for every neuron (hnggml.capture),
fit an L1 logistic regression, keep the neurons with positive coefficients,
refit a logistic regression on those neurons alone, and optionally fit a
second stage that combines the neuron score with logit signals.

scikit-learn is needed here only (the `train` extra); inference is numpy.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .collect import Sampled
from .features import SIGNALS
from .progress import Progress

logger = logging.getLogger(__name__)

COMBINER_INPUTS = ["h_logit", "entropy", "neg_logprob", "one_minus_min_prob"]


def _sklearn():
    try:
        import sklearn  # noqa: F401
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        raise ImportError(
            "training needs scikit-learn; install it with `pip install 'hnggml[train]'`"
        ) from None
    return LogisticRegression


def logistic(l1: bool, C: float, seed: int = 0):
    """Return an unfitted LogisticRegression, L1 (liblinear) or L2 (lbfgs), balanced classes."""
    import sklearn

    LogisticRegression = _sklearn()
    new_api = tuple(int(p) for p in sklearn.__version__.split(".")[:2]) >= (1, 8)
    if l1:
        extra = {"l1_ratio": 1.0} if new_api else {"penalty": "l1"}
        return LogisticRegression(C=C, solver="liblinear", class_weight="balanced",
                                  max_iter=2000, random_state=seed, **extra)
    return LogisticRegression(C=C, solver="lbfgs", class_weight="balanced", max_iter=5000)


# Feature capture ----------------------------------------------------------------


def capture_features(forcer, kept: list[Sampled], out_dir: str | os.PathLike,
                     show_progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Capture mean CETT of every neuron for each kept question, resumably.

    Returns (X, S): X is (n, n_layer * n_ff) float32, S is (n, len(SIGNALS))
    float64. Rows are stored in out_dir/features.npy as they finish, with a
    done mask, so a restarted run continues where it stopped.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n, width = len(kept), forcer.n_layer * forcer.n_ff
    ids = [s.record["id"] for s in kept]
    ids_file, x_file = out_dir / "feature_ids.json", out_dir / "features.npy"
    s_file, done_file = out_dir / "signals.npy", out_dir / "done.npy"
    fresh = not (ids_file.exists() and json.loads(ids_file.read_text()) == ids and x_file.exists())
    if fresh:
        X = np.lib.format.open_memmap(x_file, mode="w+", dtype=np.float32, shape=(n, width))
        S = np.zeros((n, len(SIGNALS)))
        done = np.zeros(n, dtype=bool)
        np.save(s_file, S)
        np.save(done_file, done)
        ids_file.write_text(json.dumps(ids))
    else:
        X = np.load(x_file, mmap_mode="r+")
        S = np.load(s_file)
        done = np.load(done_file)
    progress = Progress(int((~done).sum()), "capturing CETT", enabled=show_progress)
    for i, sampled in enumerate(kept):
        if done[i]:
            continue
        rep = sampled.representative()
        cap = forcer.capture(sampled.record["prompt_tokens"], rep["tokens"])
        X[i] = cap.features("mean")
        signals = cap.signals()
        S[i] = [signals[name] for name in SIGNALS]
        done[i] = True
        if i % 25 == 0 or i == n - 1:
            X.flush()
            _save_npy(s_file, S)
            _save_npy(done_file, done)
        progress.update()
    X.flush()
    _save_npy(s_file, S)
    _save_npy(done_file, done)
    return np.asarray(X), S


def _save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


# Fitting -------------------------------------------------------------------------


@dataclass
class NeuronFit:
    """The neuron stage: selected features and coefficients on raw CETT."""

    columns: np.ndarray           # flat feature indices (layer * n_ff + neuron)
    coef: np.ndarray              # on raw CETT
    intercept: float
    l1_nonzero: int
    C: float
    extra: dict[str, Any] = field(default_factory=dict)

    def logit(self, X: np.ndarray) -> np.ndarray:
        return X[:, self.columns].astype(np.float64) @ self.coef + self.intercept


def _standardise(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = X.mean(axis=0, dtype=np.float64)
    scale = X.std(axis=0, dtype=np.float64)
    scale[scale < 1e-12] = 1.0
    return mean, scale


def fit_neurons(X: np.ndarray, y: np.ndarray, C: float, seed: int = 0, refit_C: float = 1.0) -> NeuronFit:
    """Fit L1 on standardised CETT, keep positive coefficients, refit L2 on them."""
    mean, scale = _standardise(X)
    Z = (X - mean.astype(np.float32)) / scale.astype(np.float32)
    l1 = logistic(True, C, seed).fit(Z, y)
    coef = l1.coef_.ravel()
    columns = np.flatnonzero(coef > 0)
    if len(columns) == 0:
        return NeuronFit(columns=columns, coef=np.zeros(0), intercept=float(l1.intercept_[0]),
                         l1_nonzero=int((coef != 0).sum()), C=C)
    Zs = Z[:, columns]
    l2 = logistic(False, refit_C).fit(Zs, y)
    raw_coef = l2.coef_.ravel() / scale[columns]
    intercept = float(l2.intercept_[0] - np.sum(l2.coef_.ravel() * mean[columns] / scale[columns]))
    return NeuronFit(columns=columns, coef=raw_coef, intercept=intercept,
                     l1_nonzero=int((coef != 0).sum()), C=C)


def fit_columns(X: np.ndarray, y: np.ndarray, columns: np.ndarray, C: float = 1.0) -> NeuronFit:
    """Fit an L2 logistic regression on given columns (the random-neuron control)."""
    Xs = X[:, columns]
    mean, scale = _standardise(Xs)
    model = logistic(False, C).fit((Xs - mean) / scale, y)
    coef = model.coef_.ravel() / scale
    intercept = float(model.intercept_[0] - np.sum(model.coef_.ravel() * mean / scale))
    return NeuronFit(columns=np.asarray(columns), coef=coef, intercept=intercept,
                     l1_nonzero=len(columns), C=C)


def cross_fit_columns(X: np.ndarray, y: np.ndarray, columns: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Return out-of-fold logits of an L2 fit on fixed columns."""
    out = np.zeros(len(y))
    for f in np.unique(folds):
        test = folds == f
        out[test] = fit_columns(X[~test], y[~test], columns).logit(X[test])
    return out


def stratified_folds(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Return a fold number for each sample, balanced over the two classes."""
    rng = np.random.default_rng(seed)
    folds = np.empty(len(y), dtype=int)
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        rng.shuffle(idx)
        folds[idx] = np.arange(len(idx)) % k
    return folds


def cross_fit(X: np.ndarray, y: np.ndarray, C: float, folds: np.ndarray, seed: int = 0) -> np.ndarray:
    """Return out-of-fold neuron-stage logits."""
    out = np.zeros(len(y))
    for f in np.unique(folds):
        test = folds == f
        fit = fit_neurons(X[~test], y[~test], C, seed)
        out[test] = fit.logit(X[test]) if len(fit.columns) else fit.intercept
    return out


def choose_C(X: np.ndarray, y: np.ndarray, grid: list[float], folds: np.ndarray,
             seed: int = 0, show_progress: bool = True) -> tuple[float, dict[float, float]]:
    """Pick C by out-of-fold AUROC of the whole neuron stage."""
    from .stats import auroc

    scores = {}
    progress = Progress(len(grid), "choosing C", enabled=show_progress)
    for C in grid:
        scores[C] = float(auroc(y, cross_fit(X, y, C, folds, seed)))
        progress.update(note=f"C={C} AUROC={scores[C]:.3f}")
    best = max(grid, key=lambda c: (round(scores[c], 3), c))
    return best, scores


def fit_combiner(h_logit: np.ndarray, S: np.ndarray, y: np.ndarray,
                 inputs: list[str] | None = None) -> dict[str, Any]:
    """Fit the second stage on out-of-fold neuron logits and logit signals.

    ``inputs`` selects the columns (default :data:`COMBINER_INPUTS`); a single
    signal gives a calibrated version of that signal.
    """
    inputs = list(COMBINER_INPUTS if inputs is None else inputs)
    columns = {"h_logit": h_logit, **{name: S[:, i] for i, name in enumerate(SIGNALS)}}
    Xc = np.column_stack([columns[name] for name in inputs])
    mean, scale = _standardise(Xc)
    model = logistic(False, 1.0).fit((Xc - mean) / scale, y)
    return {
        "inputs": inputs,
        "mean": mean,
        "scale": scale,
        "coef": model.coef_.ravel(),
        "intercept": float(model.intercept_[0]),
    }


def combiner_logit(params: dict[str, Any], h_logit: np.ndarray, S: np.ndarray) -> np.ndarray:
    columns = {"h_logit": h_logit, **{name: S[:, i] for i, name in enumerate(SIGNALS)}}
    Xc = np.column_stack([columns[name] for name in params["inputs"]])
    return ((Xc - params["mean"]) / params["scale"]) @ params["coef"] + params["intercept"]


# Choosing the default risk ------------------------------------------------------------

# Candidates for the default risk: the column of the leave-one-group-out
# summary that scores each, and the second-stage inputs that compute it
# (None: the neuron stage alone, with no second stage).
DEFAULT_RISK_CANDIDATES: dict[str, list[str] | None] = {
    "combined": list(COMBINER_INPUTS),
    "signals": ["entropy", "neg_logprob", "one_minus_min_prob"],
    "h_neurons": None,
    "entropy": ["entropy"],
    "neg_logprob": ["neg_logprob"],
    "one_minus_min_prob": ["one_minus_min_prob"],
}
_LOCO_KEYS = {"combined": "risk", "signals": "risk_without_neurons"}


def choose_default_risk(X: np.ndarray, S: np.ndarray, y: np.ndarray, categories: list[str], C: float,
                        seed: int = 0) -> dict[str, Any] | None:
    """Pick the default risk by its mean AUROC on held-out category groups of the training questions.

    Each group of categories (:func:`hnggml.analysis.category_group`) with at
    least 5 right and 5 wrong answers is left out in turn, and every candidate
    of :data:`DEFAULT_RISK_CANDIDATES` is fitted on the other groups and
    scored on it. Returns ``{"choice", "inputs", "loco_auroc", "groups"}``, or
    None when no group qualifies.
    """
    from .analysis import category_group, leave_one_group_out

    loco = leave_one_group_out(X, S, y, [category_group(c) for c in categories], C, seed)
    if not loco["rows"]:
        return None
    scores = {}
    for name in DEFAULT_RISK_CANDIDATES:
        entry = loco["summary"].get(_LOCO_KEYS.get(name, name))
        if entry is not None:
            scores[name] = entry["mean"]
    choice = max(scores, key=lambda name: (scores[name], name == "combined"))
    return {"choice": choice, "inputs": DEFAULT_RISK_CANDIDATES[choice], "loco_auroc": scores,
            "groups": [row["group"] for row in loco["rows"]]}


def out_of_fold_combiner(h_oof: np.ndarray, S: np.ndarray, y: np.ndarray, folds: np.ndarray,
                         inputs: list[str]) -> np.ndarray:
    """Return out-of-fold second-stage logits for ``inputs``."""
    out = np.zeros(len(y))
    for f in np.unique(folds):
        test = folds == f
        params = fit_combiner(h_oof[~test], S[~test], y[~test], inputs)
        out[test] = combiner_logit(params, h_oof[test], S[test])
    return out


# Pipeline ------------------------------------------------------------------------


def load_questions(paths: list[str | os.PathLike]) -> list:
    """Load and concatenate question files; ids must be unique across them."""
    from .datasets import load_any

    items, seen = [], set()
    for path in paths:
        for item in load_any(path):
            if item.id in seen:
                raise ValueError(f"question id {item.id!r} appears twice (second time in {path}); ids must be unique")
            seen.add(item.id)
            items.append(item)
    return items


def select_questions(items: list, max_per_relation: int | None) -> list:
    """Keep at most max_per_relation questions of each generated relation.

    Generated questions have sources "kb:<package>:<relation>"; capping each
    relation keeps the few high-volume templates from dominating the data.
    Hand-written questions are all kept. The input order decides which stay.
    """
    if not max_per_relation:
        return list(items)
    counts: dict[str, int] = {}
    kept = []
    for item in items:
        if item.source.startswith("kb:"):
            counts[item.source] = counts.get(item.source, 0) + 1
            if counts[item.source] > max_per_relation:
                continue
        kept.append(item)
    return kept


def _youden_threshold(y: np.ndarray, p: np.ndarray) -> float:
    best, best_j = 0.5, -1.0
    for t in np.unique(np.round(p, 3)):
        pred = p >= t
        tpr = pred[y == 1].mean() if (y == 1).any() else 0.0
        fpr = pred[y == 0].mean() if (y == 0).any() else 0.0
        if tpr - fpr > best_j:
            best, best_j = float(t), tpr - fpr
    return best


def train(
    model: str | os.PathLike | None,
    data: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    probe_path: str | os.PathLike,
    n_samples: int = 5,
    max_questions: int | None = None,
    max_per_relation: int | None = None,
    seed: int = 0,
    C: float | None = None,
    C_grid: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0),
    n_threads: int | None = None,
    style=None,
    show_progress: bool = True,
    decoding: str = "sample",
    labels: str = "consistent",
):
    """Run the whole pipeline and write the probe; returns the HProbe.

    Every stage writes into out_dir and resumes from it, so rerunning the
    same command after an interruption continues where it stopped.
    """
    import llama_cpp

    from . import __version__
    from .capture import TeacherForcer
    from .collect import collect, consistent, first_samples
    from .llama import Llama
    from .probe import Combiner, HProbe
    from .prompting import default_style
    from .stats import auroc

    import sklearn

    _sklearn()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    items = load_questions(list(data))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(items))
    items = select_questions([items[i] for i in order], max_per_relation)[: max_questions or None]

    llm = Llama(model, probe=False, n_ctx=1024, n_batch=512, seed=seed, n_threads=n_threads, n_threads_batch=n_threads, verbose=False)
    info = llm.model_info
    if style is None:
        style = default_style(info.architecture, "tokenizer.chat_template" in llm.metadata)
    logger.info("training on %d questions with %s prompts", len(items), style.style)
    samples_file = out_dir / ("samples.jsonl" if decoding == "sample" else f"samples-{decoding}.jsonl")
    records = collect(llm, items, samples_file, style, n_samples, seed, show_progress, decoding)
    wanted = {item.id for item in items}
    records = [r for r in records if r.record["id"] in wanted]
    if labels not in ("consistent", "first"):
        raise ValueError(f"invalid labels {labels!r}; use 'consistent' or 'first'")
    kept = consistent(records) if labels == "consistent" else first_samples(records)
    y = np.array([s.label for s in kept])
    if len(kept) < 20 or y.min() == y.max():
        raise ValueError(
            f"only {len(kept)} consistently answered questions ({int(y.sum()) if len(y) else 0} wrong); "
            "add questions or samples"
        )
    forcer = TeacherForcer(llm, max_tokens=512)
    feature_dir = out_dir if decoding == "sample" else out_dir / decoding
    if labels == "first":
        feature_dir = feature_dir / "first"
    X, S = capture_features(forcer, kept, feature_dir, show_progress)
    np.save(feature_dir / "labels.npy", y)

    folds = stratified_folds(y, 5, seed)
    C_scores = {}
    if C is None:
        C, C_scores = choose_C(X, y, list(C_grid), folds, seed, show_progress)
    fit = fit_neurons(X, y, C, seed)
    if len(fit.columns) == 0:
        raise ValueError(f"the L1 fit at C={C} kept no neuron with a positive coefficient; try a larger C")
    oof = cross_fit(X, y, C, folds, seed)
    metrics: dict[str, Any] = {"cv_auroc": {"h_neurons": float(auroc(y, oof))}}
    for i, name in enumerate(SIGNALS):
        metrics["cv_auroc"][name] = float(auroc(y, S[:, i]))

    # The second stage is trained on out-of-fold neuron logits. Which risk
    # becomes the default is decided on category groups left out of training,
    # because cross-validation over the same categories rewards recognising
    # the question type. Without a qualifying group, the combination is kept
    # when its own out-of-fold AUROC beats every single signal.
    comb_oof = out_of_fold_combiner(oof, S, y, folds, list(COMBINER_INPUTS))
    metrics["cv_auroc"]["combined"] = float(auroc(y, comb_oof))
    categories = [sample.record.get("category", "") for sample in kept]
    selection = choose_default_risk(X, S, y, categories, C, seed)
    if selection is not None:
        inputs = selection["inputs"]
        metrics["loco_auroc"] = selection["loco_auroc"]
        metrics["loco_groups"] = selection["groups"]
    else:
        best_single = max(v for k, v in metrics["cv_auroc"].items() if k not in ("combined", "n_tokens"))
        inputs = list(COMBINER_INPUTS) if metrics["cv_auroc"]["combined"] > best_single else None
    combiner = None
    risk_oof = oof
    if inputs is not None:
        combiner = Combiner(**fit_combiner(oof, S, y, inputs))
        risk_oof = out_of_fold_combiner(oof, S, y, folds, inputs)
    metrics["cv_auroc"]["risk"] = float(auroc(y, risk_oof))
    threshold = _youden_threshold(y, 1.0 / (1.0 + np.exp(-risk_oof)))

    # Random-neuron controls: as many neurons as the probe keeps, refit the
    # same way, one set per seed.
    controls = []
    for k in range(5):
        pick = np.sort(np.random.default_rng(1000 + k).choice(X.shape[1], size=len(fit.columns), replace=False))
        control = fit_columns(X, y, pick)
        controls.append({
            "neurons": np.column_stack([pick // info.n_ff, pick % info.n_ff]).tolist(),
            "coef": control.coef.tolist(),
            "intercept": control.intercept,
        })
        metrics.setdefault("cv_auroc_random_neurons", []).append(
            float(auroc(y, cross_fit_columns(X, y, pick, folds))))
    metrics["thresholds"] = {
        name: _youden_threshold(y, S[:, i]) for i, name in enumerate(SIGNALS)
    }

    columns = fit.columns
    neurons = np.column_stack([columns // info.n_ff, columns % info.n_ff])
    probe = HProbe(
        model={
            "architecture": info.architecture, "n_layer": info.n_layer, "n_ff": info.n_ff,
            "n_embd": info.n_embd, "name": info.name, "file": Path(info.path).name,
            "ffn_down_sha256": info.ffn_down_sha256,
        },
        neurons_=neurons,
        coef_=fit.coef,
        intercept_=fit.intercept,
        w_norm_=forcer.w_norm[neurons[:, 0], neurons[:, 1]],
        nodes={"z": llm.nodes.z, "h": llm.nodes.h},
        llama_cpp_version=llama_cpp.__version__,
        aggregation="mean",
        threshold=threshold,
        combiner=combiner,
        prompt={**style.to_dict(), "decoding": decoding},
        training={
            "data": [Path(p).name for p in data],
            "n_questions": len(records),
            "n_consistent": len(kept),
            "n_hallucinated": int(y.sum()),
            "n_samples": n_samples if decoding == "sample" else 1,
            "decoding": decoding,
            "labels": labels,
            "sampling": "temperature 1.0, top-p 0.9, top-k 50" if decoding == "sample" else "greedy",
            "C": C,
            "C_grid_cv_auroc": {str(k): v for k, v in C_scores.items()},
            "l1_nonzero": fit.l1_nonzero,
            "seed": seed,
            "default_risk": selection["choice"] if selection is not None else
            ("combined" if inputs is not None else "h_neurons"),
            "default_risk_rule": "best mean leave-one-group-out AUROC" if selection is not None else
            "cross-validated AUROC",
        },
        metrics=metrics,
        controls=controls,
        versions={"hnggml": __version__, "scikit-learn": sklearn.__version__,
                  "llama-cpp-python": llama_cpp.__version__},
    )
    probe.save(probe_path)
    llm.close()
    return probe
