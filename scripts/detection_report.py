"""Write docs/detection.md: every signal on every set, and the controls.

For each model given as NAME=MODEL_PATH,TRAINING_RUN_DIR,PROBE_PATH it
1. runs `hnggml eval` on the held-out trivia, biomedical and fabricated-entity
   sets (resumable, in --eval-dir/NAME);
2. reads the training run's stored features for the leave-one-group-out
   table, the category-only baseline and the C sweep;
3. draws ROC curves and the risk-against-length plot into docs/img/.

Example (the command behind the shipped report):
    python scripts/detection_report.py \
      --model gemma=~/.cache/hnggml/models/gemma-3-270m-q4_k_m.gguf,runs/gemma,probes/gemma-3-270m-q4_k_m.json \
      --model qwen=qwen.gguf,runs/qwen,probes/qwen2.5-coder-0.5b-instruct-q4_k_m.json
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from report_sections import write_report  # noqa: E402
SETS = ("heldout_trivia.jsonl", "biomedical.jsonl", "nonexistent.jsonl")
SIGNAL_LABELS = {
    "risk": "risk (default)",
    "h_neurons": "H-neurons alone",
    "random_neurons": "random neurons",
    "entropy": "token entropy",
    "logprob": "mean log-probability",
    "one_minus_min_prob": "1 - min token prob",
}


def fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def features_dir(run_dir: Path) -> Path:
    """Return the folder that contains a training run's features: RUN/ itself, RUN/first/ or RUN/greedy/."""
    for folder in (run_dir, run_dir / "first", run_dir / "greedy"):
        if (folder / "feature_ids.json").exists():
            return folder
    raise FileNotFoundError(f"feature_ids.json not found in {run_dir} or its first/ and greedy/ folders; "
                            "pass the folder of a finished "
                            "`hnggml train --out` run")


def load_run(run_dir: Path):
    from hnggml.collect import read_records

    run_dir = features_dir(run_dir)
    ids = json.loads((run_dir / "feature_ids.json").read_text())
    X = np.load(run_dir / "features.npy", mmap_mode="r")
    S = np.load(run_dir / "signals.npy")
    y = np.load(run_dir / "labels.npy")
    by_id = {r["id"]: r for r in read_records(samples_file(run_dir))}
    categories = [by_id[i]["category"] for i in ids]
    return ids, np.asarray(X, dtype=np.float32), S, y, categories


def samples_file(run_dir: Path) -> Path:
    """Return the collection file behind a feature folder (run/, run/first/ or run/greedy/)."""
    candidates = [run_dir / "samples.jsonl", run_dir.parent / f"samples-{run_dir.name}.jsonl",
                  run_dir.parent / "samples.jsonl"]
    for path in candidates:
        if path.exists():
            return path
    raise FileNotFoundError(f"no samples.jsonl for the features in {run_dir}; pass the folder that "
                            "`hnggml train --out` wrote (or its first/ or greedy/ subfolder)")


def roc_points(y: np.ndarray, score: np.ndarray):
    order = np.argsort(-score, kind="mergesort")
    y = y[order]
    tps = np.concatenate([[0], np.cumsum(y)])
    fps = np.concatenate([[0], np.cumsum(1 - y)])
    return fps / max(fps[-1], 1), tps / max(tps[-1], 1)


def plot_rocs(name: str, records_by_set: dict, img_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    for set_name, records in records_by_set.items():
        scored = [r for r in records if r.get("label") is not None and "risk" in r]
        y = np.array([r["label"] for r in scored])
        if len(scored) == 0 or y.min() == y.max():
            continue
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        for key, label in SIGNAL_LABELS.items():
            values = np.array([np.mean(r[key]) if key == "random_neurons" else r[key] for r in scored], dtype=float)
            if key == "random_neurons" and not scored[0].get("random_neurons"):
                continue
            fpr, tpr = roc_points(y, values)
            ax.plot(fpr, tpr, label=label, linewidth=2 if key == "risk" else 1)
        ax.plot([0, 1], [0, 1], color="grey", linewidth=0.5)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title(f"{name}: {set_name} (n={len(scored)})")
        ax.legend(fontsize=7, loc="lower right")
        path = img_dir / f"roc-{name}-{Path(set_name).stem}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        files.append(path.name)
    return files


def plot_length(name: str, records: list, img_dir: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [r for r in records if r.get("label") is not None and "risk" in r]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    rng = np.random.default_rng(0)
    for label, colour, text in ((0, "tab:green", "right"), (1, "tab:red", "wrong")):
        pick = [r for r in scored if r["label"] == label]
        x = np.array([r["n_tokens"] for r in pick], dtype=float) + rng.uniform(-0.2, 0.2, len(pick))
        ax.scatter(x, [r["risk"] for r in pick], s=8, alpha=0.5, color=colour, label=text)
    ax.set_xlabel("answer length (tokens)")
    ax.set_ylabel("risk")
    ax.set_title(f"{name}: risk against answer length")
    ax.legend()
    path = img_dir / f"length-{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def model_section(name: str, model: str, run_dir: Path, probe_path: Path, eval_dir: Path,
                  limit: int | None, threads: int | None, img_dir: Path,
                  limit_other: int | None = None, command: str = "") -> tuple[str, dict]:
    from hnggml.analysis import (aggregation, c_sensitivity, category_group, category_only,
                                 leave_one_group_out, length_confound)
    from hnggml.collect import read_records
    from hnggml.evaluate import evaluate, score_signals
    from hnggml.probe import HProbe

    probe = HProbe.load(probe_path)
    limits = {s: (limit if s == SETS[0] else (limit_other or limit)) for s in SETS}
    summary: dict = {"files": {}}
    for s in SETS:
        part = evaluate(model, probe_path, [str(ROOT / "data" / s)], eval_dir, n_threads=threads, limit=limits[s],
                        keep_features=True)
        summary["files"].update(part["files"])
        summary["model"] = part["model"]
    records_by_set = {s: read_records(eval_dir / f"{Path(s).stem}.jsonl")[: limits[s] or None] for s in SETS}

    lines = [f"## {name}: {summary['model']}", "", f"Generated by `{command}` on {date.today()}.", ""]
    t = probe.training
    lines += [
        f"Probe `{probe_path.name}`: {probe.n_neurons} neurons of "
        f"{probe.model['n_layer'] * probe.model['n_ff']} "
        f"({probe.n_neurons / (probe.model['n_layer'] * probe.model['n_ff']) * 1000:.2f} per mille), C = {t.get('C')}, "
        f"trained on {training_note(t)}. {default_risk_note(probe)}",
        "",
        f"The leave-one-group-out table, the consistency counts and the C sweep use the features of the "
        f"training run in `{run_dir}` ({run_note(run_dir)}).",
        "",
        "### Held-out sets (one sampled answer per question)",
        "",
        "| set | n | wrong | " + " | ".join(SIGNAL_LABELS.values()) + " |",
        "|---|---|---|" + "---|" * len(SIGNAL_LABELS),
    ]
    for set_name in SETS:
        part = summary["files"].get(set_name, {})
        cells = []
        for key in SIGNAL_LABELS:
            entry = part.get("signals", {}).get(key)
            if entry is None:
                cells.append("n/a")
            else:
                lo, hi = entry["auroc_ci95"]
                cells.append(f"{entry['auroc']:.3f} [{lo:.2f}, {hi:.2f}]")
        lines.append(f"| {set_name} | {part.get('n', 0)} | {part.get('n_hallucinated', 0)} | " + " | ".join(cells) + " |")
    lines += ["", "AUROC for y = hallucinated, with a stratified bootstrap 95% interval (1,000 resamples). "
              "Random neurons: the mean over 5 control probes of the same size.", ""]
    nonexist = summary["files"].get("nonexistent.jsonl", {})
    if nonexist.get("note"):
        trivia = [r for r in records_by_set["heldout_trivia.jsonl"] if r.get("label") == 0 and "risk" in r]
        fake = [r for r in records_by_set["nonexistent.jsonl"] if r.get("label") == 1 and "risk" in r]
        pooled = score_signals(trivia + fake, probe)
        lines += [
            f"The fabricated-entity set has one class only: the model refused "
            f"{sum(1 for r in records_by_set['nonexistent.jsonl'] if r.get('label') == 0)} of "
            f"{len(records_by_set['nonexistent.jsonl'])} questions, so its AUROC is undefined. Instead, its "
            f"answers (all hallucinated) are ranked against the correct held-out trivia answers:",
            "",
            "| signal | AUROC, fabricated-entity answers against correct trivia answers |",
            "|---|---|",
        ]
        for key, label in SIGNAL_LABELS.items():
            entry = pooled.get("signals", {}).get(key)
            lines.append(f"| {label} | {fmt(entry['auroc']) if entry else 'n/a'} |")
        lines.append("")

    # Leave-one-group-out and the other controls from the training features.
    ids, X, S, y, categories = load_run(run_dir)
    groups = [category_group(c) for c in categories]
    C = float(t.get("C"))
    loco = leave_one_group_out(X, S, y, groups, C)
    lines += ["### Leave one category group out (training corpus, teacher-forced answers)", "",
              "Each group's questions are left out in turn; the neuron stage and the second stage are fitted on "
              "the other groups only. \"risk without neurons\" is the same second stage fitted on the logit "
              "signals alone, so the difference between the two risk columns is what the H-neurons add. Groups "
              "with fewer than 5 right or 5 wrong answers are not scored.", "",
              f"Questions of the training run, labelled as for the probe ({len(y)} questions):", "",
              *loco_table(loco)]
    first_dir = run_dir / "first"
    if features_dir(run_dir) != first_dir and (first_dir / "feature_ids.json").exists():
        # The same run labelled by each question's first sampled answer keeps
        # every question, so more category groups have both classes.
        _, X1, S1, y1, categories1 = load_run(first_dir)
        loco_first = leave_one_group_out(X1, S1, y1, [category_group(c) for c in categories1], C)
        lines += ["", f"The same run with every question labelled by its first sampled answer ({len(y1)} questions, "
                  f"{int(y1.sum())} hallucinated), as `hnggml eval` labels held-out answers:", "",
                  *loco_table(loco_first)]
        loco = {**loco, "first_answer": loco_first}
    cat_auroc = category_only(y, categories)
    lines += ["", f"Category-only baseline (logistic regression on the one-hot category, 5-fold): AUROC {cat_auroc:.3f} "
              f"on the same {len(y)} training questions. Cross-validated AUROC of the full probe on them: "
              f"{fmt(probe.metrics.get('cv_auroc', {}).get('risk'))}.", ""]

    sampled_file = samples_file(features_dir(run_dir))
    if t.get("decoding", "sample") == "sample":
        from hnggml.analysis import consistency_survival

        survival = consistency_survival(read_records(sampled_file))
        total = {k: sum(r[k] for r in survival) for k in ("n", "all_right", "all_wrong", "mixed_or_refusal")}
        lines += [f"### Consistency filter (up to {t.get('n_samples')} answers at temperature 1.0, top-p 0.9, "
                  "top-k 50)", "",
                  "Sampling stops early once a question has both a right and a wrong answer. "
                  f"The probe's labels: {label_note(t)}", "",
                  "| category | questions | all right | all wrong | mixed or refusal |", "|---|---|---|---|---|"]
        lines += [f"| {r['category']} | {r['n']} | {r['all_right']} | {r['all_wrong']} | {r['mixed_or_refusal']} |"
                  for r in survival]
        lines += [f"| **all** | {total['n']} | {total['all_right']} | {total['all_wrong']} | "
                  f"{total['mixed_or_refusal']} |", ""]

    # C sweep: train on the training features, test on held-out trivia features.
    heldout = [r for r in records_by_set["heldout_trivia.jsonl"] if r.get("label") is not None and "risk" in r]
    feat_dir = eval_dir / "features"
    have = [r for r in heldout if (feat_dir / f"{r['id']}.npy").exists()]
    if have:
        X_test = np.stack([np.load(feat_dir / f"{r['id']}.npy").astype(np.float32) for r in have])
        y_test = np.array([r["label"] for r in have])
        sweep = c_sensitivity(X, y, X_test, y_test, [0.01, 0.03, 0.1, 0.3, 1.0, 3.0])
        lines += ["### Sensitivity to C (L1 strength)", "",
                  "| C | neurons kept (positive) | non-zero L1 coefficients | held-out trivia AUROC (H-neurons) |",
                  "|---|---|---|---|"]
        for r in sweep:
            lines.append(f"| {r['C']} | {r['neurons']} | {r['l1_nonzero']} | {fmt(r['heldout_auroc'])} |")
        lines.append("")

    all_records = [r for s in SETS[:2] for r in records_by_set[s]]
    lc = length_confound(all_records)
    lines += ["### Response length", "",
              f"Answer length alone (tokens) reaches AUROC {fmt(lc['length_auroc'])} on the held-out trivia and "
              "biomedical answers. Within length bins:", "",
              "| answer tokens | n | wrong | risk | H-neurons | entropy | mean log-prob | mean risk (right) | mean risk (wrong) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in lc["bins"]:
        lines.append(f"| {r['tokens']} | {r['n']} | {r['n_hallucinated']} | {fmt(r['risk'])} | {fmt(r['h_neurons'])} | "
                     f"{fmt(r['entropy'])} | {fmt(r['logprob'])} | {fmt(r['mean_risk_right'])} | {fmt(r['mean_risk_wrong'])} |")
    agg = aggregation(all_records)
    lines += ["", "### Aggregation over tokens (H-neuron stage, held-out trivia and biomedical)", "",
              "| aggregation | AUROC |", "|---|---|"]
    lines += [f"| {k} | {fmt(v)} |" for k, v in agg.items()]
    img_dir.mkdir(parents=True, exist_ok=True)
    rocs = plot_rocs(name, records_by_set, img_dir)
    length_png = plot_length(name, all_records, img_dir)
    lines += ["", "### Against the targets", "", *target_table(summary, loco), ""]
    lines += ["### Plots", ""]
    lines += [f"![ROC {p}](img/{p})" for p in rocs]
    lines += [f"![risk against length](img/{length_png})", ""]
    return "\n".join(lines), {"summary": summary, "loco": loco, "category_only": cat_auroc, "length": lc,
                              "aggregation": agg}


def training_note(training: dict) -> str:
    n, wrong, total = training.get("n_consistent"), training.get("n_hallucinated"), training.get("n_questions")
    if training.get("labels") == "first":
        return (f"{n} questions labelled by their first sampled answer ({wrong} hallucinated) out of {total} "
                f"sampled up to {training.get('n_samples')} times")
    if training.get("decoding") == "greedy":
        return f"{n} questions labelled by their greedy answer ({wrong} hallucinated) out of {total}"
    return (f"{n} consistently answered questions ({wrong} hallucinated) out of {total} sampled up to "
            f"{training.get('n_samples')} times")


def default_risk_note(probe) -> str:
    """Say which score the probe returns as its risk, and how that was chosen."""
    rule = probe.training.get("default_risk_rule", "cross-validated AUROC")
    if probe.combiner is None:
        description = "the neuron stage alone"
    elif "h_logit" in probe.combiner.inputs:
        description = "a second stage over the neuron logit and " + ", ".join(
            name for name in probe.combiner.inputs if name != "h_logit")
    else:
        description = "a second stage over " + ", ".join(probe.combiner.inputs) + ", without the neurons"
    return f"Default risk: {description} (chosen by {rule})."


def run_note(run_dir: Path) -> str:
    """Describe a training run's label counts from its stored labels."""
    y = np.load(features_dir(run_dir) / "labels.npy")
    return f"{len(y)} labelled questions, {int(y.sum())} hallucinated"


def loco_table(loco: dict) -> list[str]:
    """Rows of a leave-one-group-out result: one per held-out group, then the means."""
    lines = [
        "| held-out group | n | wrong | risk | risk without neurons | H-neurons | entropy | mean log-prob | "
        "1 - min prob | neurons |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in loco["rows"]:
        lines.append(f"| {r['group']} | {r['n']} | {r['n_hallucinated']} | {fmt(r['risk'])} | "
                     f"{fmt(r.get('risk_without_neurons'))} | {fmt(r['h_neurons'])} | "
                     f"{fmt(r['entropy'])} | {fmt(r['neg_logprob'])} | {fmt(r['one_minus_min_prob'])} | {r['neurons']} |")
    sm = loco["summary"]
    lines.append("| **mean over groups** | | | " + " | ".join(
        fmt(sm.get(k, {}).get("mean")) for k in ("risk", "risk_without_neurons", "h_neurons", "entropy",
                                                 "neg_logprob", "one_minus_min_prob")) + " | |")
    return lines


def label_note(training: dict) -> str:
    if training.get("labels") == "first":
        return ("the first sampled answer of every question (`--labels first`), because too few questions were "
                "answered right every time for a fit on consistent answers.")
    return "questions answered right every time (label 0) or wrong every time (label 1); mixed ones are dropped."


def target_table(summary: dict, loco: dict) -> list[str]:
    """Rows comparing this model's held-out figures with the detection targets."""

    def auroc(set_name: str, key: str):
        entry = summary["files"].get(set_name, {}).get("signals", {}).get(key)
        return None if entry is None else entry["auroc"]

    def verdict(value, bound):
        if value is None:
            return "not measurable (one class only)"
        return "met" if value >= bound else f"missed by {bound - value:.3f}"

    rows = ["| target | measured | verdict |", "|---|---|---|"]
    trivia, bio, fake = SETS
    risk, ent = auroc(trivia, "risk"), auroc(trivia, "entropy")
    n_trivia = summary["files"].get(trivia, {}).get("n", 0)
    rows.append(f"| risk >= 0.85 on held-out trivia | {fmt(risk)} (n = {n_trivia}) | {verdict(risk, 0.85)} |")
    gap = None if risk is None or ent is None else risk - ent
    rows.append(f"| risk >= entropy + 0.03 on held-out trivia | {fmt(risk)} against {fmt(ent)} | "
                f"{verdict(gap, 0.03)} |")
    for set_name, title in ((bio, "biomedical"), (fake, "fabricated-entity")):
        value = auroc(set_name, "risk")
        n = summary["files"].get(set_name, {}).get("n", 0)
        rows.append(f"| risk >= 0.75 on the {title} set | {fmt(value)} (n = {n}) | {verdict(value, 0.75)} |")
    for set_name in SETS:
        h, rnd = auroc(set_name, "h_neurons"), auroc(set_name, "random_neurons")
        diff = None if h is None or rnd is None else h - rnd
        rows.append(f"| H-neurons >= random neurons + 0.10 on {set_name} | {fmt(h)} against {fmt(rnd)} | "
                    f"{verdict(diff, 0.10)} |")
    variants = [("", loco)]
    if "first_answer" in loco:
        variants.append((", first-answer labels", loco["first_answer"]))
    for note, result in variants:
        sm = result["summary"]
        best_key = max(("entropy", "neg_logprob", "one_minus_min_prob"),
                       key=lambda k: -1.0 if sm.get(k, {}).get("mean") is None else sm[k]["mean"])
        loco_risk, loco_best = sm.get("risk", {}).get("mean"), sm.get(best_key, {}).get("mean")
        diff = None if loco_risk is None or loco_best is None else loco_risk - loco_best
        rows.append(f"| leave-one-group-out mean over {len(result['rows'])} groups{note}: combined risk >= best "
                    f"single log-probability signal + 0.05 | {fmt(loco_risk)} against {fmt(loco_best)} "
                    f"({best_key}) | {verdict(diff, 0.05)} |")
    rows.append(f"| risk >= 0.80 on held-out varied trivia | {fmt(risk)} | {verdict(risk, 0.80)} |")
    return rows


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, metavar="NAME=MODEL,RUN_DIR,PROBE")
    parser.add_argument("--eval-dir", default="runs/eval", help="Folder for eval results (resumable).")
    parser.add_argument("--limit", type=positive_int, default=None, help="Held-out trivia questions (default: all).")
    parser.add_argument("--limit-other", type=positive_int, default=None,
                        help="Questions of the biomedical and fabricated-entity sets (default: --limit).")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for llama.cpp.")
    parser.add_argument("--out", default=str(ROOT / "docs" / "detection.md"),
                        help="Markdown report to update; the plots go to img/ beside it.")
    args = parser.parse_args(argv)

    command = "python scripts/detection_report.py " + " ".join(argv if argv is not None else sys.argv[1:])
    sections, results = {}, {}
    for spec in args.model:
        name, _, rest = spec.partition("=")
        parts = rest.split(",")
        if len(parts) != 3 or not all(parts):
            parser.error(f"--model {spec!r}: expected NAME=MODEL,RUN_DIR,PROBE")
        model, run_dir, probe = parts
        # Check the cheap inputs before any model work.
        try:
            features_dir(Path(run_dir))
            from hnggml.probe import HProbe

            HProbe.load(probe)
        except (OSError, ValueError) as exc:
            parser.error(f"--model {spec!r}: {exc}")
        text, result = model_section(name, model, Path(run_dir), Path(probe), Path(args.eval_dir) / name,
                                     args.limit, args.threads, Path(args.out).parent / "img", args.limit_other,
                                     command=command)
        sections[name] = text
        results[name] = result
    out = Path(args.out)
    header = "\n".join([
        "# Detection: how well the risk finds wrong answers",
        "",
        "All numbers are AUROC for y = hallucinated (1.0 is perfect, 0.5 is chance) on labels from hnggml's "
        "rule judge. Every signal is scored on the same answers. Each model's section is generated by the "
        "command it names; a run for one model leaves the other sections as they are.",
        "",
    ])
    write_report(out, sections, header)
    for name, result in results.items():
        (Path(args.eval_dir) / name / "detection.json").write_text(json.dumps(result, indent=1, default=str))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
