"""No lost work: a killed collection resumes, and a failed probe save keeps the old file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hnggml.collect import collect, read_records
from hnggml.datasets import QAItem
from hnggml.probe import HProbe
from hnggml.prompting import PromptStyle

QUESTIONS = [
    ("q1", "What is the capital of Italy?", ["Rome"]),
    ("q2", "Who wrote Romeo and Juliet?", ["William Shakespeare", "Shakespeare"]),
    ("q3", "What is the chemical symbol for gold?", ["Au"]),
    ("q4", "How many continents are there?", ["Seven", "7"]),
    ("q5", "What is the capital of Japan?", ["Tokyo"]),
    ("q6", "Which planet is closest to the Sun?", ["Mercury"]),
    ("q7", "What is the largest planet in the Solar System?", ["Jupiter"]),
    ("q8", "Who discovered penicillin?", ["Alexander Fleming", "Fleming"]),
]
STYLE = PromptStyle(max_tokens=4)
N_SAMPLES = 2


def items() -> list[QAItem]:
    return [QAItem(id=i, question=q, answers=tuple(a), category="test", source="test") for i, q, a in QUESTIONS]


CHILD = textwrap.dedent(
    """
    import sys
    from hnggml import Llama
    from hnggml.collect import collect
    from hnggml.datasets import QAItem
    from hnggml.prompting import PromptStyle
    model, probe, out, questions = sys.argv[1:5]
    import json
    items = [QAItem(id=i, question=q, answers=tuple(a), category="test", source="test")
             for i, q, a in json.loads(questions)]
    llm = Llama(model, probe=probe, n_ctx=512, n_threads=1, seed=0, verbose=False)
    collect(llm, items, out, PromptStyle(max_tokens=4), n_samples=2, show_progress=False)
    """
)


def start_child(model_path: Path, probe_path: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(model_path), str(probe_path), str(out), json.dumps(QUESTIONS)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy(),
    )


def complete_lines(path: Path) -> list[bytes]:
    if not path.exists():
        return []
    return [line for line in path.read_bytes().split(b"\n")[:-1]]


@pytest.fixture(scope="module")
def llm(model_path, probe_path):
    from hnggml import Llama

    instance = Llama(model_path, probe=probe_path, n_ctx=512, n_threads=1, seed=0, verbose=False)
    yield instance
    instance.close()


def test_collect_resumes_after_sigkill(tmp_path, model_path, probe_path, llm):
    out = tmp_path / "collected.jsonl"
    child = start_child(model_path, probe_path, out)
    deadline = time.monotonic() + 60
    while len(complete_lines(out)) < 2:
        if child.poll() is not None:
            pytest.fail(f"the collection ended before it could be killed: {child.stderr.read().decode()[-2000:]}")
        assert time.monotonic() < deadline, "the collection wrote fewer than 2 lines in 60 s"
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    before = complete_lines(out)
    assert 2 <= len(before) < len(QUESTIONS), "the kill did not land mid-run"
    for line in before:
        json.loads(line)

    collect(llm, items(), out, STYLE, n_samples=N_SAMPLES, show_progress=False)

    after = complete_lines(out)
    assert after[: len(before)] == before, "finished questions were rewritten"
    records = [json.loads(line) for line in after]
    assert [r["id"] for r in records] == [i for i, _, _ in QUESTIONS]
    assert out.read_bytes().endswith(b"\n")
    for record in records:
        assert 1 <= len(record["samples"]) <= N_SAMPLES
        assert record["prompt_tokens"]


def test_collect_repairs_torn_last_line(tmp_path, llm):
    out = tmp_path / "collected.jsonl"
    collect(llm, items()[:2], out, STYLE, n_samples=1, show_progress=False)
    finished = out.read_bytes()
    with out.open("ab") as f:
        f.write(b'{"id": "q3", "question": "What is the chem')  # a write cut by a kill
    assert [r["id"] for r in read_records(out)] == ["q1", "q2"]

    collect(llm, items()[:4], out, STYLE, n_samples=1, show_progress=False)

    data = out.read_bytes()
    assert data.startswith(finished)
    assert [json.loads(line)["id"] for line in data.splitlines()] == ["q1", "q2", "q3", "q4"]


def test_collect_rejects_corrupt_middle_line(tmp_path, llm):
    out = tmp_path / "collected.jsonl"
    out.write_text('{"id": "q1"}\nnot json\n{"id": "q2"}\n')
    with pytest.raises(ValueError, match=r"collected\.jsonl:2 is not valid JSON; delete the line or the file"):
        collect(llm, items()[:1], out, STYLE, n_samples=1, show_progress=False)


# Probe files -------------------------------------------------------------------------------


@pytest.fixture()
def saved_probe(tmp_path, probe_path) -> tuple[HProbe, Path, bytes]:
    probe = HProbe.load(probe_path)
    path = probe.save(tmp_path / "probe.json")
    return probe, path, path.read_bytes()


def leftovers(folder: Path, keep: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p != keep)


def test_probe_save_failure_keeps_old_file(saved_probe):
    probe, path, original = saved_probe
    probe.metrics = {"auc": float("nan")}  # json.dump(allow_nan=False) fails half-way
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        probe.save(path)
    assert path.read_bytes() == original
    assert leftovers(path.parent, path) == []


def test_probe_save_replace_failure_keeps_old_file(saved_probe, monkeypatch):
    probe, path, original = saved_probe
    probe.threshold = 0.25

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        probe.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == original
    assert leftovers(path.parent, path) == []


def test_probe_save_killed_keeps_old_file(saved_probe):
    probe, path, original = saved_probe
    child = textwrap.dedent(
        """
        import json, os, signal, sys
        from hnggml.probe import HProbe
        probe = HProbe.load(sys.argv[1])
        probe.threshold = 0.25
        real_dump = json.dump
        def dump_then_die(obj, f, **kwargs):
            f.write(json.dumps(obj, **kwargs)[:100])
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        json.dump = dump_then_die
        probe.save(sys.argv[1])
        """
    )
    result = subprocess.run([sys.executable, "-c", child, str(path)], capture_output=True, timeout=60)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()[-2000:]
    assert path.read_bytes() == original
    assert HProbe.load(path).threshold == probe.threshold
    # The killed writer leaves its temporary file next to the probe, never in its place.
    assert all(name.endswith(".tmp") for name in leftovers(path.parent, path))
