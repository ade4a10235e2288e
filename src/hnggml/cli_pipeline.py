"""`hnggml train` and `hnggml eval`: the probe pipeline from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .cli import main, model_option, probe_option


@main.command()
@model_option
@click.option("--data", "-d", "data", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Question file (JSONL, TriviaQA JSON/parquet or NQ-Open JSONL); repeat for several. "
              "Default: the shipped corpus data/corpus.jsonl.")
@click.option("--out", "-o", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Run folder for samples and features; rerunning with the same folder resumes.")
@click.option("--probe-out", type=click.Path(dir_okay=False), default=None,
              help="Where to write the probe; default: OUT/probe.json.")
@click.option("--samples", "n_samples", type=click.IntRange(1, 50), default=5, show_default=True,
              help="Answers sampled per question (temperature 1.0, top-p 0.9, top-k 50).")
@click.option("--max-questions", type=click.IntRange(1), default=None,
              help="Use at most this many questions (after shuffling with --seed).")
@click.option("--max-per-relation", type=click.IntRange(1), default=None,
              help="Keep at most this many generated questions per knowledge-base relation.")
@click.option("--C", "C", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Inverse L1 strength of the neuron selection; default: chosen by 5-fold CV AUROC.")
@click.option("--style", type=click.Choice(["fewshot", "chat"]), default=None,
              help="Prompt style; default: chat when the model has a chat template (except Gemma 3 base).")
@click.option("--decoding", type=click.Choice(["sample", "greedy"]), default="sample", show_default=True,
              help="sample: label questions answered consistently over --samples sampled answers; "
              "greedy: label each question by its one greedy answer.")
@click.option("--labels", type=click.Choice(["consistent", "first"]), default="consistent", show_default=True,
              help="consistent: keep questions whose sampled answers are all right or all wrong; "
              "first: label every question by its first sampled answer.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for shuffling, sampling and folds.")
@click.option("--threads", type=click.IntRange(1, 512), default=None, help="CPU threads for llama.cpp.")
def train(model, data, out_dir, probe_out, n_samples, max_questions, max_per_relation, C, style, decoding, labels,
          seed, threads):
    """Find the model's H-neurons and write a probe for it."""
    from .errors import HnggmlError
    from .paths import data_dir
    from .prompting import PromptStyle
    from .train import train as run_training

    files = list(data) or [str(data_dir() / "corpus.jsonl")]
    probe_path = probe_out or str(Path(out_dir) / "probe.json")
    try:
        probe = run_training(
            model, files, out_dir, probe_path, n_samples=n_samples, max_questions=max_questions,
            max_per_relation=max_per_relation, seed=seed, C=C, n_threads=threads,
            style=PromptStyle(style=style) if style else None, decoding=decoding, labels=labels,
        )
    except (HnggmlError, OSError, ValueError, ImportError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {probe_path}: {probe.n_neurons} neurons, CV AUROC "
               f"{probe.metrics['cv_auroc']['risk']:.3f} (risk), {probe.metrics['cv_auroc']['h_neurons']:.3f} "
               "(H-neurons alone)")


@main.command(name="eval")
@model_option
@probe_option
@click.option("--data", "-d", "data", multiple=True, required=True, type=click.Path(exists=True, dir_okay=False),
              help="Question file to score: UTF-8 JSONL lines with \"id\", \"question\", \"answers\" (a list of "
              "aliases), \"category\" and \"source\"; \"answerable\": false with empty answers marks a question "
              "about something that does not exist. Repeat for several files with distinct names.")
@click.option("--out", "-o", "out_dir", type=click.Path(file_okay=False), default="hnggml-eval", show_default=True,
              help="Folder for per-question results; rerunning with the same folder resumes.")
@click.option("--limit", type=click.IntRange(1), default=None, help="Score at most this many questions per file.")
@click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed.")
@click.option("--threads", type=click.IntRange(1, 512), default=None, help="CPU threads for llama.cpp.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def eval_command(model, probe, data, out_dir, limit, seed, threads, as_json):
    """Answer each question once and score every signal (AUROC with 95% CI, balanced accuracy)."""
    from .errors import HnggmlError
    from .evaluate import evaluate, format_table

    try:
        summary = evaluate(model, probe, list(data), out_dir, seed=seed, n_threads=threads, limit=limit)
    except (HnggmlError, OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(summary) if as_json else format_table(summary))
