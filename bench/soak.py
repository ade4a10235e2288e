#!/usr/bin/env python3
"""Soak test: many tokens and many requests in one process, with no growth.

One monitored hnggml.Llama first generates at least --tokens tokens in long
completions, then serves --requests short requests that rotate through
plain completions, streams, chat completions, abandoned streams and
requests whose logits processor raises. Every --every requests (and after
each long completion) it runs the garbage collector and records the process
RSS, the monitor's capture buffers and the per-request record. glibc's mmap
threshold is pinned at 1 MiB, so freed large buffers leave RSS at once. The
run fails when:

- RSS grows by more than --rss-bound-mib after the warm-up (the first tenth
  of the samples);
- a watched layer's capture buffer contains more than one row, changes size,
  or the monitor reports an error status;
- a request record has a different number of rows than tokens, or a
  request stays open after it returned.

Modes: the default full run (10,000 tokens and 1,000 requests) and --quick
(500 tokens and 50 requests, used by tests/test_soak.py). The report goes to
stdout as one JSON object, and to --out when given. Exit status 1 means a
check failed.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import gc
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

from llama_cpp import LogitsProcessorList

PROMPTS = [
    "Q: What is the capital of France?\nA:",
    "Q: Who wrote Hamlet?\nA:",
    "Q: What is the boiling point of water in Celsius?\nA:",
    "Q: Which planet is known as the Red Planet?\nA:",
    "Q: What is the largest mammal?\nA:",
    "Q: Who painted the Mona Lisa?\nA:",
    "Q: What is the chemical symbol for gold?\nA:",
    "Q: How many legs does an insect have?\nA:",
]
STORY = "Once upon a time, in a small village by the sea, there lived"


def rss_bytes() -> int:
    """Return the resident set size now (Linux), else the peak so far."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def pin_malloc_threshold() -> None:
    """Make glibc return every allocation of 1 MiB or more to the system when it is freed.

    By default glibc raises its mmap threshold after the first large free,
    so later buffers of a few MiB (llama.cpp's per-request candidate arrays
    of n_vocab entries) stay in the heap and RSS ratchets up without a leak.
    Does nothing on other C libraries.
    """
    name = ctypes.util.find_library("c")
    if not name or sys.platform != "linux":
        return
    libc = ctypes.CDLL(name)
    if hasattr(libc, "mallopt"):
        m_mmap_threshold = -3
        libc.mallopt(m_mmap_threshold, 1 << 20)


def monitor_state(llm) -> dict[str, Any]:
    monitor = llm.monitor
    layers = sorted(monitor.watched)
    rows = {layer: monitor.rows(layer) for layer in layers}
    return {
        "max_rows": max(rows.values(), default=0),
        "z_bytes": sum(monitor.z(layer).nbytes for layer in layers),
        "h_norm_bytes": sum(monitor.h_norm(layer).nbytes for layer in layers),
        "status": int(monitor._lib.hn_monitor_status(monitor._ptr)),
    }


class Interrupted(Exception):
    """Raised by the soak's logits processor to abort a request."""


def raising_processor(input_ids, scores):
    raise Interrupted("the soak aborts this request on purpose")


class Soak:
    def __init__(self, llm, every: int) -> None:
        self.llm = llm
        self.every = every
        self.samples: list[dict[str, Any]] = []
        self.failures: list[str] = []
        self.tokens = 0
        self.requests = 0
        self.errors_raised = 0

    def fail(self, message: str) -> None:
        if len(self.failures) < 50:
            self.failures.append(message)

    def check_request(self, label: str) -> None:
        llm = self.llm
        if llm._request is not None:
            self.fail(f"{label}: a request record stayed open")
        request = llm.last_request
        if request is not None and llm.probe is not None and len(request.rows) != len(request.tokens):
            self.fail(f"{label}: {len(request.rows)} rows for {len(request.tokens)} tokens")

    def sample(self) -> None:
        # llama-cpp-python leaves reference cycles that hold n_vocab-sized
        # arrays after each request; collect them so RSS shows live memory.
        gc.collect()
        state = monitor_state(self.llm)
        if state["max_rows"] > 1:
            self.fail(f"request {self.requests}: a capture buffer contains {state['max_rows']} rows")
        if state["status"] != 0:
            self.fail(f"request {self.requests}: monitor status {state['status']}")
        self.samples.append({"requests": self.requests, "tokens": self.tokens, "rss": rss_bytes(),
                             "time": time.monotonic(), **state})

    def long_completions(self, target: int, max_tokens: int) -> None:
        seed = 0
        while self.tokens < target:
            result = self.llm.create_completion(STORY, max_tokens=min(max_tokens, target - self.tokens),
                                                temperature=0.9, seed=seed)
            seed += 1
            self.tokens += result["usage"]["completion_tokens"]
            self.requests += 1
            self.check_request(f"long completion {seed}")
            self.sample()

    def short_requests(self, count: int) -> None:
        llm = self.llm
        for i in range(count):
            prompt = PROMPTS[i % len(PROMPTS)]
            kind = i % 5
            if kind == 0:
                result = llm.create_completion(prompt, max_tokens=4, temperature=0.0)
                self.tokens += result["usage"]["completion_tokens"]
            elif kind == 1:
                chunks = list(llm.create_completion(prompt, max_tokens=4, temperature=0.0, stream=True))
                if "hnggml" not in chunks[-1]:
                    self.fail(f"request {self.requests}: the last stream chunk has no report")
            elif kind == 2:
                messages = [{"role": "user", "content": prompt}]
                llm.create_chat_completion(messages, max_tokens=4, temperature=0.0)
            elif kind == 3:
                stream = llm.create_completion(prompt, max_tokens=8, temperature=0.0, stream=True)
                next(stream)
                stream.close()
            else:
                try:
                    llm.create_completion(prompt, max_tokens=4, temperature=0.0,
                                          logits_processor=LogitsProcessorList([raising_processor]))
                    self.fail(f"request {self.requests}: the raising logits processor did not abort it")
                except Interrupted:
                    self.errors_raised += 1
            self.requests += 1
            self.check_request(f"request {self.requests} (kind {kind})")
            if self.requests % self.every == 0:
                self.sample()

    def growth_checks(self, rss_bound: int) -> dict[str, Any]:
        warm = self.samples[max(1, len(self.samples) // 10):]
        base = warm[0]
        rss_growth = max(s["rss"] for s in warm) - base["rss"]
        if rss_growth > rss_bound:
            self.fail(f"RSS grew by {rss_growth / 2**20:.1f} MiB after warm-up (bound {rss_bound / 2**20:.0f} MiB)")
        for key in ("z_bytes", "h_norm_bytes"):
            sizes = {s[key] for s in self.samples if s["max_rows"] > 0}
            if len(sizes) > 1:
                self.fail(f"monitor {key} changed: {sorted(sizes)}")
        return {
            "rss_start_mib": round(self.samples[0]["rss"] / 2**20, 1),
            "rss_after_warmup_mib": round(base["rss"] / 2**20, 1),
            "rss_max_mib": round(max(s["rss"] for s in self.samples) / 2**20, 1),
            "rss_growth_after_warmup_mib": round(rss_growth / 2**20, 2),
            "z_bytes": self.samples[-1]["z_bytes"],
            "h_norm_bytes": self.samples[-1]["h_norm_bytes"],
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 tokens and 50 requests")
    parser.add_argument("--tokens", type=int, help="tokens to generate in long completions (default 10000)")
    parser.add_argument("--requests", type=int, help="short requests to serve (default 1000)")
    parser.add_argument("--every", type=int, default=None, help="requests between samples")
    parser.add_argument("--rss-bound-mib", type=float, default=16.0,
                        help="RSS growth allowed after the warm-up, in MiB (default 16)")
    parser.add_argument("--model", default=os.environ.get("HNGGML_TEST_MODEL"),
                        help="GGUF path (default $HNGGML_TEST_MODEL, else the embedded Gemma 3 270M)")
    parser.add_argument("--probe", default=os.environ.get("HNGGML_TEST_PROBE"),
                        help="probe path (default $HNGGML_TEST_PROBE, else the shipped probe)")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads (default 1)")
    parser.add_argument("--out", type=Path, help="also write the JSON report to this file")
    args = parser.parse_args(argv)

    tokens, requests, every = (500, 50, 5) if args.quick else (10_000, 1_000, 25)
    if args.tokens is not None:
        tokens = args.tokens
    if args.requests is not None:
        requests = args.requests
    if args.every:
        every = args.every

    pin_malloc_threshold()
    from hnggml import Llama

    started = time.monotonic()
    llm = Llama(args.model, probe=args.probe, n_ctx=512, n_threads=args.threads, seed=0, verbose=False)
    soak = Soak(llm, every)
    soak.sample()
    soak.long_completions(tokens, max_tokens=200 if not args.quick else 100)
    soak.short_requests(requests)
    soak.sample()
    summary = soak.growth_checks(int(args.rss_bound_mib * 2**20))
    report = {
        "model": str(llm.model_info.path),
        "tokens_generated": soak.tokens,
        "requests": soak.requests,
        "aborted_requests": soak.errors_raised,
        "samples": len(soak.samples),
        "seconds": round(time.monotonic() - started, 1),
        **summary,
        "failures": soak.failures,
        "ok": not soak.failures,
    }
    llm.close()
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
