"""Render bench.py results as the Markdown page docs/benchmarks.md and a short text summary."""

from __future__ import annotations

import datetime
from typing import Any

CONFIG_LABELS = {
    "plain": "llama_cpp.Llama",
    "hnggml": "hnggml.Llama (C monitor)",
    "python": "Python ctypes callback",
    "capture": "full capture (TeacherForcer)",
}


def _num(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _spread(summary: dict[str, Any], digits: int = 2) -> str:
    """Format a summary as 'median (min to max)'."""
    if summary.get("median") is None:
        return "n/a"
    return f"{_num(summary['median'], digits)} ({_num(summary['min'], digits)} to {_num(summary['max'], digits)})"


def _target_rows(results: dict[str, Any]) -> list[str]:
    rows = ["| target | measured (median) | met | missed by |", "| --- | --- | --- | --- |"]
    for t in results["targets"]:
        if t["value"] is None:
            rows.append(f"| {t['text']} (`{t['key']}` {t['target']}) | n/a | not measured | |")
            continue
        met = "met" if t["met"] else "missed"
        missed = "" if t["met"] else _num(t["missed_by"], 3)
        rows.append(f"| {t['text']} (`{t['key']}` {t['target']}) | {_num(t['value'], 3)} | {met} | {missed} |")
    return rows


def _suite_rows(suite: dict[str, Any]) -> list[str]:
    decode, prefill, capture = suite["decode"], suite["prefill"], suite["capture"]
    rows = [
        f"### {suite['model']}, n_threads {suite['n_threads']}",
        "",
        f"Probe: {suite['probe']['n_neurons']} neurons in {suite['probe']['n_layers']} layers "
        f"({suite['probe']['source']}). Decode: {decode['n_tokens']} greedy tokens per run; prefill: "
        f"{prefill['n_tokens']} prompt tokens per run; capture: {capture['n_tokens']} tokens, "
        f"{capture['n_answer_tokens']} of them answer tokens. Median (min to max) over "
        f"{decode['cpu_ms_per_token']['plain']['n']} pairs, each pair in a fresh process. Decode CPU per "
        f"token leaves out the slowest {decode['trim']:.0%} of steps (the prompt step and preemption spikes).",
        "",
        "| configuration | decode CPU ms/token | decode wall ms/token | CPU ratio to plain | overhead CPU ms/token "
        "| prefill tokens/CPU s | prefill CPU ratio to plain |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in decode["cpu_ms_per_token"]:
        ratio = _spread(decode["cpu_ratio"][name], 3) if name in decode["cpu_ratio"] else "1"
        overhead = _spread(decode["overhead_ms_per_token"][name], 3) if name in decode["overhead_ms_per_token"] else "0"
        prefill_ratio = _spread(prefill["cpu_ratio"][name], 3) if name in prefill["cpu_ratio"] else "1"
        rows.append(
            f"| {CONFIG_LABELS.get(name, name)} | {_spread(decode['cpu_ms_per_token'][name])} "
            f"| {_spread(decode['wall_ms_per_token'][name])} | {ratio} | {overhead} "
            f"| {_spread(prefill['tokens_per_cpu_s'][name], 0)} | {prefill_ratio} |"
        )
    untrimmed = decode["untrimmed_cpu_ratio"].get("hnggml")
    if untrimmed:
        rows += ["", "hnggml decode CPU ratio with every step counted (total CPU over tokens): "
                 f"{_spread(untrimmed, 3)}."]
    py = decode.get("python_callback_ratio")
    if py:
        rows += ["", f"Python callback overhead over C monitor overhead, per pair: {_spread(py)}"
                 f" ({decode['python_callback_ratio_clamped_pairs']} pairs had a C overhead below the noise floor, "
                 "so their ratio is a lower bound)."]
    rows += [
        "",
        f"Full capture: {_spread(capture['tokens_per_cpu_s']['capture'], 0)} tokens per CPU second against "
        f"{_spread(capture['tokens_per_cpu_s']['plain'], 0)} for plain prefill of the same batch; throughput ratio "
        f"{_spread(capture['throughput_ratio'], 3)}.",
    ]
    check = suite.get("reference_check") or {}
    if check.get("tokens_equal"):
        rows += ["", f"Check of the Python reference: in {suite['reference_checks_passed']} of "
                 f"{decode['cpu_ms_per_token']['plain']['n']} pairs it generated the same tokens as hnggml.Llama; "
                 f"in the first pair its CETT rows differ from hnggml's by at most "
                 f"{check.get('max_abs_row_diff', float('nan')):.2e} (largest value "
                 f"{check.get('max_row_value', float('nan')):.3g})."]
    elif check:
        rows += ["", "The Python reference generated other tokens than hnggml.Llama in the first pair, so its "
                 "rows were not compared."]
    return rows + [""]


def _rss_rows(rss_list: list[dict[str, Any]]) -> list[str]:
    rows = ["| model | configuration | peak RSS MiB | peak RSS more than plain, MiB "
            "| anonymous RSS more than plain, MiB |", "| --- | --- | --- | --- | --- |"]
    for rss in rss_list:
        for kind, peak in rss["peak_mib"].items():
            extra = _spread(rss["overhead_mib"][kind], 1) if kind in rss["overhead_mib"] else ""
            anon = _spread(rss["anon_overhead_mib"][kind], 1) if kind in rss.get("anon_overhead_mib", {}) else ""
            rows.append(f"| {rss['model']} | {CONFIG_LABELS.get(kind, kind)} | {_spread(peak, 1)} | {extra} | {anon} |")
    return rows


def _scaling_rows(scaling: dict[str, Any]) -> list[str]:
    rows = [
        f"Model {scaling['model']}, n_threads 1, random probes, n_ctx {scaling['n_ctx']}, {scaling['n_tokens']} "
        f"generated tokens per run, {scaling['pairs']} pairs (each a fresh process holding plain and all nine "
        "monitored instances).",
        "",
        "| layers | neurons per layer | neurons | decode CPU ratio to plain | decode overhead CPU ms/token "
        "| prefill CPU ratio to plain |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in scaling["rows"]:
        rows.append(f"| {r['layers']} | {r['neurons_per_layer']} | {r['neurons']} "
                    f"| {_spread(r['decode_cpu_ratio'], 3)} "
                    f"| {_spread(r['decode_overhead_ms_per_token'], 3)} | {_spread(r['prefill_cpu_ratio'], 3)} |")
    return rows


def _scoring_rows(scoring: list[dict[str, Any]]) -> list[str]:
    rows = ["| probe | neurons | h_logit, µs | predict_proba, µs |", "| --- | --- | --- | --- |"]
    for r in scoring:
        rows.append(f"| {r['probe']} | {r['n_neurons']} | {_spread(r['h_logit_us'], 1)} "
                    f"| {_spread(r['predict_proba_us'], 1)} |")
    return rows


def render(results: dict[str, Any]) -> str:
    """Return the full Markdown report."""
    m = results["machine"]
    cfg = results["settings"]
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmarks: what watching the neurons costs",
        "",
        f"Written by `bench/bench.py` ({results['mode']} mode) on {when}, in {results['elapsed_s'] / 60:.1f} minutes. "
        "How each figure is measured: [bench/README.md](../bench/README.md).",
        "",
        "```sh",
        results["command"],
        "```",
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu_model']}, {m['logical_cpus']} logical CPUs ({m['usable_cpus']} usable by the process)",
        f"- Load average (1, 5, 15 min) at start {m['load_average_start']}, at end {m.get('load_average_end')}",
        f"- Python {m['python']}, llama-cpp-python {m['llama_cpp_python']}, {m['ggml_library']}, "
        f"llama.cpp commit {m['llama_cpp_commit']}",
        f"- llama.cpp CPU features: `{m['llama_cpp_system_info']}`",
        f"- {m['platform']}",
        "",
        "Only the CPU backend was measured. GPU figures (Metal, CUDA, Vulkan) are unmeasured: with layers "
        "offloaded, the monitor reads tensors through ggml_backend_tensor_get, and every watched layer adds a "
        "synchronisation, so its cost there may differ from the CPU figures below.",
        "",
        "## Targets",
        "",
        f"Headline figures: first model, n_threads {cfg['threads'][0]}, n_ctx {cfg['n_ctx']}. Ratios are taken per "
        "pair (monitored over plain in the same pair), then summarised.",
        "",
        *_target_rows(results),
        "",
        f"C monitor overhead: {_num(results.get('c_overhead_ms_per_token'), 3)} ms CPU per token; Python callback "
        f"overhead: {_num(results.get('python_overhead_ms_per_token'), 3)} ms CPU per token; plain: "
        f"{_num(results.get('plain_cpu_ms_per_token'), 2)} ms CPU per token.",
        "",
        "## Decode, prefill and full capture",
        "",
    ]
    for suite in results["suites"]:
        lines += _suite_rows(suite)
    lines += ["## Peak RSS", "", f"One process per configuration and pair, n_ctx {cfg['n_ctx']}, VmHWM after a "
              "short completion and one prefill. Anonymous RSS (RssAnon, read at the end) leaves out the pages "
              "of the memory-mapped model file, whose count varies with the page cache.", "",
              *_rss_rows(results["rss"]), ""]
    if results.get("scaling"):
        lines += ["## Scaling with monitored layers and neurons", "", *_scaling_rows(results["scaling"]), ""]
    lines += ["## Probe scoring", "", "One feature vector per call, numpy, median (min to max) of 7 repeats.", "",
              *_scoring_rows(results["probe_scoring"]), ""]
    return "\n".join(lines)


def render_summary(results: dict[str, Any]) -> str:
    """Return a few lines with the headline figures and the targets."""
    lines = [f"hnggml benchmark ({results['mode']} mode, {results['elapsed_s']:.0f} s)"]
    for t in results["targets"]:
        if t["met"] is None:
            state = "not measured"
        elif t["met"]:
            state = "met"
        else:
            state = f"missed by {t['missed_by']:.3f}"
        lines.append(f"  {t['key']} = {_num(t['value'], 3)} (target {t['target']}): {state}")
    lines.append(f"  C overhead {_num(results.get('c_overhead_ms_per_token'), 3)} ms/token, Python callback overhead "
                 f"{_num(results.get('python_overhead_ms_per_token'), 3)} ms/token, plain "
                 f"{_num(results.get('plain_cpu_ms_per_token'), 2)} ms/token")
    return "\n".join(lines)
