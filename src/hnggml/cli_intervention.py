"""`hnggml compliance` and `hnggml steer`: scaling the H-neurons from the command line."""

from __future__ import annotations

import json
import math

import click

from .cli import main, model_option, probe_option


def _alphas(ctx: click.Context, param: click.Parameter, value: str) -> list[float]:
    from .compliance import parse_alphas

    try:
        return parse_alphas(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


@main.command()
@model_option
@probe_option
@click.option("--alphas", default="0,0.5,1,1.5,2,2.5,3", show_default=True, callback=_alphas,
              help="Comma-separated neuron scales; 1 leaves the model unchanged.")
@click.option("--limit", type=click.IntRange(1), default=None,
              help="Run at most this many items per set (a seeded random subset); default: all.")
@click.option("--trivia-limit", type=click.IntRange(0), default=100, show_default=True,
              help="Held-out trivia questions per alpha for the accuracy cost; 0 skips trivia.")
@click.option("--out", "-o", "out_dir", type=click.Path(file_okay=False), default="hnggml-compliance",
              show_default=True, help="Folder for per-item results; rerunning with the same folder resumes.")
@click.option("--no-control", is_flag=True, help="Skip the random-neuron control.")
@click.option("--choice", is_flag=True,
              help="Also score each two-choice item by the next-token probabilities of the option letters, "
                   "asked in both option orders so that a letter preference cancels.")
@click.option("--max-tokens", type=click.IntRange(1, 256), default=16, show_default=True,
              help="Maximum length of each model response, in tokens.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed for the item subsets, the control neurons and the bootstraps.")
@click.option("--threads", type=click.IntRange(1, 512), default=None, help="CPU threads for llama.cpp.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
def compliance(model, probe, alphas, limit, trivia_limit, out_dir, no_control, choice, max_tokens, seed, threads,
               as_json):
    """Measure over-compliance while the probe's neurons are scaled by each alpha."""
    from .compliance import format_table, run_compliance
    from .errors import HnggmlError

    try:
        summary = run_compliance(model, probe, alphas, out_dir, limit=limit, trivia_limit=trivia_limit,
                                 control=not no_control, seed=seed, max_tokens=max_tokens, n_threads=threads,
                                 choice=choice)
    except (HnggmlError, OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(summary) if as_json else format_table(summary))


@main.command()
@click.argument("model", metavar="MODEL")
@probe_option
@click.option("--alpha", "-a", type=float, required=True,
              help="Scale for the probe's neurons: 0 silences them, 1 copies the model unchanged.")
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False), required=True,
              help="Path of the GGUF file to write.")
def steer(model, probe, alpha, output):
    """Write a copy of MODEL (a .gguf path or ollama:NAME) with the probe's neurons scaled by ALPHA.

    The scale is folded into the ffn_up weights, so any llama.cpp runtime runs
    the copy without hnggml.
    """
    from .compliance import export_steered
    from .errors import HnggmlError

    if not math.isfinite(alpha) or alpha < 0:
        raise click.BadParameter(f"alpha must be finite and >= 0, got {alpha}", param_hint="--alpha")
    try:
        path = export_steered(model, probe, alpha, output)
    except (HnggmlError, OSError, ValueError, TypeError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {path} (probe neurons scaled by {alpha:g})")
