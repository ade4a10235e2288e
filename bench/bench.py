#!/usr/bin/env python3
"""Measure what watching the H-neurons costs, against plain llama_cpp.Llama.

Configurations, compared in paired runs (one fresh process per pair, see
measure.py):

- plain: llama_cpp.Llama;
- hnggml: hnggml.Llama with the probe (the C monitor);
- python: the same capture and scoring with a pure-Python ctypes callback
  (bench/py_reference.py);
- capture: hnggml.capture.TeacherForcer (every neuron of every layer)
  against plain prefill of the same tokens.

Peak RSS comes from one subprocess per configuration and pair. Modes:
--smoke (seconds on an idle machine, for tests), --quick (default model,
1 thread) and the default full run, which also measures further models,
2 threads and the scaling with monitored layers and neurons, and writes
docs/benchmarks.md. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import sys
import tempfile
import time
import timeit
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

BENCH_SCRIPT = Path(__file__).resolve()
BENCH_DIR = BENCH_SCRIPT.parent
REPO_DIR = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

import measure  # noqa: E402
from measure import rotated, summarise  # noqa: E402

logger = logging.getLogger("bench")

MODES: dict[str, dict[str, Any]] = {
    "smoke": {"pairs": 2, "tokens": 8, "prefill": 32, "rss_pairs": 1, "threads": [1],
              "scaling": False, "second_model": False, "scoring_calls": 200},
    "quick": {"pairs": 7, "tokens": 64, "prefill": 256, "rss_pairs": 3, "threads": [1],
              "scaling": False, "second_model": False, "scoring_calls": 2000},
    "full": {"pairs": 9, "tokens": 128, "prefill": 256, "rss_pairs": 7, "threads": [1, 2],
             "scaling": True, "second_model": True, "scoring_calls": 5000},
}

SCALING_LAYERS = ("1", "6", "all")
SCALING_NEURONS = (16, 128, 1024)
SCALING_PAIRS = 5
SCALING_TOKENS = 64
SCALING_N_CTX = 1024

CONFIG_ORDER = ["plain", "hnggml", "python", "capture"]

# Fraction of decode steps, the slowest, left out of the per-token CPU figure.
TRIM = 0.1

TARGETS = {
    "decode_cpu_ratio": ("<=", 1.02, "decode: at most 2% more CPU per generated token than plain"),
    "prefill_cpu_ratio": ("<=", 1.03, "prefill: at most 3% more CPU per prompt token than plain"),
    "python_callback_ratio": (">=", 5.0, "the Python callback costs at least 5x the C monitor's overhead"),
    "capture_prefill_ratio": (">=", 0.8, "full capture keeps at least 0.8x plain prefill throughput"),
    "rss_overhead_mib": ("<=", 16.0, "at most 16 MiB more peak RSS than plain at n_ctx 4096"),
}

# Below this fraction of plain's CPU per token the C monitor's overhead is
# within measurement noise. The Python/C ratio then divides by this floor
# instead, so that pair's ratio is a lower bound.
OVERHEAD_FLOOR = 0.005


@dataclass
class ModelSetup:
    path: str
    info: Any
    probe_path: str
    probe: Any
    probe_source: str


# Setup ------------------------------------------------------------------------------


def random_probe(info: Any, neurons: np.ndarray, seed: int, norms: np.ndarray | None = None) -> Any:
    """Return an HProbe over the given (layer, neuron) pairs with random coefficients.

    The column norms come from ``norms`` (an (n_layer, n_ff) array) when
    given, else from the model file through hnggml.weights.column_norms.
    """
    from hnggml import HProbe
    from hnggml.weights import column_norms

    rng = np.random.default_rng(seed)
    neurons = np.asarray(neurons, dtype=np.int64).reshape(-1, 2)
    w_norm = norms[neurons[:, 0], neurons[:, 1]] if norms is not None else column_norms(info.path, neurons)
    model = {"architecture": info.architecture, "n_layer": info.n_layer, "n_ff": info.n_ff,
             "n_embd": info.n_embd, "name": info.name, "ffn_down_sha256": info.ffn_down_sha256}
    return HProbe(model=model, neurons_=neurons, coef_=rng.normal(0.0, 1.0, len(neurons)) / np.sqrt(len(neurons)),
                  intercept_=0.0, w_norm_=w_norm, training={"random": True})


def random_neurons(info: Any, n: int, seed: int) -> np.ndarray:
    """Return n distinct (layer, neuron) pairs drawn uniformly from the whole model."""
    flat = np.random.default_rng(seed).choice(info.n_layer * info.n_ff, size=n, replace=False)
    return np.column_stack([flat // info.n_ff, flat % info.n_ff])


def layer_neurons(info: Any, layers: list[int], per_layer: int, seed: int) -> np.ndarray:
    """Return per_layer distinct random neurons in each of the given layers."""
    rng = np.random.default_rng(seed)
    pairs = [(layer, int(j)) for layer in layers for j in rng.choice(info.n_ff, size=per_layer, replace=False)]
    return np.array(sorted(pairs), dtype=np.int64)


def scaling_layers(info: Any, spec: str) -> list[int]:
    if spec == "all":
        return list(range(info.n_layer))
    count = int(spec)
    return sorted({int(x) for x in np.linspace(0, info.n_layer - 1, count + 2)[1:-1].round()}) if count > 1 \
        else [info.n_layer // 2]


def prepare_models(args: argparse.Namespace, workdir: Path) -> list[ModelSetup]:
    """Resolve each model and its probe: given, shipped, or random of the first probe's size."""
    from hnggml import HProbe
    from hnggml.llama import find_bundled_probe
    from hnggml.models import resolve_model
    from hnggml.weights import model_info

    setups: list[ModelSetup] = []
    for index, spec in enumerate(args.model):
        path = str(resolve_model(spec))
        logger.info("reading %s (the first read hashes its ffn_down tensors and is cached)", path)
        info = model_info(path)
        if index == 0 and args.probe:
            probe_path, source = str(args.probe), "given"
        else:
            found = find_bundled_probe(info)
            probe_path, source = (str(found), "shipped") if found else (None, "random")
        if probe_path is None:
            if index == 0:
                raise SystemExit(f"no shipped probe matches {path}; pass --probe PATH")
            size = setups[0].probe.n_neurons
            probe = random_probe(info, random_neurons(info, size, seed=index), seed=index)
            probe_path = str(probe.save(workdir / f"random-probe-{index}.json"))
            source = f"random, {size} neurons"
        probe = HProbe.load(probe_path)
        probe.check_model(info)
        setups.append(ModelSetup(path, info, probe_path, probe, source))
    return setups


# Paired suites --------------------------------------------------------------------------


def worker_arguments(kind: str, setup: ModelSetup, n_threads: int, cfg: dict[str, Any], index: int) -> list[str]:
    return ["--worker", kind, "--pair-index", str(index), "--model", setup.path, "--probe", setup.probe_path,
            "--threads", str(n_threads), "--n-ctx", str(cfg["n_ctx"]), "--tokens", str(cfg["tokens"]),
            "--prefill-tokens", str(cfg["prefill"])]


def run_suite(setup: ModelSetup, n_threads: int, cfg: dict[str, Any]) -> dict[str, Any]:
    """Measure decode, prefill and full capture of one model at one thread count, one process per pair."""
    logger.info("%s, %d thread(s): %d pairs, each in a fresh process", setup.info.name, n_threads, cfg["pairs"])
    pairs = []
    for k in range(cfg["pairs"]):
        pairs.append(measure.run_worker(BENCH_SCRIPT, worker_arguments("suite", setup, n_threads, cfg, k)))
        decode = pairs[-1]["decode"]
        logger.info("  pair %d/%d, decode CPU ms per token (trimmed): %s", k + 1, cfg["pairs"],
                    ", ".join(f"{n} {1e3 * trimmed_per_token(decode, n):.2f}" for n in decode["order"]))
    first = pairs[0]
    return {
        "model": setup.info.name,
        "model_path": setup.path,
        "probe": {"path": setup.probe_path, "source": setup.probe_source, "n_neurons": setup.probe.n_neurons,
                  "n_layers": len(setup.probe.layer_neurons())},
        "n_threads": n_threads,
        "decode": summarise_decode([p["decode"] for p in pairs]),
        "prefill": summarise_prefill([p["prefill"] for p in pairs]),
        "capture": summarise_capture([p["capture"] for p in pairs], first["n_answer_tokens"]),
        "reference_check": first["reference_check"],
        "reference_checks_passed": sum(p["reference_check"].get("tokens_equal", False) for p in pairs),
    }


def trimmed_per_token(run: dict[str, Any], name: str) -> float:
    """Return mean CPU seconds per decode step after dropping the slowest TRIM of the steps.

    The dropped steps are the one that evaluates the prompt and the ones hit
    by preemption. Such a spike is several times the usual step, so it would
    move the mean by more than the effect being measured.
    """
    steps = np.sort(np.asarray(run["steps"][name]))
    keep = max(1, int(round(len(steps) * (1.0 - TRIM))))
    return float(steps[:keep].mean())


def per_token(runs: list[dict[str, Any]], name: str, clock: str = "cpu") -> list[float]:
    """Return seconds per token (total over the run) of one configuration, one value per pair."""
    return [run[clock][name] / max(run["units"][name], 1) for run in runs]


def _ratios(top: list[float], bottom: list[float]) -> list[float]:
    return [a / b for a, b in zip(top, bottom, strict=True)]


def summarise_decode(runs: list[dict[str, Any]]) -> dict[str, Any]:
    names = sorted(runs[0]["order"], key=CONFIG_ORDER.index)
    cpu = {n: [trimmed_per_token(run, n) for run in runs] for n in names}
    total = {n: per_token(runs, n) for n in names}
    wall = {n: per_token(runs, n, "wall") for n in names}
    out: dict[str, Any] = {
        "n_tokens": runs[0]["units"]["plain"],
        "trim": TRIM,
        "cpu_ms_per_token": {n: _scaled(summarise(cpu[n]), 1e3) for n in names},
        "untrimmed_cpu_ms_per_token": {n: _scaled(summarise(total[n]), 1e3) for n in names},
        "wall_ms_per_token": {n: _scaled(summarise(wall[n]), 1e3) for n in names},
        "cpu_ratio": {n: summarise(_ratios(cpu[n], cpu["plain"])) for n in names if n != "plain"},
        "untrimmed_cpu_ratio": {n: summarise(_ratios(total[n], total["plain"])) for n in names if n != "plain"},
        "overhead_ms_per_token": {n: summarise([1e3 * (a - b) for a, b in zip(cpu[n], cpu["plain"], strict=True)])
                                  for n in names if n != "plain"},
    }
    if "python" in names and "hnggml" in names:
        ratios, clamped = [], 0
        for plain, c, py in zip(cpu["plain"], cpu["hnggml"], cpu["python"], strict=True):
            floor = OVERHEAD_FLOOR * plain
            if c - plain < floor:
                clamped += 1
            ratios.append((py - plain) / max(c - plain, floor))
        out["python_callback_ratio"] = summarise(ratios)
        out["python_callback_ratio_clamped_pairs"] = clamped
    return out


def summarise_prefill(runs: list[dict[str, Any]]) -> dict[str, Any]:
    names = sorted(runs[0]["order"], key=CONFIG_ORDER.index)
    cpu = {n: per_token(runs, n) for n in names}
    return {
        "n_tokens": runs[0]["units"]["plain"],
        "tokens_per_cpu_s": {n: summarise([1.0 / x for x in cpu[n]]) for n in names},
        "tokens_per_wall_s": {n: summarise([1.0 / x for x in per_token(runs, n, "wall")]) for n in names},
        "cpu_ratio": {n: summarise(_ratios(cpu[n], cpu["plain"])) for n in names if n != "plain"},
    }


def summarise_capture(runs: list[dict[str, Any]], n_answer: int) -> dict[str, Any]:
    cpu = {n: per_token(runs, n) for n in ("plain", "capture")}
    return {
        "n_tokens": runs[0]["units"]["plain"],
        "n_answer_tokens": n_answer,
        "tokens_per_cpu_s": {n: summarise([1.0 / x for x in cpu[n]]) for n in cpu},
        "throughput_ratio": summarise(_ratios(cpu["plain"], cpu["capture"])),
    }


def _scaled(summary: dict[str, Any], factor: float) -> dict[str, Any]:
    return {k: (v * factor if k != "n" and v is not None else v) for k, v in summary.items()}


# Peak RSS -------------------------------------------------------------------------------


def run_rss(setup: ModelSetup, kinds: list[str], cfg: dict[str, Any]) -> dict[str, Any]:
    """Measure peak RSS of each configuration in its own process, pairs in rotated order."""
    peaks: dict[str, list[float]] = {k: [] for k in kinds}
    anon: dict[str, list[float]] = {k: [] for k in kinds}
    for k in range(cfg["rss_pairs"]):
        for kind in rotated(kinds, k):
            arguments = ["--worker", "rss", "--kind", kind, "--model", setup.path, "--probe", setup.probe_path,
                         "--threads", "1", "--n-ctx", str(cfg["n_ctx"]), "--tokens", str(min(cfg["tokens"], 16)),
                         "--prefill-tokens", str(cfg["prefill"])]
            memory = measure.run_worker(BENCH_SCRIPT, arguments)
            peaks[kind].append(memory["peak_rss_kib"] / 1024)
            if "rss_anon_kib" in memory:
                anon[kind].append(memory["rss_anon_kib"] / 1024)
        logger.info("  peak RSS pair %d/%d: %s", k + 1, cfg["rss_pairs"],
                    ", ".join(f"{kind} {peaks[kind][-1]:.1f} MiB" for kind in kinds))

    def differences(values: dict[str, list[float]]) -> dict[str, Any]:
        return {kind: summarise([a - b for a, b in zip(v, values["plain"], strict=True)])
                for kind, v in values.items() if kind != "plain"}

    return {
        "n_ctx": cfg["n_ctx"],
        "peak_mib": {kind: summarise(v) for kind, v in peaks.items()},
        "overhead_mib": differences(peaks),
        "anon_overhead_mib": differences(anon) if anon["plain"] else {},
    }


# Scaling ----------------------------------------------------------------------------------


def run_scaling(setup: ModelSetup, cfg: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Decode and prefill cost against the number of monitored layers and neurons (1 thread)."""
    from hnggml.weights import all_column_norms

    info = setup.info
    norms = all_column_norms(setup.path)
    probes: dict[str, str] = {}
    shapes: dict[str, tuple[int, int]] = {}
    for spec in SCALING_LAYERS:
        layers = scaling_layers(info, spec)
        for per_layer in SCALING_NEURONS:
            name = f"{len(layers)}x{per_layer}"
            probe = random_probe(info, layer_neurons(info, layers, per_layer, seed=per_layer), seed=per_layer,
                                 norms=norms)
            probes[name] = str(probe.save(workdir / f"scaling-{name}.json"))
            shapes[name] = (len(layers), per_layer)
    manifest = workdir / "scaling-probes.json"
    manifest.write_text(json.dumps(probes))

    runs = []
    for k in range(SCALING_PAIRS):
        arguments = ["--worker", "scaling", "--pair-index", str(k), "--model", setup.path,
                     "--scaling-probes", str(manifest), "--n-ctx", str(SCALING_N_CTX),
                     "--tokens", str(SCALING_TOKENS), "--prefill-tokens", str(cfg["prefill"])]
        runs.append(measure.run_worker(BENCH_SCRIPT, arguments))
        logger.info("  scaling pair %d/%d done", k + 1, SCALING_PAIRS)

    decode, prefill = [r["decode"] for r in runs], [r["prefill"] for r in runs]
    plain_decode = [trimmed_per_token(run, "plain") for run in decode]
    plain_prefill = per_token(prefill, "plain")
    rows = []
    for name, (n_layers, per_layer) in shapes.items():
        cpu_decode = [trimmed_per_token(run, name) for run in decode]
        overhead = [1e3 * (a - b) for a, b in zip(cpu_decode, plain_decode, strict=True)]
        rows.append({
            "layers": n_layers,
            "neurons_per_layer": per_layer,
            "neurons": n_layers * per_layer,
            "decode_cpu_ratio": summarise(_ratios(cpu_decode, plain_decode)),
            "decode_overhead_ms_per_token": summarise(overhead),
            "prefill_cpu_ratio": summarise(_ratios(per_token(prefill, name), plain_prefill)),
        })
    return {"model": info.name, "pairs": SCALING_PAIRS, "n_tokens": SCALING_TOKENS, "n_ctx": SCALING_N_CTX,
            "rows": rows}


# Probe scoring --------------------------------------------------------------------------


def time_scoring(setups: list[ModelSetup], calls: int, sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    """Time HProbe.h_logit and predict_proba on one feature vector, in microseconds per call."""
    from hnggml.features import SIGNALS

    first = setups[0]
    info = first.info
    # Scoring time does not depend on the norms' values, so random probes skip reading the model.
    norms = np.ones((info.n_layer, info.n_ff), dtype=np.float32)
    probes = [("probe in use", first.probe)]
    for n in sizes:
        n = min(n, info.n_layer * info.n_ff)
        probes.append((f"random {n}", random_probe(info, random_neurons(info, n, seed=n), seed=n, norms=norms)))
    rows = []
    for label, probe in probes:
        x = np.random.default_rng(0).random(probe.n_neurons).astype(np.float32)
        signals = {name: np.array([0.5]) for name in SIGNALS}
        row = {"probe": label, "n_neurons": probe.n_neurons}
        methods = {
            "h_logit": lambda probe=probe, x=x: probe.h_logit(x),
            "predict_proba": lambda probe=probe, x=x, signals=signals: probe.predict_proba(x, signals),
        }
        for method, call in methods.items():
            per_call = [t / calls for t in timeit.repeat(call, number=calls, repeat=7)]
            row[f"{method}_us"] = _scaled(summarise(per_call), 1e6)
        rows.append(row)
    return rows


# Machine and targets ---------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    import llama_cpp

    cpu_model = platform.processor() or "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    lib_dir = Path(llama_cpp.__file__).resolve().parent / "lib"
    ggml = sorted(p.name for p in lib_dir.glob("libggml-base.so.*.*.*"))
    try:
        system = llama_cpp.llama_print_system_info().decode().strip()
    except (AttributeError, UnicodeDecodeError):
        system = ""
    return {
        "cpu_model": cpu_model,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "llama_cpp_python": llama_cpp.__version__,
        "ggml_library": ggml[-1] if ggml else "unknown",
        "llama_cpp_commit": "unknown (llama-cpp-python does not expose it)",
        "llama_cpp_system_info": system,
        "platform": platform.platform(),
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def evaluate_targets(headline: dict[str, Any]) -> list[dict[str, Any]]:
    """Return, per target, the measured value, whether it is met and by how much it is missed."""
    out = []
    for key, (op, limit, text) in TARGETS.items():
        value = headline.get(key)
        if value is None:
            out.append({"key": key, "target": f"{op} {limit}", "text": text, "value": None, "met": None,
                        "missed_by": None})
            continue
        met = value <= limit if op == "<=" else value >= limit
        out.append({"key": key, "target": f"{op} {limit}", "text": text, "value": value, "met": bool(met),
                    "missed_by": None if met else abs(value - limit)})
    return out


def headline(suite: dict[str, Any], rss: dict[str, Any]) -> dict[str, Any]:
    decode = suite["decode"]
    return {
        "decode_cpu_ratio": decode["cpu_ratio"]["hnggml"]["median"],
        "prefill_cpu_ratio": suite["prefill"]["cpu_ratio"]["hnggml"]["median"],
        "python_callback_ratio": decode["python_callback_ratio"]["median"],
        "capture_prefill_ratio": suite["capture"]["throughput_ratio"]["median"],
        "rss_overhead_mib": rss["overhead_mib"]["hnggml"]["median"],
        "c_overhead_ms_per_token": decode["overhead_ms_per_token"]["hnggml"]["median"],
        "python_overhead_ms_per_token": decode["overhead_ms_per_token"]["python"]["median"],
        "plain_cpu_ms_per_token": decode["cpu_ms_per_token"]["plain"]["median"],
    }


# Entry point -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--smoke", action="store_true", help="seconds-long check of the harness: 2 pairs, 8 tokens")
    mode.add_argument("--quick", action="store_true", help="default model, 1 thread, 7 pairs of 64 tokens")
    parser.add_argument("--json", action="store_true", help="print one JSON object with all results on stdout")
    parser.add_argument("--model", action="append",
                        help="GGUF path (repeat for more models); default: the embedded Gemma 3 270M")
    parser.add_argument("--probe", help="probe for the first model; default: its shipped probe. Later models "
                        "use their shipped probe or a random one of the same size")
    parser.add_argument("--threads", help="comma-separated n_threads values, e.g. 1,2 (full default: 1,2)")
    parser.add_argument("--pairs", type=int, help="paired runs per figure (full: 9, quick: 7)")
    parser.add_argument("--tokens", type=int, help="generated tokens per decode run (full: 128, quick: 64)")
    parser.add_argument("--prefill-tokens", type=int, help="prompt tokens per prefill run (default 256)")
    parser.add_argument("--rss-pairs", type=int, help="subprocess pairs for peak RSS (full: 7, quick: 3)")
    parser.add_argument("--n-ctx", type=int, default=4096, help="context size of every instance (default 4096)")
    parser.add_argument("--no-scaling", action="store_true", help="skip the layers x neurons scaling table")
    parser.add_argument("--out", type=Path, help="Markdown report path (full default: docs/benchmarks.md)")
    parser.add_argument("--json-out", type=Path, help="also write the JSON results to this file")
    # Internal: bench.py runs itself with these to measure one pair in a fresh process.
    parser.add_argument("--worker", choices=["suite", "scaling", "rss"], help=argparse.SUPPRESS)
    parser.add_argument("--pair-index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--kind", choices=CONFIG_ORDER, help=argparse.SUPPRESS)
    parser.add_argument("--scaling-probes", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("pairs", "tokens", "prefill_tokens", "rss_pairs", "n_ctx"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    return args


def settings(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    cfg = dict(MODES[mode])
    cfg["n_ctx"] = args.n_ctx
    for key, value in (("pairs", args.pairs), ("tokens", args.tokens), ("prefill", args.prefill_tokens),
                       ("rss_pairs", args.rss_pairs)):
        if value is not None:
            cfg[key] = value
    if args.threads:
        try:
            cfg["threads"] = [int(t) for t in args.threads.split(",")]
        except ValueError:
            raise SystemExit(f"--threads must be comma-separated integers such as 1,2, got {args.threads!r}") from None
    if args.no_scaling:
        cfg["scaling"] = False
    if cfg["prefill"] < 8:
        raise SystemExit(f"--prefill-tokens must be at least 8, got {cfg['prefill']}")
    return mode, cfg


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(run_worker_mode(args)))
        return 0

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    mode, cfg = settings(args)
    if args.model is None:
        args.model = [None]
    if not cfg["second_model"] and len(args.model) > 1:
        logger.info("%s mode measures only the first model", mode)
        args.model = args.model[:1]
    measure.ignore_end_of_generation()
    started = time.perf_counter()
    results: dict[str, Any] = {"mode": mode, "settings": cfg, "machine": machine_info(),
                               "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])}

    with tempfile.TemporaryDirectory(prefix="hnggml-bench-") as tmp:
        workdir = Path(tmp)
        setups = prepare_models(args, workdir)
        results["suites"] = []
        results["rss"] = []
        for setup in setups:
            for n_threads in cfg["threads"]:
                results["suites"].append(run_suite(setup, n_threads, cfg))
            kinds = ["plain", "hnggml"] if mode != "full" else ["plain", "hnggml", "python", "capture"]
            logger.info("%s: peak RSS at n_ctx %d", setup.info.name, cfg["n_ctx"])
            results["rss"].append({"model": setup.info.name, **run_rss(setup, kinds, cfg)})
        if cfg["scaling"]:
            results["scaling"] = run_scaling(setups[0], cfg, workdir)
        sizes = (16, 1024) if mode == "smoke" else (16, 128, 1024, setups[0].info.n_layer * 1024)
        results["probe_scoring"] = time_scoring(setups, cfg["scoring_calls"], sizes)

    results.update(headline(results["suites"][0], results["rss"][0]))
    results["targets"] = evaluate_targets(results)
    results["machine"]["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    results["elapsed_s"] = time.perf_counter() - started

    if args.json_out:
        write_atomic(args.json_out, json.dumps(results, indent=1, default=float) + "\n")
    out = args.out or (REPO_DIR / "docs" / "benchmarks.md" if mode == "full" else None)
    if out is not None:
        from report import render

        write_atomic(out, render(results))
        logger.info("wrote %s", out)
    if args.json:
        print(json.dumps(results, default=float))
    else:
        from report import render_summary

        print(render_summary(results))
    return 0


def run_worker_mode(args: argparse.Namespace) -> dict[str, Any]:
    """Measure one pair (or one peak RSS) in this process and return the result."""
    model, n_threads = args.model[0], int(args.threads or 1)
    if args.worker == "rss":
        return measure.rss_worker(args.kind, model, args.probe, args.n_ctx, n_threads, args.tokens,
                                  args.prefill_tokens)
    if args.worker == "suite":
        return measure.suite_pair(model, args.probe, n_threads, args.n_ctx, args.tokens, args.prefill_tokens,
                                  args.pair_index)
    probes = json.loads(args.scaling_probes.read_text())
    return measure.scaling_pair(model, probes, args.n_ctx, args.tokens, args.prefill_tokens, args.pair_index)


def write_atomic(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


if __name__ == "__main__":
    sys.exit(main())
