"""Tests for hnggml.compliance_prompts.

The module is imported from src/ (run with ``PYTHONPATH=src``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hnggml.compliance_prompts import (
    CATEGORIES,
    COMPLETION_STOP,
    PUSHBACK,
    build_prompt,
    build_sycophancy_followup,
)
from hnggml.judge import normalize

DATA = Path(__file__).resolve().parents[1] / "data" / "compliance"


def _items(category: str) -> list[dict[str, Any]]:
    with (DATA / f"{category}.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _item_text(item: dict[str, Any]) -> str:
    return item.get("request") or item["question"]


@pytest.mark.parametrize("category", CATEGORIES)
def test_build_prompt_completion_with_options(category: str) -> None:
    for item in _items(category):
        prompt = build_prompt(item, chat=False)
        assert isinstance(prompt, str)
        assert prompt.endswith("\nAnswer:")
        assert prompt.count("\nAnswer:") == 3, item["id"]
        last_block = prompt.split("\n\n")[-1]
        assert _item_text(item) in last_block
        assert f"A) {item['options']['A']}\nB) {item['options']['B']}\nAnswer:" in last_block


@pytest.mark.parametrize("category", CATEGORIES)
def test_build_prompt_completion_free_form(category: str) -> None:
    for item in _items(category):
        prompt = build_prompt(item, chat=False, with_options=False)
        assert isinstance(prompt, str)
        assert prompt.endswith("\nAnswer:")
        assert "A) " not in prompt
        assert _item_text(item) in prompt.split("\n\n")[-1]


@pytest.mark.parametrize("category", CATEGORIES)
def test_build_prompt_chat(category: str) -> None:
    for item in _items(category):
        messages = build_prompt(item, chat=True)
        assert isinstance(messages, list) and len(messages) == 1
        assert messages[0]["role"] == "user"
        assert _item_text(item) in messages[0]["content"]
        assert item["options"]["A"] in messages[0]["content"]
        assert messages[0]["content"].endswith("A or B.")

        free = build_prompt(item, chat=True, with_options=False)
        assert isinstance(free, list)
        assert f"A) {item['options']['A']}" not in free[0]["content"]


def test_build_prompt_misleading_context_has_passage() -> None:
    item = _items("misleading_context")[0]
    completion = build_prompt(item, chat=False)
    assert f"Passage: {item['context']}\nQuestion: {item['question']}" in completion
    chat = build_prompt(item, chat=True, with_options=False)
    assert chat[0]["content"] == f"Passage: {item['context']}\nQuestion: {item['question']}"


@pytest.mark.parametrize("category", CATEGORIES)
def test_build_prompt_examples_not_in_data(category: str) -> None:
    item = _items(category)[0]
    prompt = build_prompt(item, chat=False)
    example_blocks = prompt.split("\n\n")[1:-1]
    assert len(example_blocks) == 2
    texts = {normalize(_item_text(other)) for other in _items(category)}
    for block in example_blocks:
        label_line = [line for line in block.splitlines() if line.startswith(("Question:", "Request:"))][0]
        assert normalize(label_line.split(":", 1)[1]) not in texts


def test_build_prompt_example_letters_differ() -> None:
    # One worked example answers A and the other B, so the examples do not
    # favour a letter.
    for category in CATEGORIES:
        prompt = build_prompt(_items(category)[0], chat=False)
        answers = [block.rsplit("Answer: ", 1)[1] for block in prompt.split("\n\n")[1:-1]]
        assert sorted(answers) == ["A", "B"], category


def test_build_prompt_stop_sequences_absent_from_item_block() -> None:
    for category in CATEGORIES:
        for item in _items(category):
            last_block = build_prompt(item, chat=False).split("\n\n")[-1]
            body = last_block[: -len("\nAnswer:")]
            assert "\n\n" not in body


def test_build_sycophancy_followup_chat() -> None:
    item = _items("sycophancy")[0]
    messages = build_sycophancy_followup(item, "  B  ", chat=True)
    assert [message["role"] for message in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"] == "B"
    assert messages[2]["content"].startswith(PUSHBACK)


def test_build_sycophancy_followup_completion() -> None:
    item = _items("sycophancy")[0]
    first = build_prompt(item, chat=False)
    followup = build_sycophancy_followup(item, " B", chat=False)
    assert isinstance(followup, str)
    assert followup.startswith(first + " B\n" + PUSHBACK)
    assert followup.endswith("\nAnswer:")
    for stop in COMPLETION_STOP:
        assert stop not in followup[len(first) :]


def test_build_sycophancy_followup_rejects_other_category() -> None:
    with pytest.raises(ValueError, match="needs a sycophancy item"):
        build_sycophancy_followup(_items("false_premise")[0], "A", chat=True)


def test_build_prompt_rejects_unknown_category() -> None:
    with pytest.raises(ValueError, match="unknown category 'trivia'"):
        build_prompt({"id": "x", "category": "trivia", "question": "q"}, chat=True)


def test_build_prompt_rejects_missing_field() -> None:
    with pytest.raises(ValueError, match="missing the field 'options'"):
        build_prompt({"id": "x", "category": "sycophancy", "question": "q"}, chat=True)


def test_build_prompt_rejects_non_bool_chat() -> None:
    with pytest.raises(TypeError, match="must be bools"):
        build_prompt(_items("sycophancy")[0], chat="yes")  # type: ignore[arg-type]
