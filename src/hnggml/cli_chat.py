"""``hnggml chat``: an interactive conversation that prints each answer's risk.

Models with a chat template (or a ``--chat-format``) get their turns through
``create_chat_completion``. Base models without a template, such as the
default Gemma 3 270M, get a plain "User:/Assistant:" transcript through
``create_completion``, because llama-cpp-python's fallback format for them
makes base models answer with nothing.

Importing this module registers the command on :data:`hnggml.cli.main`.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from .cli import load_llama, main, model_option, probe_option
from .cli_common import padded_n_ctx

logger = logging.getLogger(__name__)

TRANSCRIPT_HEADER = "A conversation between a curious user and a helpful, knowledgeable assistant."
TRANSCRIPT_STOP = ["\nUser:", "\n\n"]

_CONTEXT_ERROR = "exceed context window"


class ContextOverflowError(ValueError):
    """The newest message alone does not fit in the context window."""


class ChatSession:
    """A conversation history and the calls that extend it by one answer.

    ``use_template`` selects ``create_chat_completion`` (the model's chat
    template) over a plain transcript completion. When the prompt no longer
    fits in the context window, the oldest exchanges are dropped.
    """

    def __init__(self, llm, *, use_template: bool, system: str | None = None,
                 **generation: Any) -> None:
        self.llm = llm
        self.use_template = use_template
        self.system = system
        self.generation = generation
        self.history: list[dict[str, str]] = []

    def reset(self) -> None:
        self.history.clear()

    def reply(self, text: str) -> tuple[str, dict[str, Any]]:
        """Generate the reply to ``text`` and return (reply, hnggml report).

        Both messages join the history.
        """
        self.history.append({"role": "user", "content": text})
        while True:
            try:
                answer, report = self._generate()
                break
            except ValueError as exc:
                if _CONTEXT_ERROR not in str(exc):
                    self.history.pop()
                    raise
                if len(self.history) <= 1:
                    self.history.pop()
                    raise ContextOverflowError(
                        f"the message does not fit in the context window of {self.llm.n_ctx()} tokens; "
                        "shorten it or restart with a larger --n-ctx"
                    ) from exc
                logger.info("context window full; dropping the oldest exchange")
                del self.history[:2]
        self.history.append({"role": "assistant", "content": answer})
        return answer, report

    def _generate(self) -> tuple[str, dict[str, Any]]:
        if self.use_template:
            messages = ([{"role": "system", "content": self.system}] if self.system else []) + self.history
            response = self.llm.create_chat_completion(messages=messages, **self.generation)
            answer = response["choices"][0]["message"].get("content") or ""
        else:
            response = self.llm.create_completion(self.transcript(), stop=TRANSCRIPT_STOP, **self.generation)
            answer = response["choices"][0]["text"]
        return answer.strip(), response.get("hnggml") or {}

    def transcript(self) -> str:
        """Return the completion prompt of a model without a chat template."""
        lines = [self.system or TRANSCRIPT_HEADER, ""]
        for message in self.history:
            speaker = "User" if message["role"] == "user" else "Assistant"
            lines.append(f"{speaker}: {message['content']}")
        return "\n".join(lines) + "\nAssistant:"


def risk_line(report: dict[str, Any]) -> str:
    """Format a report as ``risk 0.27 (ok)``, ``risk 0.81 (FLAGGED)`` or ``risk unavailable``."""
    risk = report.get("risk")
    if risk is None:
        return "risk unavailable"
    return f"risk {risk:.2f} ({'FLAGGED' if report.get('flagged') else 'ok'})"


def colour_tokens(report: dict[str, Any]) -> str:
    """Return the answer tokens wrapped in ANSI colours by their own risk.

    Green is below half the threshold, yellow below the threshold and red at
    or above it.
    """
    threshold = report.get("threshold", 0.5)
    # The report scores one token even for an empty answer; n_tokens counts the answer's own.
    tokens = report.get("tokens", [])[: report.get("n_tokens", 0)]
    pieces = []
    for position, token in enumerate(tokens):
        text = token["token"].lstrip() if position == 0 else token["token"]
        if token["risk"] >= threshold:
            colour = "red"
        elif token["risk"] >= threshold / 2:
            colour = "yellow"
        else:
            colour = "green"
        pieces.append(click.style(text, fg=colour))
    return "".join(pieces)


def _has_chat_template(llm) -> bool:
    return bool(llm.metadata.get("tokenizer.chat_template"))


@main.command()
@model_option
@probe_option
@click.option("--risk-threshold", type=click.FloatRange(0.0, 1.0), default=None,
              help="Risk in [0, 1] at or above which an answer is flagged; default: the probe's threshold.")
@click.option("--max-tokens", type=click.IntRange(1, 4096), default=128, show_default=True,
              help="Maximum answer length in tokens.")
@click.option("--temperature", type=click.FloatRange(0.0, 5.0), default=0.0, show_default=True,
              help="Sampling temperature; 0 answers greedily.")
@click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed (an integer).")
@click.option("--threads", type=click.IntRange(1, 512), default=None,
              help="CPU threads for llama.cpp; default: half the cores.")
@click.option("--n-ctx", type=click.IntRange(1, 1 << 20), default=2048, show_default=True, callback=padded_n_ctx,
              help="Context window in tokens, rounded up to a multiple of 256; the oldest exchanges are "
              "dropped when the history outgrows it.")
@click.option("--chat-format", default=None, metavar="NAME",
              help="llama-cpp-python chat format (e.g. chatml, gemma, alpaca); default: the model's chat "
              "template, or a plain User:/Assistant: transcript for models without one.")
@click.option("--system", default=None, metavar="TEXT",
              help="System message (or transcript header) put before the conversation.")
@click.option("--color", is_flag=True,
              help="Colour each answer token by its own risk with ANSI codes: green below half the "
              "threshold, yellow below it, red at or above it.")
def chat(model: str | None, probe: str | None, risk_threshold: float | None, max_tokens: int,
         temperature: float, seed: int, threads: int | None, n_ctx: int, chat_format: str | None,
         system: str | None, color: bool) -> None:
    """Chat with the model, one message per line of standard input.

    After each answer a line shows its hallucination risk. /reset clears the
    history; /quit or the end of input ends the session. Works with piped
    input too.
    """
    llm = load_llama(model, probe, n_ctx=n_ctx, seed=seed, n_threads=threads, chat_format=chat_format,
                     risk_threshold=risk_threshold, token_risks=color)
    use_template = chat_format is not None or _has_chat_template(llm)
    session = ChatSession(llm, use_template=use_template, system=system, max_tokens=max_tokens,
                          temperature=temperature)
    stdin = sys.stdin
    interactive = stdin.isatty()
    if interactive:
        click.echo("Type a message and press Enter; /reset clears the history, /quit ends.", err=True)

    while True:
        line = _read_line(stdin, interactive)
        if line is None:
            break
        text = line.strip()
        if not text:
            continue
        if text in ("/quit", "/exit"):
            break
        if text == "/reset":
            session.reset()
            click.echo("history cleared")
            continue
        if text.startswith("/"):
            click.echo(f"unknown command {text!r}; use /reset or /quit", err=True)
            continue
        try:
            answer, report = session.reply(text)
        except ContextOverflowError as exc:
            click.echo(f"error: {exc}", err=True)
            continue
        if color and report.get("tokens"):
            click.echo(colour_tokens(report), color=True)
        else:
            click.echo(answer)
        click.echo(risk_line(report))
    llm.close()


def _read_line(stdin, interactive: bool) -> str | None:
    if interactive:
        try:
            return input("> ")
        except EOFError:
            return None
    line = stdin.readline()
    return line if line else None
