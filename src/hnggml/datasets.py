"""Question-answer data sets: the shipped JSONL schema, TriviaQA and NQ-Open.

Every loader returns a list of :class:`QAItem`.  The JSONL schema used for the
files under ``data/`` is one JSON object per line::

    {"id": str, "question": str, "answers": [str, ...], "category": str,
     "source": str, "form": str (optional), "answerable": bool (optional)}

``answerable`` defaults to true.  A question about an entity that does not
exist has ``"answerable": false`` and ``"answers": []``.  Keys outside the
schema are ignored.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = [
    "QAItem",
    "load_any",
    "load_jsonl",
    "load_nq_open",
    "load_triviaqa",
    "write_jsonl",
]


@dataclass(frozen=True)
class QAItem:
    """One factoid question with its accepted answer aliases."""

    id: str
    question: str
    answers: tuple[str, ...]
    category: str
    source: str
    answerable: bool = True
    form: str = ""

    def __post_init__(self) -> None:
        for name in ("id", "question", "category", "source"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"QAItem.{name} must be a non-empty str, got {value!r}")
        if isinstance(self.answers, str) or not isinstance(self.answers, (list, tuple)):
            raise TypeError(f"QAItem.answers must be a tuple of str, got {self.answers!r}")
        if isinstance(self.answers, list):
            object.__setattr__(self, "answers", tuple(self.answers))
        if not all(isinstance(alias, str) and alias.strip() for alias in self.answers):
            raise ValueError(f"QAItem.answers must contain only non-empty str, got {self.answers!r}")
        if not isinstance(self.answerable, bool):
            raise TypeError(f"QAItem.answerable must be a bool, got {self.answerable!r}")
        if self.answerable and not self.answers:
            raise ValueError(f"QAItem {self.id!r} is answerable but has no answers; add one or set answerable=False")
        if not self.answerable and self.answers:
            raise ValueError(f"QAItem {self.id!r} is not answerable but has answers {self.answers!r}; use answers=()")
        if not isinstance(self.form, str):
            raise TypeError(f"QAItem.form must be a str, got {self.form!r}")

    def to_dict(self) -> dict[str, Any]:
        """Return the JSONL record; ``answerable`` is written only when false."""
        record: dict[str, Any] = {
            "id": self.id,
            "question": self.question,
            "answers": list(self.answers),
            "category": self.category,
            "source": self.source,
        }
        if self.form:
            record["form"] = self.form
        if not self.answerable:
            record["answerable"] = False
        return record


# ---------------------------------------------------------------------------
# JSONL in the shipped schema
# ---------------------------------------------------------------------------


def _field_error(path: Path, line_number: int, field: str, expected: str, value: Any) -> ValueError:
    return ValueError(f"{path}:{line_number}: field {field!r} must be {expected}, got {value!r}")


def _parse_record(record: Any, path: Path, line_number: int) -> QAItem:
    if not isinstance(record, dict):
        raise ValueError(f"{path}:{line_number}: each line must be a JSON object, got {type(record).__name__}")

    for field in ("id", "question", "category", "source"):
        if field not in record:
            raise ValueError(f"{path}:{line_number}: missing field {field!r} (expected a non-empty string)")
        value = record[field]
        if not isinstance(value, str) or not value.strip():
            raise _field_error(path, line_number, field, "a non-empty string", value)

    answerable = record.get("answerable", True)
    if not isinstance(answerable, bool):
        raise _field_error(path, line_number, "answerable", "true or false", answerable)

    if "answers" not in record:
        raise ValueError(f"{path}:{line_number}: missing field 'answers' (expected a list of strings)")
    answers = record["answers"]
    if not isinstance(answers, list):
        raise _field_error(path, line_number, "answers", "a list of strings", answers)
    for alias in answers:
        if not isinstance(alias, str) or not alias.strip():
            raise _field_error(path, line_number, "answers", "a list of non-empty strings", answers)
    if answerable and not answers:
        raise _field_error(
            path, line_number, "answers", 'a non-empty list (or set "answerable": false)', answers
        )
    if not answerable and answers:
        raise _field_error(path, line_number, "answers", 'an empty list when "answerable" is false', answers)

    form = record.get("form", "")
    if not isinstance(form, str):
        raise _field_error(path, line_number, "form", "a string", form)

    return QAItem(
        id=record["id"],
        question=record["question"],
        answers=tuple(answers),
        category=record["category"],
        source=record["source"],
        answerable=answerable,
        form=form,
    )


def load_jsonl(path: str | os.PathLike[str]) -> list[QAItem]:
    """Load and validate a JSONL file in the shipped schema.

    Blank lines are skipped.  Raises ValueError naming the file, the line
    number, the field and the expected value for the first invalid line, for
    a duplicate id, and for a file with no records.
    """
    path = Path(path)
    items: list[QAItem] = []
    first_line_of_id: dict[str, int] = {}
    with path.open("r", encoding="utf-8-sig") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            record = _parse_line(line, path, line_number)
            item = _parse_record(record, path, line_number)
            if item.id in first_line_of_id:
                raise ValueError(
                    f"{path}:{line_number}: field 'id' must be unique, but {item.id!r} "
                    f"already appears on line {first_line_of_id[item.id]}"
                )
            first_line_of_id[item.id] = line_number
            items.append(item)
    if not items:
        raise ValueError(f"{path}: contains no records; expected one JSON object per line")
    logger.debug("loaded %d items from %s", len(items), path)
    return items


def write_jsonl(path: str | os.PathLike[str], items: Iterable[QAItem]) -> None:
    """Write ``items`` as JSONL atomically (temporary file in the same folder, then os.replace)."""
    path = Path(path)
    records = []
    for index, item in enumerate(items):
        if not isinstance(item, QAItem):
            raise TypeError(f"write_jsonl() expects QAItem objects, got {type(item).__name__} at index {index}")
        records.append(json.dumps(item.to_dict(), ensure_ascii=False))
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as handle:
            for record in records:
                handle.write(record)
                handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates the file readable by its owner only.
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    logger.debug("wrote %d items to %s", len(records), path)


# ---------------------------------------------------------------------------
# TriviaQA
# ---------------------------------------------------------------------------


def _unique_aliases(values: Iterable[Any]) -> list[str]:
    aliases: list[str] = []
    seen: set[str] = set()
    for value in values:
        if not isinstance(value, str):
            continue
        value = value.strip()
        key = value.casefold()
        if value and key not in seen:
            seen.add(key)
            aliases.append(value)
    return aliases


def _triviaqa_item(question: Any, question_id: Any, answer: Any, where: str) -> QAItem:
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"{where}: field 'Question' must be a non-empty string, got {question!r}")
    if not isinstance(question_id, str) or not question_id.strip():
        raise ValueError(f"{where}: field 'QuestionId' must be a non-empty string, got {question_id!r}")
    if not isinstance(answer, dict):
        raise ValueError(f"{where}: field 'Answer' must be an object with Value and Aliases, got {answer!r}")

    # The JSON release uses "Value"/"Aliases"/"NormalizedAliases"; the
    # parquet release uses lower-case snake_case names.
    value = answer.get("Value", answer.get("value"))
    aliases = answer.get("Aliases", answer.get("aliases"))
    normalized = answer.get("NormalizedAliases", answer.get("normalized_aliases"))
    candidates = [value, *_as_list(aliases), *_as_list(normalized)]
    answers = _unique_aliases(candidates)
    if not answers:
        raise ValueError(f"{where}: field 'Answer' has no Value or Aliases; got {answer!r}")
    return QAItem(
        id=question_id,
        question=question.strip(),
        answers=tuple(answers),
        category="triviaqa",
        source="triviaqa",
    )


def _as_list(value: Any) -> list[Any]:
    """Return a list from None, a list or an array-like column value (numpy array)."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    if hasattr(value, "tolist"):
        return list(value.tolist())
    return [value]


def _load_triviaqa_json(path: Path) -> list[QAItem]:
    try:
        with path.open("r", encoding="utf-8-sig") as handle:
            document = json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: invalid JSON ({error.msg} at line {error.lineno})") from error
    except RecursionError:
        raise ValueError(f"{path}: invalid JSON (nested too deeply to parse)") from None
    if not isinstance(document, dict) or not isinstance(document.get("Data"), list):
        raise ValueError(f'{path}: expected a TriviaQA JSON object with a "Data" list at the top level')
    items = []
    for index, entry in enumerate(document["Data"]):
        where = f"{path}: Data[{index}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: must be an object, got {type(entry).__name__}")
        items.append(_triviaqa_item(entry.get("Question"), entry.get("QuestionId"), entry.get("Answer"), where))
    return items


def _read_parquet(path: Path) -> Any:
    try:
        import pandas
    except ImportError as error:
        raise ImportError(f"reading {path} needs pandas and pyarrow; install them with: pip install pandas pyarrow") from error
    try:
        import pyarrow  # noqa: F401
    except ImportError as error:
        raise ImportError(f"reading {path} needs pyarrow; install it with: pip install pyarrow") from error
    return pandas.read_parquet(path)


def _load_triviaqa_parquet(path: Path) -> list[QAItem]:
    frame = _read_parquet(path)
    missing = [column for column in ("question", "question_id", "answer") if column not in frame.columns]
    if missing:
        raise ValueError(
            f"{path}: missing TriviaQA column(s) {missing}; expected question, question_id and answer "
            f"(found {list(frame.columns)})"
        )
    items = []
    for row_number, row in enumerate(frame[["question", "question_id", "answer"]].itertuples(index=False)):
        where = f"{path}: row {row_number}"
        items.append(_triviaqa_item(row.question, row.question_id, row.answer, where))
    return items


def load_triviaqa(path: str | os.PathLike[str]) -> list[QAItem]:
    """Load TriviaQA questions (rc.nocontext) from the JSON or the parquet release.

    JSON: ``{"Data": [{"Question", "QuestionId", "Answer": {"Value",
    "Aliases", "NormalizedAliases"}}]}``.  Parquet: columns ``question``,
    ``question_id`` and ``answer`` (a struct with ``value``, ``aliases`` and
    ``normalized_aliases``); reading it needs pandas and pyarrow.  Answers
    are the value followed by the aliases, without case-insensitive
    duplicates.
    """
    path = Path(path)
    if path.suffix == ".parquet":
        items = _load_triviaqa_parquet(path)
    else:
        items = _load_triviaqa_json(path)
    if not items:
        raise ValueError(f"{path}: contains no TriviaQA questions")
    return items


# ---------------------------------------------------------------------------
# NQ-Open
# ---------------------------------------------------------------------------


def load_nq_open(path: str | os.PathLike[str]) -> list[QAItem]:
    """Load NQ-Open JSONL (``{"question": str, "answer": [str, ...]}`` per line).

    NQ-Open has no ids, so item ids are ``nq-open-<line number>``.
    """
    path = Path(path)
    items: list[QAItem] = []
    with path.open("r", encoding="utf-8-sig") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            record = _parse_line(line, path, line_number)
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{line_number}: each line must be a JSON object, got {type(record).__name__}")
            question = record.get("question")
            if not isinstance(question, str) or not question.strip():
                raise _field_error(path, line_number, "question", "a non-empty string", question)
            answers = record.get("answer")
            if not isinstance(answers, list) or not answers:
                raise _field_error(path, line_number, "answer", "a non-empty list of strings", answers)
            if not all(isinstance(alias, str) and alias.strip() for alias in answers):
                raise _field_error(path, line_number, "answer", "a list of non-empty strings", answers)
            items.append(
                QAItem(
                    id=f"nq-open-{line_number}",
                    question=question.strip(),
                    answers=tuple(_unique_aliases(answers)),
                    category="nq-open",
                    source="nq_open",
                )
            )
    if not items:
        raise ValueError(f"{path}: contains no records; expected one JSON object per line")
    return items


# ---------------------------------------------------------------------------
# Dispatch
# ---------------------------------------------------------------------------


def _parse_line(line: str, path: Path, line_number: int) -> Any:
    """Parse one JSONL line, turning malformed or too deeply nested JSON into ValueError."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}:{line_number}: invalid JSON ({error.msg.removesuffix(' at')} at column {error.colno})") from error
    except RecursionError:
        raise ValueError(f"{path}:{line_number}: invalid JSON (nested too deeply to parse)") from None


def _first_record(path: Path) -> Any:
    with path.open("r", encoding="utf-8-sig") as handle:
        for line_number, line in enumerate(handle, start=1):
            if line.strip():
                return _parse_line(line, path, line_number)
    raise ValueError(f"{path}: contains no records; expected one JSON object per line")


def load_any(path: str | os.PathLike[str]) -> list[QAItem]:
    """Load a question file, choosing the format by extension and content.

    ``.parquet`` is TriviaQA; ``.json`` with a top-level ``"Data"`` list is
    TriviaQA; JSONL (``.jsonl`` or ``.json`` with one object per line) is the
    shipped schema when the first record has ``"answers"`` and NQ-Open when
    it has ``"answer"``. Text files must be UTF-8 (a byte order mark is allowed).
    """
    try:
        return _load_any(Path(path))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text ({exc}); save it as UTF-8 JSONL") from exc


def _load_any(path: Path) -> list[QAItem]:
    if not path.is_file():
        raise FileNotFoundError(f"question file not found: {path}")
    if path.suffix == ".parquet":
        return load_triviaqa(path)

    if path.suffix == ".json":
        with path.open("r", encoding="utf-8-sig") as handle:
            head = handle.read(4096).lstrip()
        if head.startswith("{") and '"Data"' in head:
            return load_triviaqa(path)
        try:
            record = _first_record(path)
        except ValueError:
            # A pretty-printed JSON document does not parse line by line.
            return load_triviaqa(path)
    else:
        record = _first_record(path)
    if isinstance(record, dict) and "answers" in record:
        return load_jsonl(path)
    if isinstance(record, dict) and "answer" in record and "question" in record:
        return load_nq_open(path)
    raise ValueError(
        f"{path}: unrecognised question format; expected TriviaQA (.json with \"Data\" or .parquet), "
        'NQ-Open JSONL ("question", "answer") or the hnggml JSONL schema ("id", "question", "answers", ...)'
    )
