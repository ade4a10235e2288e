"""Checks `hnggml eval` makes before it generates anything."""

import json

import numpy as np
import pytest

from hnggml.collect import check_run_config
from hnggml.evaluate import _check_files, score_signals


def test_same_file_twice_is_rejected(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text("")
    with pytest.raises(ValueError, match="given twice"):
        _check_files([path, str(path)])


def test_same_stem_in_two_folders_is_rejected(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(ValueError, match="share the result file q.jsonl"):
        _check_files([tmp_path / "a" / "q.jsonl", tmp_path / "b" / "q.jsonl"])


def test_run_config_refuses_other_run(tmp_path):
    label = "another model, probe or seed"
    check_run_config(tmp_path, {"seed": 0}, label)
    check_run_config(tmp_path, {"seed": 0}, label)
    with pytest.raises(ValueError, match="another model, probe or seed"):
        check_run_config(tmp_path, {"seed": 1}, label)


def test_run_config_corrupt_file(tmp_path):
    (tmp_path / "run.json").write_text("nope")
    with pytest.raises(ValueError, match="not a valid run file"):
        check_run_config(tmp_path, {"seed": 0})


class _Probe:
    threshold = 0.5
    metrics: dict = {}


def test_random_neuron_interval_contains_its_mean():
    rng = np.random.default_rng(0)
    records = []
    for i in range(60):
        label = i % 2
        records.append({"label": label, "risk": 0.5, "h_neurons": rng.random(), "entropy": rng.random(),
                        "logprob": rng.random(), "one_minus_min_prob": rng.random(),
                        "random_neurons": [label * 0.3 + rng.random() for _ in range(5)]})
    entry = score_signals(records, _Probe(), n_boot=200)["signals"]["random_neurons"]
    low, high = entry["auroc_ci95"]
    assert low <= entry["auroc"] <= high
    json.dumps(entry)
