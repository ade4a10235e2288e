"""`hnggml probe info` on probe files written in tmp_path."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hnggml.cli import main

NEURONS = [[0, 5], [0, 9], [2, 100], [3, 7]]


def write_probe(path, **extra):
    data = {
        "format": "hnggml-probe",
        "format_version": 1,
        "model": {"architecture": "gemma3", "n_layer": 4, "n_ff": 128, "n_embd": 64, "name": "Tiny",
                  "ffn_down_sha256": "ab" * 32},
        "neurons": NEURONS,
        "coef": [0.5, -0.25, 1.0, 2.0],
        "intercept": -1.0,
        "w_norm": [1.0, 1.0, 1.0, 1.0],
        "threshold": 0.42,
        "aggregation": "mean",
        **extra,
    }
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_probe_info_text(tmp_path):
    path = write_probe(
        tmp_path / "p.json",
        metrics={"cv_auroc": {"h_neurons": 0.7123, "risk": 0.75}, "cv_auroc_random_neurons": [0.5] * 10},
        training={"n_questions": 500, "data": ["triviaqa.jsonl"]},
        prompt={"style": "fewshot", "max_tokens": 24, "stop": ["\n"]},
    )

    result = CliRunner().invoke(main, ["probe", "info", str(path)])

    assert result.exit_code == 0, result.output
    out = result.output
    assert "Tiny (gemma3, 4 layers, n_ff 128, n_embd 64, ffn_down sha256 abababababababab)" in out
    assert "neurons    4 of 512 (0.781%)" in out
    assert "threshold 0.420" in out
    assert "      0        2\n      1        0\n      2        1\n      3        1" in out
    assert "cv_auroc.h_neurons: 0.7123" in out
    assert "(10 items)" in out
    assert "n_questions: 500" in out
    assert 'data: ["triviaqa.jsonl"]' in out


def test_probe_info_json(tmp_path):
    path = write_probe(tmp_path / "p.json")

    result = CliRunner().invoke(main, ["probe", "info", "--json", str(path)])

    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["neurons_per_layer"] == {"0": 2, "1": 0, "2": 1, "3": 1}
    assert summary["n_neurons"] == 4
    assert summary["metrics"] == {}
    assert summary["combiner_inputs"] is None


def test_probe_info_empty_sections(tmp_path):
    result = CliRunner().invoke(main, ["probe", "info", str(write_probe(tmp_path / "p.json"))])

    assert result.output.count("(none recorded)") == 3


@pytest.mark.parametrize(
    ("content", "message"),
    [("{}", "not an hnggml probe"), ("not json", "not valid JSON")],
)
def test_probe_info_invalid_file(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")

    result = CliRunner().invoke(main, ["probe", "info", str(path)])

    assert result.exit_code == 1
    assert message in result.output


def test_probe_info_missing_file(tmp_path):
    result = CliRunner().invoke(main, ["probe", "info", str(tmp_path / "none.json")])

    assert result.exit_code == 2
    assert "does not exist" in result.output
