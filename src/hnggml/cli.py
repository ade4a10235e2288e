"""The `hnggml` command line."""

from __future__ import annotations

import json
import logging

import click

from .prompting import PromptStyle, ask as ask_question

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}

model_option = click.option(
    "--model",
    "-m",
    envvar="HNGGML_MODEL",
    default=None,
    metavar="PATH|ollama:NAME",
    help="GGUF model file or ollama:NAME[:TAG]; default: the embedded Gemma 3 270M "
    "(env HNGGML_MODEL).",
)
probe_option = click.option(
    "--probe",
    "-p",
    default=None,
    metavar="PATH",
    help="Probe file; default: the shipped probe trained on this model.",
)


def _fail(exc: Exception) -> None:
    raise click.ClickException(str(exc)) from exc


def load_llama(model: str | None, probe: str | None, **kwargs):
    """Load hnggml.Llama for the CLI, turning user errors into click errors."""
    from .errors import HnggmlError
    from .llama import Llama

    kwargs.setdefault("verbose", False)
    # --threads caps prompt decoding too; llama-cpp-python would use every core for it.
    if kwargs.get("n_threads") is not None:
        kwargs.setdefault("n_threads_batch", kwargs["n_threads"])
    try:
        return Llama(model, probe=probe, **kwargs)
    except (HnggmlError, OSError, ValueError) as exc:
        _fail(exc)


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(package_name="hnggml")
@click.option("--verbose", "-v", is_flag=True, help="Log progress and llama.cpp messages to stderr.")
def main(verbose: bool) -> None:
    """hnggml: hallucination risk from H-neurons for llama.cpp models."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )


@main.command()
@click.argument("question")
@model_option
@probe_option
@click.option("--max-tokens", type=click.IntRange(1, 4096), default=None,
              help="Maximum answer length in tokens; default: the probe's setting (24).")
@click.option("--temperature", type=click.FloatRange(0.0, 5.0), default=0.0, show_default=True,
              help="Sampling temperature; 0 answers greedily.")
@click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed.")
@click.option("--threads", type=click.IntRange(1, 512), default=None,
              help="CPU threads for llama.cpp; default: half the cores.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with text, risk and flagged.")
@click.option("--challenge", is_flag=True,
              help="Push back once (\"Are you sure?\") and ask again; a changed answer raises the risk.")
def ask(question: str, model: str | None, probe: str | None, max_tokens: int | None,
        temperature: float, seed: int, threads: int | None, as_json: bool, challenge: bool = False) -> None:
    """Answer QUESTION and report its hallucination risk."""
    if not question.strip():
        raise click.BadParameter("the question is empty", param_hint="QUESTION")
    llm = load_llama(model, probe, n_ctx=1024, seed=seed, n_threads=threads)
    style = PromptStyle.from_dict(llm.probe.prompt if llm.probe else None)
    if max_tokens is not None:
        style = PromptStyle(style=style.style, max_tokens=max_tokens, stop=style.stop)
    if challenge:
        from .abstain import challenge as challenge_answer

        result = challenge_answer(llm, question, style, temperature=temperature)
    else:
        result = ask_question(llm, question, style, temperature=temperature)
    report = result["report"] or {}
    if as_json:
        out = {
            "question": question,
            "text": result["text"],
            "risk": report.get("risk"),
            "flagged": bool(report.get("flagged", False)),
            "threshold": report.get("threshold"),
            "signals": report.get("signals"),
            "model": llm.model_info.name,
        }
        if challenge:
            out.update(challenged=True, flipped=result["flipped"], second_text=result["second_text"])
        click.echo(json.dumps(out))
        return
    risk = report.get("risk")
    mark = "FLAGGED" if report.get("flagged") else "ok"
    click.echo(result["text"])
    click.echo(f"risk {risk:.2f} ({mark})" if risk is not None else "risk unavailable", err=False)
    if challenge:
        click.echo(f"after push-back: {result['second_text']!r} ({'flipped' if result['flipped'] else 'kept'})")


# Commands defined in other modules register themselves on `main` when imported.
from . import cli_pipeline  # noqa: E402,F401
from . import cli_intervention  # noqa: E402,F401
from . import cli_chat, cli_models, cli_probe, cli_serve  # noqa: E402,F401
