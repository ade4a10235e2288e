"""Sample answers, judge them, and keep the questions answered consistently.

Each question is asked up to n_samples times at temperature 1.0 (top-p 0.9,
top-k 50); sampling stops early once the verdicts disagree, since the
question can no longer be kept. A question is kept when every sample is right (label 0) or every sample
is wrong (label 1); questions with a refusal or mixed verdicts are set aside.
Results are appended to a JSONL file one question at a time, so an
interrupted run resumes after the last finished question and a killed run
loses at most the question in flight.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .datasets import QAItem
from .judge import judge, normalize
from .progress import Progress
from .prompting import FEWSHOT_QUESTIONS, PromptStyle, ask

logger = logging.getLogger(__name__)

SAMPLING = {"temperature": 1.0, "top_p": 0.9, "top_k": 50, "min_p": 0.0, "repeat_penalty": 1.0}
GREEDY = {"temperature": 0.0, "repeat_penalty": 1.0}
DECODING = {"sample": SAMPLING, "greedy": GREEDY}
"""Decoding settings by name. "sample" is the method's; "greedy" labels the
answer users get by default, with one answer per question."""


@dataclass
class Sampled:
    """One question with its samples, read back from the collection file."""

    record: dict[str, Any]

    @property
    def verdicts(self) -> list[str]:
        return [s["verdict"] for s in self.record["samples"]]

    @property
    def label(self) -> int | None:
        """1 when every sample is wrong, 0 when every sample is right, else None."""
        verdicts = set(self.verdicts)
        if verdicts == {"wrong"}:
            return 1
        if verdicts == {"correct"}:
            return 0
        return None

    def representative(self) -> dict[str, Any]:
        """Return the most frequent answer (by normalised text), first seen on ties."""
        samples = self.record["samples"]
        counts = Counter(normalize(s["text"]) for s in samples)
        best = max(counts.values())
        for sample in samples:
            if counts[normalize(sample["text"])] == best:
                return sample
        raise ValueError("a record without samples has no representative answer")


class FirstSample(Sampled):
    """A question labelled by its first sampled answer alone.

    One sampled answer per question is also how `hnggml eval` scores, and it
    keeps every question that was not refused, right or wrong.
    """

    @property
    def label(self) -> int | None:
        verdict = self.record["samples"][0]["verdict"]
        return {"correct": 0, "wrong": 1}.get(verdict)

    def representative(self) -> dict[str, Any]:
        return self.record["samples"][0]


def first_samples(records: Iterable[Sampled]) -> list[Sampled]:
    """Keep every question whose first sampled answer was judged right or wrong."""
    kept = []
    for sampled in records:
        first = FirstSample(sampled.record)
        if first.label is not None and first.representative()["tokens"] and first.record.get("prompt_tokens"):
            kept.append(first)
    return kept


def read_records(path: Path) -> list[dict[str, Any]]:
    """Read a collection file, skipping a torn last line left by a killed run."""
    records = []
    if not path.exists():
        return records
    with path.open(encoding="utf-8") as f:
        lines = f.readlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                logger.warning("ignoring an incomplete last line in %s", path)
                continue
            raise ValueError(f"{path}:{number} is not valid JSON; delete the line or the file to recollect") from None
    return records


def _append(path: Path, record: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def check_run_config(out_dir: Path, config: dict[str, Any], label: str = "another run") -> None:
    """Write OUT_DIR/run.json, or raise ValueError when an existing one describes another run.

    ``label`` names what a mismatch means in the message, for example
    "another model, probe or seed".
    """
    path = out_dir / "run.json"
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(old, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path} is not a valid run file ({exc}); delete {out_dir} or pass a different "
                             "output folder") from exc
        for key, value in config.items():
            if old.get(key) != value:
                raise ValueError(
                    f"{out_dir} contains results of {label} ({key} was {old.get(key)!r}, now {value!r}); "
                    "pass a different output folder or delete this one"
                )
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(config, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def _repair_tail(path: Path) -> None:
    """Cut a torn last line so that the next append starts on a fresh line."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    cut = data.rfind(b"\n") + 1
    with path.open("r+b") as f:
        f.truncate(cut)


def collect(
    llm,
    items: Iterable[QAItem],
    out_path: str | os.PathLike,
    style: PromptStyle,
    n_samples: int = 5,
    seed: int = 0,
    show_progress: bool = True,
    decoding: str = "sample",
) -> list[Sampled]:
    """Sample n_samples answers per question and append them to out_path.

    With decoding="greedy" each question gets one greedy answer.
    """
    if decoding not in DECODING:
        raise ValueError(f"invalid decoding {decoding!r}; use one of {sorted(DECODING)}")
    if decoding == "greedy":
        n_samples = 1
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    _repair_tail(out_path)
    done = {r["id"] for r in read_records(out_path)}
    todo = [item for item in items if item.id not in done and item.question not in FEWSHOT_QUESTIONS]
    progress = Progress(len(todo), "sampling answers", enabled=show_progress)
    for item in todo:
        samples = []
        prompt_tokens: list[int] = []
        for k in range(n_samples):
            result = ask(llm, item.question, style, seed=seed + k, **DECODING[decoding])
            request = llm.last_request
            n = (result["report"] or {}).get("n_tokens", 0)
            prompt_tokens = request.prompt_tokens if request is not None else []
            samples.append({
                "text": result["text"],
                "tokens": request.tokens[:n] if request is not None else [],
                "verdict": judge(result["text"], list(item.answers), item.answerable),
            })
            # Mixed verdicts or a refusal already rule the question out.
            verdicts = {sample["verdict"] for sample in samples}
            if len(verdicts) > 1 or "refusal" in verdicts:
                break
        _append(out_path, {
            **item.to_dict(),
            "prompt_tokens": prompt_tokens,
            "n_samples": n_samples,
            "decoding": decoding,
            "samples": samples,
        })
        progress.update()
    return [Sampled(r) for r in read_records(out_path)]


def consistent(records: Iterable[Sampled]) -> list[Sampled]:
    """Keep questions whose samples all agree and whose answer has tokens."""
    kept = []
    for sampled in records:
        if sampled.label is None or len(sampled.verdicts) < sampled.record.get("n_samples", 0):
            continue
        if not sampled.representative()["tokens"] or not sampled.record.get("prompt_tokens"):
            continue
        kept.append(sampled)
    return kept
