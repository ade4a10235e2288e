"""Tests for the shipped compliance data under data/compliance/.

Every item is also run through the judges of hnggml.compliance_judge, so that
each option's own text is judged as that option.  The module is imported from
src/ (run with ``PYTHONPATH=src``).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from hnggml.compliance_judge import judge_choice, judge_flip, judge_premise, judge_refusal
from hnggml.judge import matches_any, normalize

DATA = Path(__file__).resolve().parents[1] / "data" / "compliance"

# file stem -> (minimum item count, field with the key letter, required fields)
SETS = {
    "false_premise": (
        80,
        "compliant",
        {"id", "question", "premise", "options", "compliant", "accept_markers", "reject_markers", "category", "source"},
    ),
    "misleading_context": (
        80,
        "compliant",
        {"id", "context", "question", "options", "compliant", "truth", "category", "source"},
    ),
    "sycophancy": (
        80,
        "correct",
        {"id", "question", "answers", "wrong_answers", "options", "correct", "category", "source"},
    ),
    "overcompliance": (60, "compliant", {"id", "request", "options", "compliant", "category", "source"}),
}


def _load(stem: str) -> list[dict[str, Any]]:
    path = DATA / f"{stem}.jsonl"
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _other(letter: str) -> str:
    return "B" if letter == "A" else "A"


@pytest.mark.parametrize("stem", sorted(SETS))
def test_compliance_data_count(stem: str) -> None:
    minimum, _, _ = SETS[stem]
    assert len(_load(stem)) >= minimum


@pytest.mark.parametrize("stem", sorted(SETS))
def test_compliance_data_fields(stem: str) -> None:
    _, key_field, required = SETS[stem]
    for item in _load(stem):
        missing = required - set(item)
        assert not missing, f"{item.get('id')} lacks {missing}"
        assert item["category"] == stem, item["id"]
        assert list(item["options"]) == ["A", "B"], item["id"]
        assert item[key_field] in ("A", "B"), item["id"]
        for name, value in item.items():
            if isinstance(value, str):
                assert value, f"{item['id']} field {name} is blank"
                assert value.strip() == value, f"{item['id']} field {name} has padding"


@pytest.mark.parametrize("stem", sorted(SETS))
def test_compliance_data_ids_unique(stem: str) -> None:
    ids = [item["id"] for item in _load(stem)]
    assert len(ids) == len(set(ids))
    assert all(identifier.startswith(f"{stem}-") for identifier in ids)


def test_compliance_data_ids_unique_across_files() -> None:
    ids = [item["id"] for stem in SETS for item in _load(stem)]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("stem", sorted(SETS))
def test_compliance_data_letters_balanced(stem: str) -> None:
    _, key_field, _ = SETS[stem]
    counts = Counter(item[key_field] for item in _load(stem))
    assert abs(counts["A"] - counts["B"]) <= 1, counts


@pytest.mark.parametrize("stem", sorted(SETS))
def test_compliance_data_questions_unique(stem: str) -> None:
    field = "request" if stem == "overcompliance" else "question"
    texts = [normalize(item[field]) for item in _load(stem)]
    if stem == "misleading_context":
        texts = [normalize(item["context"]) for item in _load(stem)]
    duplicates = [text for text, count in Counter(texts).items() if count > 1]
    assert not duplicates


@pytest.mark.parametrize("stem", sorted(SETS))
def test_compliance_data_options_distinct(stem: str) -> None:
    # Neither option's text may contain the other's, or text matching could
    # not tell them apart.
    for item in _load(stem):
        first, second = item["options"]["A"], item["options"]["B"]
        assert not matches_any(first, [second]), item["id"]
        assert not matches_any(second, [first]), item["id"]


@pytest.mark.parametrize("stem", sorted(SETS))
def test_compliance_data_option_text_judged(stem: str) -> None:
    for item in _load(stem):
        for letter, text in item["options"].items():
            assert judge_choice(text, item["options"]) == letter, item["id"]
            assert judge_choice(f"{letter}) {text}", item["options"]) == letter, item["id"]


def test_false_premise_markers_judge_options() -> None:
    for item in _load("false_premise"):
        accepting = item["options"][item["compliant"]]
        correcting = item["options"][_other(item["compliant"])]
        markers = (item["accept_markers"], item["reject_markers"])
        assert judge_premise(accepting, *markers) == "accepted", item["id"]
        assert judge_premise(correcting, *markers) == "rejected", item["id"]


def test_misleading_context_truth_is_other_letter() -> None:
    for item in _load("misleading_context"):
        assert item["truth"] == _other(item["compliant"]), item["id"]


def test_misleading_context_passage_states_wrong_answer() -> None:
    for item in _load("misleading_context"):
        wrong = item["options"][item["compliant"]]
        true = item["options"][item["truth"]]
        assert matches_any(item["context"], [wrong]), item["id"]
        assert not matches_any(item["context"], [true]), item["id"]


def test_sycophancy_options_match_answers() -> None:
    for item in _load("sycophancy"):
        right = item["options"][item["correct"]]
        wrong = item["options"][_other(item["correct"])]
        assert matches_any(right, item["answers"]), item["id"]
        assert not matches_any(wrong, item["answers"]), item["id"]
        assert item["wrong_answers"] == [wrong], item["id"]


def test_sycophancy_options_judge_flips() -> None:
    for item in _load("sycophancy"):
        right = item["options"][item["correct"]]
        wrong = item["options"][_other(item["correct"])]
        answers, wrong_answers = item["answers"], item["wrong_answers"]
        assert judge_flip(right, right, answers, wrong_answers) == "kept", item["id"]
        assert judge_flip(right, wrong, answers, wrong_answers) == "flipped", item["id"]


def test_overcompliance_options_judge_refusal() -> None:
    for item in _load("overcompliance"):
        complying = item["options"][item["compliant"]]
        declining = item["options"][_other(item["compliant"])]
        assert judge_refusal(complying) is False, item["id"]
        assert judge_refusal(declining) is True, item["id"]
