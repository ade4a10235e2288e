"""Score every detection signal on the same labels: `hnggml eval`.

Each question is answered once with the probe's prompt and the decoding the
probe was trained with (greedy, or temperature 1.0, top-p 0.9, top-k 50,
seeded), the answer is judged, and these signals are read for it:

- risk: the default score hnggml.Llama returns, computed during generation;
- h_neurons: the probe's neuron stage alone;
- random_neurons: control probes on as many random neurons, trained the same
  way (mean AUROC over the controls, with the spread);
- entropy, logprob (negative mean log-probability of the answer tokens) and
  one_minus_min_prob, all from the logits seen during generation.

The neuron features of each answer come from teacher forcing it through a
second instance that captures every neuron, so the controls and the
aggregation variants can be scored without regenerating. Results are
appended per question to a JSONL file, so an interrupted run resumes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from .collect import DECODING, _append, _repair_tail, check_run_config, read_records
from .datasets import QAItem, load_any
from .judge import judge
from .progress import Progress
from .prompting import PromptStyle, ask
from .stats import auroc, balanced_accuracy, bootstrap_ci

logger = logging.getLogger(__name__)

SIGNALS = ("h_neurons", "random_neurons", "entropy", "logprob", "one_minus_min_prob", "risk")


def label_of(verdict: str, answerable: bool) -> int | None:
    """1 for a hallucination, 0 for a faithful answer, None when set aside.

    For an answerable question a refusal is set aside; for a question about
    something that does not exist, a refusal is the faithful answer.
    """
    if not answerable:
        return 0 if verdict == "correct" else 1
    if verdict == "refusal":
        return None
    return 1 if verdict == "wrong" else 0


def _logit_to_prob(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def answer_and_score(llm, forcer, items: list[QAItem], file_name: str, out_path: Path,
                     features_dir: Path | None, seed: int = 0, show_progress: bool = True) -> None:
    """Answer each item once and append its signals to out_path (resumable)."""
    probe = llm.probe
    style = PromptStyle.from_dict(probe.prompt)
    decoding = DECODING[probe.prompt.get("decoding", "sample")]
    n_ff = llm.model_info.n_ff
    columns = probe.neurons_[:, 0] * n_ff + probe.neurons_[:, 1]
    controls = [
        (np.asarray(c["neurons"])[:, 0] * n_ff + np.asarray(c["neurons"])[:, 1], np.asarray(c["coef"]), c["intercept"])
        for c in probe.controls
    ]
    _repair_tail(out_path)
    stored = {r["id"]: r for r in read_records(out_path)}
    for item in items:
        record = stored.get(item.id)
        if record is not None and (record.get("question") != item.question
                                   or record.get("answerable", True) != item.answerable):
            raise ValueError(
                f"{out_path} contains a result for id {item.id!r} with the question {record.get('question')!r}, but "
                f"{file_name} now asks {item.question!r}; pass a different --out folder or delete {out_path}"
            )
    todo = [item for item in items if item.id not in stored]
    progress = Progress(len(todo), f"evaluating {file_name}", enabled=show_progress)
    for item in todo:
        result = ask(llm, item.question, style, seed=seed, **decoding)
        report = result["report"] or {}
        request = llm.last_request
        verdict = judge(result["text"], list(item.answers), item.answerable)
        n = int(report.get("n_tokens", 0))
        record: dict[str, Any] = {
            "id": item.id, "file": file_name, "category": item.category, "answerable": item.answerable,
            "question": item.question, "text": result["text"], "verdict": verdict,
            "label": label_of(verdict, item.answerable), "n_tokens": n,
        }
        tokens = request.tokens if request is not None else []
        if not tokens or report.get("risk") is None:
            record["skipped"] = "no answer tokens"
            _append(out_path, record)
            progress.update()
            continue
        k = max(n, 1)
        # Teacher-force the answer plus the token that ended it, when there is one,
        # so the whole-response aggregation can include it.
        whole = tokens[: k + 1]
        capture = forcer.capture(request.prompt_tokens, whole)
        answer_rows = capture.rows[:k]
        mean = answer_rows.mean(axis=0)
        signals = report["signals"]
        record.update({
            "risk": report["risk"],
            "h_neurons": float(_logit_to_prob(mean[columns].astype(np.float64) @ probe.coef_ + probe.intercept_)),
            "h_neurons_max": float(_logit_to_prob(answer_rows.max(axis=0)[columns] @ probe.coef_ + probe.intercept_)),
            "h_neurons_whole": float(_logit_to_prob(capture.rows.mean(axis=0)[columns] @ probe.coef_ + probe.intercept_)),
            "random_neurons": [float(_logit_to_prob(mean[cols] @ coef + b)) for cols, coef, b in controls],
            "entropy": signals["entropy"],
            "logprob": signals["neg_logprob"],
            "one_minus_min_prob": signals["one_minus_min_prob"],
        })
        if features_dir is not None:
            features_dir.mkdir(parents=True, exist_ok=True)
            np.save(features_dir / f"{item.id}.npy", mean.astype(np.float16))
        _append(out_path, record)
        progress.update()


def _signal_values(records: list[dict[str, Any]], name: str) -> np.ndarray:
    if name == "random_neurons":
        return np.array([r["random_neurons"] for r in records], dtype=float).reshape(len(records), -1)
    return np.array([r[name] for r in records], dtype=float)


def _mean_auroc(y: np.ndarray, values: np.ndarray) -> float:
    return float(np.mean([auroc(y, values[:, k]) for k in range(values.shape[1])]))


def _threshold(probe, name: str, values: np.ndarray) -> float:
    if name in ("risk",):
        return probe.threshold
    if name in ("h_neurons", "random_neurons"):
        return 0.5
    key = {"logprob": "neg_logprob"}.get(name, name)
    return float(probe.metrics.get("thresholds", {}).get(key, np.median(values)))


def score_signals(records: list[dict[str, Any]], probe, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """AUROC with a bootstrap 95% interval and balanced accuracy for every signal."""
    scored = [r for r in records if r.get("label") is not None and "risk" in r]
    y = np.array([r["label"] for r in scored], dtype=int)
    out: dict[str, Any] = {"n": len(scored), "n_hallucinated": int(y.sum()), "signals": {}}
    if len(scored) == 0 or y.min() == y.max():
        out["note"] = "AUROC needs both right and wrong answers; this set has one class only"
        return out
    for name in SIGNALS:
        values = _signal_values(scored, name)
        if name == "random_neurons":
            if values.shape[1] == 0:
                continue
            per_seed = [auroc(y, values[:, k]) for k in range(values.shape[1])]
            entry = {
                "auroc": float(np.mean(per_seed)),
                "auroc_sd": float(np.std(per_seed)),
                "auroc_seeds": [float(v) for v in per_seed],
                # The interval covers the same statistic as the point: the mean AUROC over the controls.
                "auroc_ci95": list(bootstrap_ci(_mean_auroc, y, values, n_boot=n_boot, seed=seed, stratify=y)),
                "balanced_accuracy": float(np.mean([balanced_accuracy(y, values[:, k] >= 0.5)
                                                    for k in range(values.shape[1])])),
            }
        else:
            entry = {
                "auroc": float(auroc(y, values)),
                "auroc_ci95": list(bootstrap_ci(auroc, y, values, n_boot=n_boot, seed=seed, stratify=y)),
                "balanced_accuracy": float(balanced_accuracy(y, values >= _threshold(probe, name, values))),
            }
        out["signals"][name] = entry
    return out


def evaluate(model, probe_path, files: list[str | os.PathLike], out_dir: str | os.PathLike,
             seed: int = 0, n_threads: int | None = None, limit: int | None = None,
             keep_features: bool = False, show_progress: bool = True) -> dict[str, Any]:
    """Run `hnggml eval`: answer, judge and score every file; return the summary dict."""
    from .capture import TeacherForcer
    from .llama import Llama

    out_dir = Path(out_dir)
    _check_files(files)
    out_dir.mkdir(parents=True, exist_ok=True)
    llm = Llama(model, probe=probe_path, n_ctx=1024, seed=seed, n_threads=n_threads, n_threads_batch=n_threads, verbose=False)
    if not llm.probe.controls:
        logger.warning("the probe has no random-neuron controls; random_neurons is not scored")
    probe_json = json.dumps(llm.probe.to_dict(), sort_keys=True, default=str).encode()
    check_run_config(out_dir, {"model_ffn_down_sha256": llm.model_info.ffn_down_sha256,
                               "probe_sha256": hashlib.sha256(probe_json).hexdigest(), "seed": seed},
                     label="another model, probe or seed")
    full = Llama(model, probe=False, n_ctx=512, n_batch=512, n_threads=n_threads, n_threads_batch=n_threads, verbose=False)
    forcer = TeacherForcer(full, max_tokens=512)
    summary: dict[str, Any] = {"files": {}}
    all_records: list[dict[str, Any]] = []
    for path in files:
        items = load_any(path)[: limit or None]
        name = Path(path).name
        out_path = out_dir / f"{Path(path).stem}.jsonl"
        answer_and_score(llm, forcer, items, name, out_path,
                         out_dir / "features" if keep_features else None, seed, show_progress)
        wanted = {item.id for item in items}
        records = [r for r in read_records(out_path) if r["id"] in wanted]
        summary["files"][name] = score_signals(records, llm.probe, seed=seed)
        all_records.extend(records)
    summary.update(score_signals(all_records, llm.probe, seed=seed))
    summary["model"] = llm.model_info.name
    summary["probe"] = str(probe_path) if probe_path else "shipped"
    llm.close()
    full.close()
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def _check_files(files: list[str | os.PathLike]) -> None:
    """Reject a file given twice, or two files whose results would share one file name."""
    seen: dict[str, Path] = {}
    for path in files:
        resolved = Path(path).resolve()
        stem = Path(path).stem
        if stem in seen:
            if seen[stem] == resolved:
                raise ValueError(f"{path} is given twice; pass each data file once")
            raise ValueError(f"{seen[stem]} and {path} would share the result file {stem}.jsonl; "
                             "rename one of them")
        seen[stem] = resolved


def format_table(summary: dict[str, Any]) -> str:
    """Render the summary as a readable text table."""
    lines = []

    def block(title: str, part: dict[str, Any]) -> None:
        lines.append(f"{title}: n={part.get('n', 0)}, hallucinated={part.get('n_hallucinated', 0)}")
        if part.get("note"):
            lines.append(f"  {part['note']}")
        for name, entry in part.get("signals", {}).items():
            lo, hi = entry["auroc_ci95"]
            spread = f" ±{entry['auroc_sd']:.3f} over {len(entry['auroc_seeds'])} seeds" if "auroc_sd" in entry else ""
            lines.append(f"  {name:<20} AUROC {entry['auroc']:.3f} [{lo:.3f}, {hi:.3f}]{spread}"
                         f"  balanced acc {entry['balanced_accuracy']:.3f}")

    block("all files", summary)
    for name, part in summary.get("files", {}).items():
        block(name, part)
    return "\n".join(lines)
