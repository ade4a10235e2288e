"""Measurement primitives of the benchmark: paired runs in worker processes, and peak RSS.

Every timed figure is CPU time of the whole process (time.process_time, so
all llama.cpp threads count) with wall time beside it.

One pair is one fresh worker process that loads one instance of every
configuration, in rotated order. It runs them interleaved: one generated
token at a time for decode, one evaluation at a time for prefill and
capture, with the order rotated from pair to pair. Interleaving makes a change in
machine load hit every configuration of a pair alike. A fresh process per
pair is needed because two identical llama_cpp.Llama instances in one
process can differ in speed by several percent for their whole life (where
their buffers land in memory), which would bias every pair the same way.
Peak RSS needs a process of its own per configuration (rss_worker).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

DECODE_PROMPT = "Q: What is the capital of France?\nA:"

# English prose without repeats, tokenised and cut to the prefill length.
PREFILL_TEXT = (
    "The lighthouse keeper climbed the spiral stairs every evening at dusk, counting the steps "
    "as his father had taught him: one hundred and twelve, no more and no fewer. At the top he "
    "trimmed the wick, polished the great lens with a soft cloth, and wrote the weather in a "
    "ledger whose pages had yellowed over four decades. Ships passed far out on the horizon, "
    "their lights moving slowly from north to south, and sometimes a fishing boat came close "
    "enough that he could hear the crew calling to one another across the water. In winter the "
    "storms arrived from the west with little warning. Waves broke over the rocks below and "
    "sent spray as high as the gallery rail, and the whole tower hummed with the wind. He kept "
    "a kettle on the small iron stove and a stack of old newspapers for kindling, and on the "
    "worst nights he did not sleep at all. The village doctor visited once a month, bringing "
    "letters, tobacco and news of elections, weddings and the price of wool. Younger men from "
    "the harbour office talked about automatic lamps powered by batteries and solar panels, "
    "machines that would need nobody to climb the stairs. He listened politely, poured them tea, "
    "and asked whether a battery would notice a schooner drifting without sails, or a child's "
    "dinghy carried out past the point by the evening tide. They had no answer to that. When the "
    "inspectors finally came with their clipboards and their measuring tapes, they found the "
    "brass shining, the ledger complete to the last entry, and a logbook of every rescue since "
    "the year the old pier collapsed. Their report recommended that the station be kept staffed "
    "for another ten years, a decision that surprised the ministry and delighted the village."
)


def ignore_end_of_generation() -> None:
    """Make llama_cpp treat no token as end-of-generation, so every run generates max_tokens.

    llama-cpp-python 0.3.36 has no ignore_eos option. Its completion loop and
    hnggml's answer-length count both look up
    llama_cpp.llama_cpp.llama_vocab_is_eog in the module at call time, so
    replacing the module attribute affects every configuration alike.
    Benchmark processes only.
    """
    import llama_cpp.llama_cpp as llama_cpp_lib

    llama_cpp_lib.llama_vocab_is_eog = lambda vocab, token: False


def summarise(values: list[float]) -> dict[str, float | int | None]:
    """Return the median, min, max and count of a list of numbers (None when empty)."""
    finite = [v for v in values if v is not None and np.isfinite(v)]
    if not finite:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(finite), "min": min(finite), "max": max(finite), "n": len(finite)}


def rotated(names: list[str], k: int) -> list[str]:
    """Return names rotated by k places, so each configuration takes every position in turn."""
    k %= len(names)
    return names[k:] + names[:k]


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Collect once, then keep the garbage collector off while configurations are interleaved.

    With several instances in one process, a collection triggered by one
    configuration's allocations would be charged to whichever runs next.
    """
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@dataclass
class Timing:
    cpu: float = 0.0
    wall: float = 0.0

    @contextlib.contextmanager
    def add(self) -> Iterator[None]:
        c0, w0 = time.process_time(), time.perf_counter()
        try:
            yield
        finally:
            self.cpu += time.process_time() - c0
            self.wall += time.perf_counter() - w0


@dataclass
class PairResult:
    """One paired run: per configuration, CPU and wall seconds and the work done."""

    order: list[str]
    timing: dict[str, Timing] = field(default_factory=dict)
    units: dict[str, int] = field(default_factory=dict)
    steps: dict[str, list[float]] = field(default_factory=dict)
    """CPU seconds of each decode step (one stream chunk, normally one token)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "order": self.order,
            "cpu": {n: t.cpu for n, t in self.timing.items()},
            "wall": {n: t.wall for n, t in self.timing.items()},
            "units": self.units,
            "steps": self.steps,
        }


def decode_pair(instances: dict[str, Any], order: list[str], prompt: str, n_tokens: int) -> PairResult:
    """Generate n_tokens greedily on every instance, interleaved one token at a time.

    Each instance is reset first, so every run also evaluates the short
    prompt. The streams advance round-robin in ``order``; each step is one
    ``next()`` on a create_completion stream, timed on its own.
    """
    result = PairResult(order=list(order))
    streams = {}
    for name in order:
        llm = instances[name]
        llm.reset()
        streams[name] = iter(llm.create_completion(prompt, max_tokens=n_tokens, temperature=0.0, stream=True))
        result.timing[name] = Timing()
        result.units[name] = 0
        result.steps[name] = []
    active = list(order)
    with gc_paused():
        while active:
            for name in list(active):
                timing = result.timing[name]
                before = timing.cpu
                with timing.add():
                    chunk = next(streams[name], None)
                if chunk is None:
                    active.remove(name)
                else:
                    result.steps[name].append(timing.cpu - before)
    for name in order:
        # A chunk can carry more than one token (multi-byte characters), so
        # the token count is taken from the recorded request where there is one.
        counted = _generated_tokens(instances[name])
        result.units[name] = counted if counted is not None else n_tokens
    return result


def _generated_tokens(llm: Any) -> int | None:
    request = getattr(llm, "last_request", None)
    if request is not None:
        return len(request.tokens)
    tokens = getattr(llm, "tokens", None)
    if isinstance(tokens, list):
        return len(tokens)
    return None


def prefill_pair(instances: dict[str, Any], order: list[str], tokens: list[int]) -> PairResult:
    """Evaluate the same prompt tokens on every instance from an empty cache, one after another."""
    result = PairResult(order=list(order))
    with gc_paused():
        for name in order:
            llm = instances[name]
            llm.reset()
            result.timing[name] = Timing()
            with result.timing[name].add():
                llm.eval(tokens)
            result.units[name] = len(tokens)
    return result


def forced_decode(llm: Any, prompt_tokens: list[int], answer_tokens: list[int]) -> None:
    """Decode prompt + answer in one batch with the logits that TeacherForcer requests.

    This is plain prefill of the same tokens with the same output rows, the
    baseline of the full capture.
    """
    tokens = list(prompt_tokens) + list(answer_tokens)
    first = len(prompt_tokens) - 1
    llm._ctx.kv_cache_clear()
    llm.reset()
    batch = llm._batch.batch
    batch.n_tokens = len(tokens)
    for i, token in enumerate(tokens):
        batch.token[i] = token
        batch.pos[i] = i
        batch.seq_id[i][0] = 0
        batch.n_seq_id[i] = 1
        batch.logits[i] = first <= i < first + len(answer_tokens)
    llm._ctx.decode(llm._batch)
    llm._ctx.kv_cache_clear()


def capture_pair(plain: Any, forcer: Any, order: list[str], prompt_tokens: list[int],
                 answer_tokens: list[int]) -> PairResult:
    """Time plain teacher-forced prefill against TeacherForcer.capture of the same tokens."""
    result = PairResult(order=list(order))
    n = len(prompt_tokens) + len(answer_tokens)
    runs: dict[str, Callable[[], Any]] = {
        "plain": lambda: forced_decode(plain, prompt_tokens, answer_tokens),
        "capture": lambda: forcer.capture(prompt_tokens, answer_tokens),
    }
    with gc_paused():
        for name in order:
            result.timing[name] = Timing()
            with result.timing[name].add():
                runs[name]()
            result.units[name] = n
    return result


# Peak RSS ---------------------------------------------------------------------------


def memory_kib() -> dict[str, int]:
    """Return peak RSS and the current anonymous and file-backed RSS, in KiB.

    peak_rss_kib is VmHWM from /proc/self/status, else ru_maxrss. The split
    into RssAnon and RssFile exists on Linux only: file-backed pages of the
    memory-mapped model vary from run to run with the page cache, while
    anonymous memory is what the process allocated.
    """
    out: dict[str, int] = {}
    status = Path("/proc/self/status")
    if status.exists():
        fields = {"VmHWM:": "peak_rss_kib", "RssAnon:": "rss_anon_kib", "RssFile:": "rss_file_kib"}
        for line in status.read_text().splitlines():
            key = fields.get(line.split(" ", 1)[0].split("\t", 1)[0])
            if key:
                out[key] = int(line.split()[1])
    if "peak_rss_kib" not in out:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out["peak_rss_kib"] = peak // 1024 if sys.platform == "darwin" else peak
    return out


def rss_worker(kind: str, model: str, probe: str | None, n_ctx: int, n_threads: int,
               n_decode: int, n_prefill: int) -> dict[str, Any]:
    """Load one configuration, run a short completion and a prefill, and return the peak RSS.

    Runs in a fresh process (bench.py --worker rss), so the figure holds
    only this configuration: its imports, model, context and buffers. The
    plain configuration imports llama_cpp alone.
    """
    ignore_end_of_generation()
    if kind == "plain":
        import llama_cpp

        llm = llama_cpp.Llama(model, n_ctx=n_ctx, n_threads=n_threads, seed=0, verbose=False)
    elif kind == "hnggml":
        from hnggml import Llama

        llm = Llama(model, probe=probe, n_ctx=n_ctx, n_threads=n_threads, seed=0, verbose=False)
    elif kind == "python":
        from hnggml import HProbe
        from py_reference import PythonCallbackLlama

        llm = PythonCallbackLlama(model, probe=HProbe.load(probe), n_ctx=n_ctx, n_threads=n_threads,
                                  seed=0, verbose=False)
    elif kind == "capture":
        from hnggml import Llama
        from hnggml.capture import TeacherForcer

        llm = Llama(model, probe=False, n_ctx=n_ctx, n_threads=n_threads, seed=0, verbose=False)
        forcer = TeacherForcer(llm, max_tokens=n_prefill)
    else:
        raise ValueError(f"unknown configuration {kind!r}; use plain, hnggml, python or capture")
    tokens = prefill_tokens(llm, n_prefill)
    if kind == "capture":
        split = n_prefill - n_decode
        forcer.capture(tokens[:split], tokens[split:])
    else:
        llm(DECODE_PROMPT, max_tokens=n_decode, temperature=0.0)
        llm.reset()
        llm.eval(tokens)
    result = {"kind": kind, "n_ctx": n_ctx, **memory_kib()}
    llm.close()
    return result


def prefill_tokens(llm: Any, n: int) -> list[int]:
    """Return the first n tokens of PREFILL_TEXT (BOS included), repeating the text if needed."""
    tokens = llm.tokenize(PREFILL_TEXT.encode())
    more = llm.tokenize(PREFILL_TEXT.encode(), add_bos=False)
    while len(tokens) < n:
        tokens += more
    return tokens[:n]


def run_worker(bench_script: Path, arguments: list[str], timeout: float = 1800) -> dict[str, Any]:
    """Run ``bench.py --worker ...`` in a fresh process and return the JSON it prints last."""
    import subprocess

    command = [sys.executable, str(bench_script), *arguments]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=dict(os.environ))
    if done.returncode != 0:
        raise RuntimeError(f"worker {' '.join(arguments[:2])} failed with exit code {done.returncode}:\n"
                           f"{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# Pair workers --------------------------------------------------------------------------


def load_instances(model: str, probe_path: str, n_threads: int, n_ctx: int, n_prefill: int,
                   index: int) -> tuple[dict[str, Any], Any]:
    """Load plain, hnggml and python instances and a TeacherForcer, in an order rotated by index."""
    import llama_cpp

    from hnggml import HProbe, Llama
    from hnggml.capture import TeacherForcer
    from py_reference import PythonCallbackLlama

    common = {"n_ctx": n_ctx, "n_threads": n_threads, "seed": 0, "verbose": False}
    loaders: dict[str, Callable[[], Any]] = {
        "plain": lambda: llama_cpp.Llama(model, **common),
        "hnggml": lambda: Llama(model, probe=probe_path, **common),
        "python": lambda: PythonCallbackLlama(model, probe=HProbe.load(probe_path), **common),
        "capture": lambda: TeacherForcer(Llama(model, probe=False, **common), max_tokens=n_prefill),
    }
    loaded = {name: loaders[name]() for name in rotated(list(loaders), index)}
    forcer = loaded.pop("capture")
    return {name: loaded[name] for name in ("plain", "hnggml", "python")}, forcer


def reference_check(monitored: Any, reference: Any) -> dict[str, Any]:
    """Compare the Python reference's CETT rows with hnggml's for the same greedy tokens."""
    request = monitored.last_request
    same_tokens = request is not None and list(request.tokens) == list(reference.tokens)
    out: dict[str, Any] = {"tokens_equal": bool(same_tokens), "n_tokens": len(reference.tokens)}
    if same_tokens and reference.rows:
        rows = np.stack(request.rows)
        out["max_abs_row_diff"] = float(np.abs(rows - np.stack(reference.rows)).max())
        out["max_row_value"] = float(np.abs(rows).max())
    return out


def suite_pair(model: str, probe_path: str, n_threads: int, n_ctx: int, n_tokens: int, n_prefill: int,
               index: int) -> dict[str, Any]:
    """Run one pair of decode, prefill and capture measurements in this process."""
    ignore_end_of_generation()
    instances, forcer = load_instances(model, probe_path, n_threads, n_ctx, n_prefill, index)
    names = list(instances)
    tokens = prefill_tokens(instances["plain"], n_prefill)
    n_answer = max(1, n_prefill // 4)
    prompt_part, answer_part = tokens[:-n_answer], tokens[-n_answer:]

    # Warm-up: page the weights in and run the one-token and batched kernels once.
    decode_pair(instances, names, DECODE_PROMPT, 4)
    prefill_pair(instances, names, tokens[:32])
    capture_pair(instances["plain"], forcer, ["plain", "capture"], prompt_part[:16], answer_part[:8])

    decode = decode_pair(instances, rotated(names, index), DECODE_PROMPT, n_tokens)
    check = reference_check(instances["hnggml"], instances["python"])
    prefill = prefill_pair(instances, rotated(names, index), tokens)
    capture = capture_pair(instances["plain"], forcer, rotated(["plain", "capture"], index),
                           prompt_part, answer_part)
    for llm in instances.values():
        llm.close()
    forcer.llm.close()
    return {"decode": decode.to_dict(), "prefill": prefill.to_dict(), "capture": capture.to_dict(),
            "reference_check": check, "n_answer_tokens": n_answer}


def scaling_pair(model: str, probes: dict[str, str], n_ctx: int, n_tokens: int, n_prefill: int,
                 index: int) -> dict[str, Any]:
    """Run one pair of decode and prefill measurements: plain against one hnggml.Llama per probe."""
    import llama_cpp

    from hnggml import Llama

    ignore_end_of_generation()
    common = {"n_ctx": n_ctx, "n_threads": 1, "seed": 0, "verbose": False}
    names = rotated(["plain", *probes], index)
    instances = {name: llama_cpp.Llama(model, **common) if name == "plain"
                 else Llama(model, probe=probes[name], **common) for name in names}
    tokens = prefill_tokens(instances["plain"], n_prefill)
    decode_pair(instances, names, DECODE_PROMPT, 4)
    prefill_pair(instances, names, tokens[:32])
    decode = decode_pair(instances, names, DECODE_PROMPT, n_tokens)
    prefill = prefill_pair(instances, names, tokens)
    for llm in instances.values():
        llm.close()
    return {"decode": decode.to_dict(), "prefill": prefill.to_dict()}
