"""bench/soak.py --quick: hundreds of tokens and dozens of requests with no growth."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SOAK = Path(__file__).resolve().parents[1] / "bench" / "soak.py"


def test_soak_quick_has_no_growth(tmp_path, model_path, probe_path):
    report_path = tmp_path / "soak.json"
    result = subprocess.run(
        [sys.executable, str(SOAK), "--quick", "--model", str(model_path), "--probe", str(probe_path),
         "--out", str(report_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert report_path.exists(), result.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert report["failures"] == []
    assert result.returncode == 0
    assert report["tokens_generated"] >= 500
    assert report["requests"] >= 50
    assert report["aborted_requests"] == 10
    assert report["samples"] >= 10
