"""Choose a probe's default risk on held-out category groups and write the probe back.

`hnggml train` makes this choice itself. This script applies the same rule
(hnggml.train.choose_default_risk) to a probe that already exists, using the
stored features of a training run of the same model:

    python scripts/set_default_risk.py probes/gemma-3-270m-q4_k_m.json runs/gemma

Each category group with at least 5 right and 5 wrong answers is left out
in turn. The candidates (the neuron stage with the logit signals, the logit
signals alone, the neuron stage alone and each single signal) are fitted on
the other groups and scored on it, and the best mean AUROC wins. When the
winner reads the neuron logit (the combination), the probe's own second
stage is kept. Otherwise the winner is refitted on the whole run and stored
as the probe's second stage, and the threshold is moved to the Youden point
of its out-of-fold scores. The probe file is replaced atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from detection_report import load_run  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("probe", type=Path, help="Probe file to update.")
    parser.add_argument("run_dir", type=Path, help="Folder of a finished `hnggml train --out` run of the same model.")
    parser.add_argument("--dry-run", action="store_true", help="Print the choice without writing the probe.")
    args = parser.parse_args(argv)

    from hnggml.probe import Combiner, HProbe
    from hnggml.stats import auroc
    from hnggml.train import (_youden_threshold, choose_default_risk, fit_combiner, out_of_fold_combiner,
                              stratified_folds)

    try:
        probe = HProbe.load(args.probe)
        _, X, S, y, categories = load_run(args.run_dir)
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    C = float(probe.training["C"])
    seed = int(probe.training.get("seed", 0))
    selection = choose_default_risk(X, S, y, categories, C, seed)
    if selection is None:
        print("no category group has 5 right and 5 wrong answers; the probe was not changed", file=sys.stderr)
        return 1
    scores = ", ".join(f"{name} {value:.3f}" for name, value in selection["loco_auroc"].items())
    print(f"leave-one-group-out mean AUROC over {len(selection['groups'])} groups: {scores}")
    print(f"default risk: {selection['choice']}")
    if args.dry_run:
        return 0

    inputs = selection["inputs"]
    probe.metrics["loco_auroc"] = selection["loco_auroc"]
    probe.metrics["loco_groups"] = selection["groups"]
    probe.training["default_risk"] = selection["choice"]
    probe.training["default_risk_rule"] = (f"best mean leave-one-group-out AUROC on the features in "
                                           f"{args.run_dir.name} ({len(y)} questions)")
    if inputs is None or "h_logit" not in inputs:
        if inputs is None:
            probe.combiner = None
            columns = probe.neurons_[:, 0] * int(probe.model["n_ff"]) + probe.neurons_[:, 1]
            risk_oof = probe.h_logit(X[:, columns])
        else:
            zeros = np.zeros(len(y))
            probe.combiner = Combiner(**fit_combiner(zeros, S, y, inputs))
            risk_oof = out_of_fold_combiner(zeros, S, y, stratified_folds(y, 5, seed), inputs)
        probe.threshold = _youden_threshold(y, 1.0 / (1.0 + np.exp(-risk_oof)))
        probe.metrics.setdefault("cv_auroc", {})["risk"] = float(auroc(y, risk_oof))
    probe.save(args.probe)
    print(f"wrote {args.probe}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
