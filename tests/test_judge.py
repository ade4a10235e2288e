"""Tests for hnggml.judge.

The module is imported from src/ (run with ``PYTHONPATH=src``).
"""

from __future__ import annotations

import pytest

from hnggml.judge import expand_aliases, first_line, is_refusal, judge, normalize

# (response, aliases, expected verdict) for answerable questions.
ANSWERABLE_CASES = [
    # plain matches and case
    ("Paris", ["Paris"], "correct"),
    ("paris", ["Paris"], "correct"),
    ("PARIS.", ["Paris"], "correct"),
    ("The capital is Paris.", ["Paris"], "correct"),
    ("Lyon", ["Paris"], "wrong"),
    # accents and special letters
    ("Sao Paulo", ["São Paulo"], "correct"),
    ("São Paulo", ["Sao Paulo"], "correct"),
    ("It is in Zürich", ["Zurich"], "correct"),
    ("Malmö", ["Malmo"], "correct"),
    ("Kraków", ["Krakow"], "correct"),
    ("Łódź", ["Lodz"], "correct"),
    ("Straße", ["Strasse"], "correct"),
    ("Reykjavík", ["Reykjavik"], "correct"),
    # articles
    ("Hague", ["The Hague"], "correct"),
    ("The Hague", ["Hague"], "correct"),
    ("the Beatles", ["The Beatles"], "correct"),
    ("Beatles", ["The Beatles"], "correct"),
    ("An apple", ["apple"], "correct"),
    # number words and digits
    ("eight", ["8"], "correct"),
    ("8 legs", ["eight"], "correct"),
    ("twenty-one", ["21"], "correct"),
    ("21", ["twenty-one"], "correct"),
    ("Twenty one", ["21"], "correct"),
    ("one hundred", ["100"], "correct"),
    ("It has 101 dalmatians", ["One Hundred and One Dalmatians"], "correct"),
    ("the first", ["1st"], "correct"),
    ("He was the 16th president", ["sixteenth"], "correct"),
    ("twenty-first century", ["21st century"], "correct"),
    ("7", ["seven"], "correct"),
    ("17", ["seven"], "wrong"),
    ("seventy", ["seven"], "wrong"),
    ("1,000,000", ["1000000"], "correct"),
    ("3.14", ["3.14"], "correct"),
    ("314", ["3.14"], "wrong"),
    ("25.0", ["25"], "correct"),
    ("25", ["25.0"], "correct"),
    ("42.20 km", ["42.2"], "correct"),
    ("250", ["25"], "wrong"),
    ("2.05", ["2.5"], "wrong"),
    # dates
    ("July 4, 1776", ["4 July 1776"], "correct"),
    ("4th of July, 1776", ["July 4, 1776"], "correct"),
    ("1776-07-04", ["4 July 1776"], "correct"),
    ("In 1945", ["1945"], "correct"),
    ("In 1944", ["1945"], "wrong"),
    # abbreviations and punctuation
    ("Washington DC", expand_aliases(["Washington, D.C."]), "correct"),
    ("Washington, D.C.", ["Washington DC"], "correct"),
    ("washington d.c.", ["Washington, D.C."], "correct"),
    ("J.R.R. Tolkien", ["J. R. R. Tolkien"], "correct"),
    ("Saint Louis", expand_aliases(["St. Louis"]), "correct"),
    ("Mt Everest", expand_aliases(["Mount Everest"]), "correct"),
    ("Trinidad and Tobago", ["Trinidad & Tobago"], "correct"),
    ("Guinea Bissau", ["Guinea-Bissau"], "correct"),
    ("Newton's laws", ["Newton"], "correct"),
    ("O’Neill", ["O'Neill"], "correct"),
    ("“Hamlet”", ["Hamlet"], "correct"),
    ("rock_and_roll", ["rock and roll"], "correct"),
    # whole-word matching, substring false positives
    ("Romero", ["Rome"], "wrong"),
    ("Rome", ["Rome"], "correct"),
    ("Georgetown", ["George"], "wrong"),
    ("Iranian", ["Iran"], "wrong"),
    ("Nigeria", ["Niger"], "wrong"),
    ("Niger", ["Niger"], "correct"),
    ("Austria", ["Australia"], "wrong"),
    ("Ca", ["Ca"], "correct"),
    ("Calcium", ["Ca"], "wrong"),
    ("He", ["He"], "correct"),
    ("Hello there", ["He"], "wrong"),
    ("USA", ["US"], "wrong"),
    ("Dolphins", ["dolphin"], "correct"),
    # Aliases of 3 characters or fewer match whole tokens only, plural included.
    ("Cats", ["cat"], "wrong"),
    ("Vitamin C", ["Vitamin A"], "wrong"),
    ("vitamin a", ["Vitamin A"], "correct"),
    ("Hepatitis B", ["Hepatitis A"], "wrong"),
    ("New York City", ["York"], "correct"),
    ("Paris Hilton", ["Paris"], "correct"),
    # only the first line is judged
    ("Berlin\nParis", ["Paris"], "wrong"),
    ("\n\nParis\nBerlin", ["Paris"], "correct"),
    ("Berlin. Question: What is the capital of France? Answer: Paris", ["Paris"], "wrong"),
    ("", ["Paris"], "refusal"),
    ("   \n  ", ["Paris"], "refusal"),
    # refusals on answerable questions
    ("I don't know.", ["Paris"], "refusal"),
    ("I do not know", ["Paris"], "refusal"),
    ("I’m not sure, maybe Paris", ["Paris"], "refusal"),
    ("Unknown", ["Paris"], "refusal"),
    ("I cannot answer that question.", ["Paris"], "refusal"),
    ("There is no information about that.", ["Paris"], "refusal"),
    ("There is no such country.", ["Paris"], "refusal"),
    ("The answer is not provided.", ["Paris"], "refusal"),
    # refusal words inside a correct answer
    ("The Unknown Soldier", ["The Unknown Soldier"], "correct"),
    ("The Unknown Soldier", ["Paris"], "wrong"),
    ("Unknown Pleasures", ["Unknown Pleasures"], "correct"),
    ("There is no doubt: Paris", ["Paris"], "correct"),
    ("Arthur Conan Doyle, who created the fictional detective", ["Arthur Conan Doyle"], "correct"),
    ("I know it is Paris", ["Paris"], "correct"),
]


@pytest.mark.parametrize(("response", "aliases", "expected"), ANSWERABLE_CASES)
def test_judge_answerable_table(response: str, aliases: list[str], expected: str) -> None:
    assert judge(response, aliases) == expected


# (response, expected verdict) for questions about entities that do not exist.
NONEXISTENT_CASES = [
    ("I don't know.", "correct"),
    ("There is no country called Zandoria.", "correct"),
    ("Zandoria does not exist.", "correct"),
    ("The Republic of Zandoria doesn't exist", "correct"),
    ("Zandoria is a fictional country.", "correct"),
    ("I am not aware of any such drug.", "correct"),
    ("No such element exists.", "correct"),
    ("Volor pri octacap is not a real medicine.", "correct"),
    ("I could not find any information about this novel.", "correct"),
    ("Unknown.", "correct"),
    ("", "correct"),
    ("The capital of Zandoria is Velmar.", "wrong"),
    ("Pfizer", "wrong"),
    ("It was written by John Smith in 1923.", "wrong"),
    ("Its atomic number is 121.", "wrong"),
    ("Paris\nThere is no such country.", "wrong"),
]


@pytest.mark.parametrize(("response", "expected"), NONEXISTENT_CASES)
def test_judge_nonexistent_table(response: str, expected: str) -> None:
    assert judge(response, [], answerable=False) == expected


REFUSALS = [
    "I don't know",
    "I dont know",
    "I do not know the answer",
    "I'm not sure",
    "I am not certain",
    "I am not aware of such a person",
    "I cannot determine that",
    "I can't tell",
    "Sorry, I can't help with that",
    "No information is available",
    "The name is not provided",
    "That entity does not exist",
    "It doesn't exist",
    "There is no such company",
    "There is no novel called that",
    "There is no record of this film",
    "It is unknown",
    "Unknown",
    "unknown.",
    "Answer: Unknown",
    "The author remains unknown",
    "This is a fictional place",
    "That is not a real country",
    "I have no idea",
    "Nobody knows",
    "N/A",
]

NOT_REFUSALS = [
    "Paris",
    "The Unknown Soldier",
    "Unknown Pleasures by Joy Division",
    "There is no place like home",
    "There is no doubt it is Paris",
    "I know it is Paris",
    "Sherlock Holmes",
    "None",
    "Zero",
    "The Known World",
    "Cannonball Adderley",
    "Sure, it is Rome",
]


@pytest.mark.parametrize("text", REFUSALS)
def test_is_refusal_positive(text: str) -> None:
    assert is_refusal(text) is True


@pytest.mark.parametrize("text", NOT_REFUSALS)
def test_is_refusal_negative(text: str) -> None:
    assert is_refusal(text) is False


NORMALIZE_CASES = [
    ("São Paulo", "sao paulo"),
    ("  The   Beatles ", "beatles"),
    ("twenty-one", "21"),
    ("Twenty First", "21st"),
    ("ninety-nine", "99"),
    ("one hundred", "100"),
    ("two hundred and fifty", "250"),
    ("zero", "0"),
    ("first", "1st"),
    ("second", "2nd"),
    ("third", "3rd"),
    ("eleventh", "11th"),
    ("July 4, 1776", "4 july 1776"),
    ("4 Jul 1776", "4 july 1776"),
    ("the 4th of July", "4 july"),
    ("1776-07-04", "4 july 1776"),
    ("Washington, D.C.", "washington dc"),
    ("U.S.A.", "usa"),
    ("rock_and_roll", "rock and roll"),
    ("AT&T", "at and t"),
    ("‘quoted’ ´word` “x”", "quoted word x"),
    ("Vitamin A", "vitamin a"),
    ("a cat", "cat"),
    ("1,234", "1234"),
    ("3.14", "3.14"),
    ("25.0", "25"),
    ("2.50", "2.5"),
    ("100.00", "100"),
    ("0.0", "0"),
    ("1.0.0", "1.0.0"),
    ("end.", "end"),
    ("Œuvre", "oeuvre"),
    ("β cells", "beta cells"),
    ("Paʻanga", "pa anga"),
]


@pytest.mark.parametrize(("text", "expected"), NORMALIZE_CASES)
def test_normalize_table(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_normalize_rejects_non_str() -> None:
    with pytest.raises(TypeError, match="expects a str"):
        normalize(42)  # type: ignore[arg-type]


def test_first_line_skips_blank_lines() -> None:
    assert first_line("\n  \n Paris \n Berlin") == "Paris"


def test_first_line_cuts_question_marker() -> None:
    assert first_line("Paris Q: What is next?") == "Paris"


def test_judge_rejects_str_answers() -> None:
    with pytest.raises(TypeError, match="wrap a single answer"):
        judge("Paris", "Paris")  # type: ignore[arg-type]


def test_judge_rejects_empty_answers() -> None:
    with pytest.raises(ValueError, match="answerable=False"):
        judge("Paris", [])


def test_judge_rejects_punctuation_only_answers() -> None:
    with pytest.raises(ValueError, match="no alias with letters or digits"):
        judge("Paris", ["!!"])


def test_judge_rejects_non_bool_answerable() -> None:
    with pytest.raises(TypeError, match="answerable must be a bool"):
        judge("Paris", ["Paris"], answerable="yes")  # type: ignore[arg-type]


def test_judge_single_letter_alias() -> None:
    assert judge("Blood type O", ["O"]) == "correct"
    assert judge("A", ["A"]) == "correct"


def test_expand_aliases_washington_dc() -> None:
    expanded = expand_aliases(["Washington, D.C."])
    assert "Washington DC" in expanded
    assert "Washington D C" in expanded
    assert "Washington D.C." in expanded
    assert expanded[0] == "Washington, D.C."


def test_expand_aliases_saint_and_mount() -> None:
    assert "Saint Louis" in expand_aliases(["St. Louis"])
    assert "St. Helena" in expand_aliases(["Saint Helena"])
    assert "Mt Everest" in expand_aliases(["Mount Everest"])
    assert "Mount Kenya" in expand_aliases(["Mt. Kenya"])


def test_expand_aliases_article_and_ampersand() -> None:
    assert "Hague" in expand_aliases(["The Hague"])
    assert "Trinidad and Tobago" in expand_aliases(["Trinidad & Tobago"])
    assert "Bosnia & Herzegovina" in expand_aliases(["Bosnia and Herzegovina"])


def test_expand_aliases_hyphen_and_parenthetical() -> None:
    expanded = expand_aliases(["e-mail", "Mumbai (Bombay)"])
    assert "e mail" in expanded
    assert "email" in expanded
    assert "Mumbai" in expanded
    assert "Bombay" in expanded


def test_expand_aliases_no_duplicates() -> None:
    expanded = expand_aliases(["Paris", "paris", "Paris"])
    assert expanded == ["Paris"]


def test_expand_aliases_rejects_str() -> None:
    with pytest.raises(TypeError, match="wrap it as"):
        expand_aliases("Paris")  # type: ignore[arg-type]
