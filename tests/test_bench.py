"""bench/bench.py --smoke runs end to end and reports every headline key.

Timings on a shared machine tell nothing about hnggml, so no test checks a
measured value, only that the harness runs and its output is complete.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import hnggml

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench.py"

HEADLINE_KEYS = (
    "decode_cpu_ratio",
    "prefill_cpu_ratio",
    "python_callback_ratio",
    "capture_prefill_ratio",
    "rss_overhead_mib",
    "c_overhead_ms_per_token",
    "python_overhead_ms_per_token",
)


@pytest.fixture(scope="module")
def smoke_result(model_path, probe_path, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("bench")
    env = dict(os.environ)
    # The subprocess imports the same hnggml as this test, installed or from the checkout.
    package_root = str(Path(hnggml.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    command = [sys.executable, str(BENCH), "--smoke", "--json", "--model", str(model_path),
               "--probe", str(probe_path), "--out", str(out_dir / "report.md")]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout), out_dir / "report.md"


@pytest.mark.slow
def test_bench_smoke_headline_keys(smoke_result):
    result, _ = smoke_result
    for key in HEADLINE_KEYS:
        assert key in result, f"missing {key}"
    assert result["mode"] == "smoke"


@pytest.mark.slow
def test_bench_smoke_sections(smoke_result):
    result, _ = smoke_result
    suite = result["suites"][0]
    assert set(suite["decode"]["cpu_ms_per_token"]) == {"plain", "hnggml", "python"}
    assert suite["decode"]["cpu_ms_per_token"]["plain"]["n"] == 2
    assert suite["decode"]["n_tokens"] == 8
    assert "throughput_ratio" in suite["capture"]
    assert result["rss"][0]["n_ctx"] == 4096
    assert {t["key"] for t in result["targets"]} >= {"decode_cpu_ratio", "rss_overhead_mib"}
    assert [row["probe"] for row in result["probe_scoring"]][0] == "probe in use"


@pytest.mark.slow
def test_bench_smoke_reference_matches_monitor(smoke_result):
    # The Python callback must capture what the C monitor captures, or the
    # comparison of their costs would be meaningless.
    check = smoke_result[0]["suites"][0]["reference_check"]
    assert check["tokens_equal"]
    assert check["max_abs_row_diff"] <= 1e-5


@pytest.mark.slow
def test_bench_smoke_writes_report(smoke_result):
    _, report = smoke_result
    text = report.read_text()
    assert text.startswith("# Benchmarks")
    assert "GPU figures" in text
    assert "## Targets" in text
