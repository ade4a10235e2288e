"""Tests for hnggml.datasets, on small files that each test writes to tmp_path."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from hnggml.datasets import (
    QAItem,
    load_any,
    load_jsonl,
    load_nq_open,
    load_triviaqa,
    write_jsonl,
)

GOOD_RECORDS = [
    {"id": "q1", "question": "What is the capital of France?", "answers": ["Paris"], "category": "geography", "source": "handwritten", "form": "capital-of"},
    {"id": "q2", "question": "Who wrote Hamlet?", "answers": ["William Shakespeare", "Shakespeare"], "category": "literature", "source": "handwritten"},
    {"id": "q3", "question": "What is the capital of Zandoria?", "answers": [], "category": "nonexistent-country", "source": "synthetic:country", "answerable": False},
]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def write_records(path: Path, records: list[dict]) -> Path:
    return write_lines(path, [json.dumps(record) for record in records])


# ---------------------------------------------------------------------------
# load_jsonl
# ---------------------------------------------------------------------------


def test_load_jsonl_good_file(tmp_path: Path) -> None:
    items = load_jsonl(write_records(tmp_path / "good.jsonl", GOOD_RECORDS))
    assert [item.id for item in items] == ["q1", "q2", "q3"]
    assert items[0].answers == ("Paris",)
    assert items[0].form == "capital-of"
    assert items[1].form == ""
    assert items[1].answerable is True
    assert items[2].answerable is False
    assert items[2].answers == ()


def test_load_jsonl_skips_blank_lines(tmp_path: Path) -> None:
    lines = ["", json.dumps(GOOD_RECORDS[0]), "   ", json.dumps(GOOD_RECORDS[1]), ""]
    items = load_jsonl(write_lines(tmp_path / "blank.jsonl", lines))
    assert len(items) == 2


def test_load_jsonl_ignores_unknown_keys(tmp_path: Path) -> None:
    record = dict(GOOD_RECORDS[0], extra="ignored")
    items = load_jsonl(write_records(tmp_path / "extra.jsonl", [record]))
    assert items[0].id == "q1"


def test_load_jsonl_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match=r"empty\.jsonl: contains no records"):
        load_jsonl(path)


def test_load_jsonl_whitespace_only_file(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "spaces.jsonl", ["", "  "])
    with pytest.raises(ValueError, match="contains no records"):
        load_jsonl(path)


def test_load_jsonl_invalid_json_names_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "broken.jsonl", [json.dumps(GOOD_RECORDS[0]), '{"id": "q2", "question": '])
    with pytest.raises(ValueError, match=r"broken\.jsonl:2: invalid JSON"):
        load_jsonl(path)


def test_load_jsonl_non_object_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "list.jsonl", ['["not", "an", "object"]'])
    with pytest.raises(ValueError, match=r"list\.jsonl:1: each line must be a JSON object"):
        load_jsonl(path)


@pytest.mark.parametrize("field", ["id", "question", "category", "source", "answers"])
def test_load_jsonl_missing_field(tmp_path: Path, field: str) -> None:
    record = dict(GOOD_RECORDS[1])
    del record[field]
    path = write_records(tmp_path / "missing.jsonl", [GOOD_RECORDS[0], record])
    with pytest.raises(ValueError, match=rf"missing\.jsonl:2: missing field '{field}'"):
        load_jsonl(path)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("id", "", "a non-empty string"),
        ("id", 7, "a non-empty string"),
        ("question", "   ", "a non-empty string"),
        ("category", None, "a non-empty string"),
        ("source", ["x"], "a non-empty string"),
        ("answers", "Paris", "a list of strings"),
        ("answers", ["Paris", 3], "a list of non-empty strings"),
        ("answers", ["Paris", ""], "a list of non-empty strings"),
        ("answers", [], "a non-empty list"),
        ("answerable", "no", "true or false"),
        ("form", 5, "a string"),
    ],
)
def test_load_jsonl_bad_field(tmp_path: Path, field: str, value: object, expected: str) -> None:
    record = dict(GOOD_RECORDS[0])
    record[field] = value
    path = write_records(tmp_path / "bad.jsonl", [record])
    with pytest.raises(ValueError, match=rf"bad\.jsonl:1: field '{field}' must be {expected}"):
        load_jsonl(path)


def test_load_jsonl_unanswerable_with_answers(tmp_path: Path) -> None:
    record = dict(GOOD_RECORDS[2], answers=["Velmar"])
    path = write_records(tmp_path / "bad.jsonl", [record])
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: field 'answers' must be an empty list"):
        load_jsonl(path)


def test_load_jsonl_duplicate_id(tmp_path: Path) -> None:
    path = write_records(tmp_path / "dup.jsonl", [GOOD_RECORDS[0], GOOD_RECORDS[1], GOOD_RECORDS[0]])
    with pytest.raises(ValueError, match=r"dup\.jsonl:3: field 'id' must be unique, but 'q1' already appears on line 1"):
        load_jsonl(path)


def test_load_jsonl_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_jsonl(tmp_path / "absent.jsonl")


# ---------------------------------------------------------------------------
# write_jsonl and QAItem
# ---------------------------------------------------------------------------


def test_write_jsonl_round_trip(tmp_path: Path) -> None:
    items = load_jsonl(write_records(tmp_path / "good.jsonl", GOOD_RECORDS))
    out = tmp_path / "sub" / "out.jsonl"
    write_jsonl(out, items)
    assert load_jsonl(out) == items
    lines = out.read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0]) == GOOD_RECORDS[0]
    assert json.loads(lines[2])["answerable"] is False
    assert "answerable" not in json.loads(lines[1])


def test_write_jsonl_keeps_unicode(tmp_path: Path) -> None:
    item = QAItem(id="x", question="Where is São Paulo?", answers=("Brazil",), category="geography", source="test")
    out = tmp_path / "u.jsonl"
    write_jsonl(out, [item])
    assert "São Paulo" in out.read_text(encoding="utf-8")


def test_write_jsonl_leaves_no_temp_file(tmp_path: Path) -> None:
    items = load_jsonl(write_records(tmp_path / "good.jsonl", GOOD_RECORDS))
    write_jsonl(tmp_path / "out.jsonl", items)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.jsonl", "out.jsonl"]


def test_write_jsonl_rejects_dict_and_keeps_old_file(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("old\n", encoding="utf-8")
    with pytest.raises(TypeError, match="expects QAItem objects, got dict at index 0"):
        write_jsonl(out, [GOOD_RECORDS[0]])  # type: ignore[list-item]
    assert out.read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


def test_qaitem_converts_list_answers() -> None:
    item = QAItem(id="x", question="q?", answers=["a"], category="c", source="s")  # type: ignore[arg-type]
    assert item.answers == ("a",)
    assert hash(item)


def test_qaitem_rejects_answerable_without_answers() -> None:
    with pytest.raises(ValueError, match="has no answers"):
        QAItem(id="x", question="q?", answers=(), category="c", source="s")


def test_qaitem_rejects_unanswerable_with_answers() -> None:
    with pytest.raises(ValueError, match="is not answerable but has answers"):
        QAItem(id="x", question="q?", answers=("a",), category="c", source="s", answerable=False)


def test_qaitem_rejects_str_answers() -> None:
    with pytest.raises(TypeError, match="must be a tuple of str"):
        QAItem(id="x", question="q?", answers="a", category="c", source="s")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# TriviaQA
# ---------------------------------------------------------------------------

TRIVIAQA_DOCUMENT = {
    "Data": [
        {
            "Question": "Which Lloyd Webber musical premiered in the US on 10th December 1993?",
            "QuestionId": "tc_33",
            "Answer": {
                "Aliases": ["Sunset Blvd", "Sunset Boulevard"],
                "NormalizedAliases": ["sunset boulevard", "sunset blvd"],
                "Value": "Sunset Boulevard",
            },
        },
        {
            "Question": "Who was the man behind The Chipmunks?",
            "QuestionId": "tc_40",
            "Answer": {"Aliases": ["David Seville"], "NormalizedAliases": ["david seville"], "Value": "David Seville"},
        },
    ],
    "Domain": "Web",
    "Version": 1.0,
}


def test_load_triviaqa_json(tmp_path: Path) -> None:
    path = tmp_path / "verified-web-dev.json"
    path.write_text(json.dumps(TRIVIAQA_DOCUMENT), encoding="utf-8")
    items = load_triviaqa(path)
    assert [item.id for item in items] == ["tc_33", "tc_40"]
    assert items[0].answers == ("Sunset Boulevard", "Sunset Blvd")
    assert items[1].answers == ("David Seville",)
    assert items[0].source == "triviaqa"


def test_load_triviaqa_json_without_data(tmp_path: Path) -> None:
    path = tmp_path / "wrong.json"
    path.write_text(json.dumps({"questions": []}), encoding="utf-8")
    with pytest.raises(ValueError, match=r'wrong\.json: expected a TriviaQA JSON object with a "Data" list'):
        load_triviaqa(path)


def test_load_triviaqa_json_bad_answer(tmp_path: Path) -> None:
    document = {"Data": [dict(TRIVIAQA_DOCUMENT["Data"][0], Answer="Sunset Boulevard")]}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.json: Data\[0\]: field 'Answer' must be an object"):
        load_triviaqa(path)


def test_load_triviaqa_json_missing_question(tmp_path: Path) -> None:
    entry = dict(TRIVIAQA_DOCUMENT["Data"][1])
    del entry["Question"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"Data": [TRIVIAQA_DOCUMENT["Data"][0], entry]}), encoding="utf-8")
    with pytest.raises(ValueError, match=r"Data\[1\]: field 'Question' must be a non-empty string"):
        load_triviaqa(path)


def test_load_triviaqa_json_empty_data(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text(json.dumps({"Data": []}), encoding="utf-8")
    with pytest.raises(ValueError, match="contains no TriviaQA questions"):
        load_triviaqa(path)


def test_load_triviaqa_parquet(tmp_path: Path) -> None:
    pandas = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    frame = pandas.DataFrame(
        {
            "question": ["Who was the man behind The Chipmunks?"],
            "question_id": ["tc_40"],
            "answer": [{"aliases": ["David Seville"], "normalized_aliases": ["david seville"], "value": "David Seville"}],
        }
    )
    path = tmp_path / "validation.parquet"
    frame.to_parquet(path)
    items = load_triviaqa(path)
    assert items[0].id == "tc_40"
    assert items[0].answers == ("David Seville",)
    assert load_any(path) == items


def test_load_triviaqa_parquet_missing_column(tmp_path: Path) -> None:
    pandas = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    path = tmp_path / "bad.parquet"
    pandas.DataFrame({"question": ["q?"]}).to_parquet(path)
    with pytest.raises(ValueError, match=r"missing TriviaQA column\(s\) \['question_id', 'answer'\]"):
        load_triviaqa(path)


def test_load_triviaqa_parquet_without_pyarrow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pandas")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    path = tmp_path / "validation.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(ImportError, match="pip install pyarrow"):
        load_triviaqa(path)


# ---------------------------------------------------------------------------
# NQ-Open
# ---------------------------------------------------------------------------


def test_load_nq_open(tmp_path: Path) -> None:
    lines = [
        json.dumps({"question": "where did they film hot tub time machine", "answer": ["Fernie Alpine Resort"]}),
        "",
        json.dumps({"question": "who sings does he love me with reba", "answer": ["Linda Davis", "linda davis"]}),
    ]
    items = load_nq_open(write_lines(tmp_path / "nq.jsonl", lines))
    assert [item.id for item in items] == ["nq-open-1", "nq-open-3"]
    assert items[1].answers == ("Linda Davis",)
    assert items[0].category == "nq-open"


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"question": "", "answer": ["x"]}, "field 'question' must be a non-empty string"),
        ({"question": "q", "answer": "x"}, "field 'answer' must be a non-empty list of strings"),
        ({"question": "q", "answer": []}, "field 'answer' must be a non-empty list of strings"),
        ({"question": "q", "answer": ["x", 1]}, "field 'answer' must be a list of non-empty strings"),
    ],
)
def test_load_nq_open_bad_line(tmp_path: Path, record: dict, message: str) -> None:
    path = write_records(tmp_path / "nq.jsonl", [{"question": "q", "answer": ["a"]}, record])
    with pytest.raises(ValueError, match=rf"nq\.jsonl:2: {message}"):
        load_nq_open(path)


def test_load_nq_open_empty(tmp_path: Path) -> None:
    path = tmp_path / "nq.jsonl"
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(ValueError, match="contains no records"):
        load_nq_open(path)


# ---------------------------------------------------------------------------
# load_any
# ---------------------------------------------------------------------------


def test_load_any_dispatches_schema_jsonl(tmp_path: Path) -> None:
    items = load_any(write_records(tmp_path / "a.jsonl", GOOD_RECORDS))
    assert items[0].source == "handwritten"


def test_load_any_dispatches_nq_open(tmp_path: Path) -> None:
    items = load_any(write_records(tmp_path / "nq.jsonl", [{"question": "q", "answer": ["a"]}]))
    assert items[0].source == "nq_open"


def test_load_any_dispatches_triviaqa_json(tmp_path: Path) -> None:
    path = tmp_path / "tqa.json"
    path.write_text(json.dumps(TRIVIAQA_DOCUMENT, indent=2), encoding="utf-8")
    assert load_any(path)[0].source == "triviaqa"


def test_load_any_triviaqa_data_key_not_first(tmp_path: Path) -> None:
    document = {"Version": 1.0, "Domain": "Web", "Filler": ["x" * 100] * 60, "Data": TRIVIAQA_DOCUMENT["Data"]}
    path = tmp_path / "tqa.json"
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    assert len(load_any(path)) == 2


def test_load_any_unknown_format(tmp_path: Path) -> None:
    path = write_records(tmp_path / "x.jsonl", [{"prompt": "q", "target": "a"}])
    with pytest.raises(ValueError, match="unrecognised question format"):
        load_any(path)


def test_load_any_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="question file not found"):
        load_any(tmp_path / "absent.jsonl")
