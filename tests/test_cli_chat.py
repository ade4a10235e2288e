"""`hnggml chat` on piped standard input, and its ChatSession history."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from hnggml.cli import main
from hnggml.cli_chat import ChatSession, ContextOverflowError, colour_tokens, risk_line

RISK_LINE = re.compile(r"^risk (\d\.\d\d) \((ok|FLAGGED)\)$", re.MULTILINE)
ANSI = re.compile(r"\x1b\[\d+m")


@pytest.fixture(scope="module")
def chat_llm(model_path, probe_path):
    from hnggml import Llama

    instance = Llama(model_path, probe=probe_path, n_ctx=512, n_threads=1, seed=0, verbose=False)
    yield instance
    instance.close()


def run_chat(model_path, probe_path, text: str, *options: str):
    args = ["chat", "--model", str(model_path), "--probe", str(probe_path), "--threads", "1",
            "--max-tokens", "8", "--n-ctx", "512", *options]
    return CliRunner().invoke(main, args, input=text)


def test_chat_piped_input_answers_each_line(model_path, probe_path):
    result = run_chat(model_path, probe_path,
                      "What is the capital of France?\n\n/frobnicate\n/reset\nWhat is the capital of Spain?\n"
                      "/quit\nNot read.\n")

    assert result.exit_code == 0, result.output
    assert len(RISK_LINE.findall(result.stdout)) == 2
    assert "history cleared" in result.stdout
    assert "unknown command '/frobnicate'" in result.stderr
    assert "Not read." not in result.stdout


def test_chat_color_until_end_of_input(model_path, probe_path):
    result = run_chat(model_path, probe_path, "What is the capital of France?\n", "--color")

    assert result.exit_code == 0, result.output
    answer_line = result.stdout.splitlines()[0]
    assert ANSI.search(answer_line)
    assert len(RISK_LINE.findall(result.stdout)) == 1


def test_chat_template_message_over_context(model_path, probe_path):
    # --chat-format selects the chat-template path; --n-ctx 200 is rounded up to 256.
    long_message = "word " * 400
    result = run_chat(model_path, probe_path, f"{long_message}\nSay hello.\n", "--chat-format", "chatml",
                      "--n-ctx", "200")

    assert result.exit_code == 0, result.output
    assert "does not fit in the context window of 256 tokens" in result.stderr
    assert len(RISK_LINE.findall(result.stdout)) == 1


# ChatSession ----------------------------------------------------------------------------


def test_chat_session_keeps_history(chat_llm):
    session = ChatSession(chat_llm, use_template=False, max_tokens=6, temperature=0)

    session.reply("What is the capital of France?")
    answer, report = session.reply("And of Italy?")

    assert [message["role"] for message in session.history] == ["user", "assistant", "user", "assistant"]
    assert session.history[-1]["content"] == answer
    transcript = session.transcript()
    assert "User: What is the capital of France?" in transcript
    assert "User: And of Italy?" in transcript
    assert 0.0 <= report["risk"] <= 1.0


def test_chat_session_reset_clears_history(chat_llm):
    session = ChatSession(chat_llm, use_template=False, max_tokens=4, temperature=0)
    session.reply("Name a fruit.")

    session.reset()

    assert session.history == []


def test_chat_session_drops_oldest_exchange_when_full(chat_llm, monkeypatch):
    session = ChatSession(chat_llm, use_template=False, max_tokens=4, temperature=0)
    session.history = [{"role": "user", "content": "old question"}, {"role": "assistant", "content": "old answer"}]
    calls = []
    original = session._generate

    def overflow_once():
        calls.append(len(session.history))
        if len(calls) == 1:
            raise ValueError("Requested tokens (900) exceed context window of 512")
        return original()

    monkeypatch.setattr(session, "_generate", overflow_once)
    session.reply("new question")

    assert calls == [3, 1]
    assert session.history[0]["content"] == "new question"


def test_chat_session_single_message_too_long(chat_llm, monkeypatch):
    session = ChatSession(chat_llm, use_template=False, max_tokens=4)

    def overflow():
        raise ValueError("Requested tokens (900) exceed context window of 512")

    monkeypatch.setattr(session, "_generate", overflow)

    with pytest.raises(ContextOverflowError, match="does not fit in the context window"):
        session.reply("x")
    assert session.history == []


def test_risk_line_forms():
    assert risk_line({"risk": 0.274, "flagged": False}) == "risk 0.27 (ok)"
    assert risk_line({"risk": 0.9, "flagged": True}) == "risk 0.90 (FLAGGED)"
    assert risk_line({"risk": None}) == "risk unavailable"


def test_colour_tokens_by_threshold():
    report = {"threshold": 0.6, "n_tokens": 3, "tokens": [
        {"token": " low", "risk": 0.1}, {"token": " mid", "risk": 0.4}, {"token": " high", "risk": 0.7},
        {"token": "<eos>", "risk": 0.9}]}

    text = colour_tokens(report)

    assert text == "\x1b[32mlow\x1b[0m\x1b[33m mid\x1b[0m\x1b[31m high\x1b[0m"
