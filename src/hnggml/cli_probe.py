"""``hnggml probe info``: describe a probe file without loading its model.

Importing this module registers the ``probe`` command group on
:data:`hnggml.cli.main`.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import click

from .cli import _fail, main

# Lists longer than this are summarised in the text output (--json prints them whole).
_MAX_LIST_ITEMS = 8


@main.group("probe")
def probe_group() -> None:
    """Inspect H-neuron probe files."""


def probe_summary(path: Path) -> dict[str, Any]:
    """Load a probe and return its model, neurons per layer, settings, metrics and training record."""
    from .probe import HProbe

    probe = HProbe.load(path)
    per_layer = Counter(int(layer) for layer in probe.neurons_[:, 0])
    model = dict(probe.model)
    n_total = model["n_layer"] * model["n_ff"]
    combiner = probe.combiner
    return {
        "path": str(path),
        "model": model,
        "n_neurons": probe.n_neurons,
        "neuron_fraction": probe.n_neurons / n_total,
        "neurons_per_layer": {str(layer): per_layer.get(layer, 0) for layer in range(model["n_layer"])},
        "aggregation": probe.aggregation,
        "threshold": probe.threshold,
        "combiner_inputs": list(combiner.inputs) if combiner is not None else None,
        "prompt": probe.prompt,
        "llama_cpp_version": probe.llama_cpp_version,
        "versions": probe.versions,
        "metrics": probe.metrics,
        "training": probe.training,
    }


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Turn nested dicts into (dotted key, short text) rows."""
    if isinstance(data, dict):
        if not data and prefix:
            return [(prefix, "{}")]
        rows = []
        for key, value in data.items():
            rows += _flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return rows
    if isinstance(data, float):
        return [(prefix, f"{data:.4g}")]
    if isinstance(data, list) and len(data) > _MAX_LIST_ITEMS:
        shown = json.dumps(data[:_MAX_LIST_ITEMS])[:-1]
        return [(prefix, f"{shown}, ...] ({len(data)} items)")]
    return [(prefix, json.dumps(data) if not isinstance(data, str) else data)]


def format_summary(summary: dict[str, Any]) -> str:
    """Render probe_summary() as the text that `hnggml probe info` prints."""
    model = summary["model"]
    sha = str(model.get("ffn_down_sha256", ""))
    lines = [
        f"probe      {summary['path']}",
        f"model      {model.get('name', '?')} ({model.get('architecture', '?')}, {model['n_layer']} layers, "
        f"n_ff {model['n_ff']}, n_embd {model.get('n_embd', '?')}, ffn_down sha256 {sha[:16]})",
        f"neurons    {summary['n_neurons']} of {model['n_layer'] * model['n_ff']} "
        f"({100 * summary['neuron_fraction']:.3f}%)",
        f"scoring    {summary['aggregation']} over answer tokens, threshold {summary['threshold']:.3f}, "
        f"combiner {', '.join(summary['combiner_inputs']) if summary['combiner_inputs'] else 'none'}",
    ]
    if summary["prompt"]:
        lines.append(f"prompt     {json.dumps(summary['prompt'])}")
    if summary["llama_cpp_version"]:
        lines.append(f"llama-cpp  {summary['llama_cpp_version']}")
    lines += ["", "neurons per layer:", "  layer  neurons"]
    lines += [f"  {layer:>5}  {count:>7}" for layer, count in summary["neurons_per_layer"].items()]
    for title in ("metrics", "training", "versions"):
        lines += ["", f"{title}:"]
        rows = _flatten(summary[title])
        lines += [f"  {key}: {value}" for key, value in rows] if rows else ["  (none recorded)"]
    return "\n".join(lines)


@probe_group.command("info")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def probe_info(path: Path, as_json: bool) -> None:
    """Show a probe's model, neurons per layer, metrics and training record.

    PATH is a probe JSON file, as written by `hnggml train`.
    """
    from .errors import HnggmlError

    try:
        summary = probe_summary(path)
    except (HnggmlError, OSError, ValueError) as exc:
        _fail(exc)
    click.echo(json.dumps(summary, indent=1) if as_json else format_summary(summary))
