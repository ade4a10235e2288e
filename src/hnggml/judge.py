"""Answer judge for short factoid questions.

The judge labels a model response as ``"correct"``, ``"wrong"`` or ``"refusal"``
by matching normalised answer aliases against the normalised response.

Only the first non-empty line of a response is judged.  Small base models keep
generating after the answer (a new question, a list of guesses, an unrelated
paragraph), and anything past the first newline would let an alias match by
chance.  The line is also cut before an inline ``Question:`` or ``Q:`` marker,
which is how a few-shot prompt continues when the model does not emit a
newline.  Sentences are not split, because abbreviations such as "D.C." or
"St." make a full stop an unreliable sentence boundary.

The module uses only the standard library.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable
from typing import Literal

logger = logging.getLogger(__name__)

Verdict = Literal["correct", "wrong", "refusal"]

__all__ = [
    "Verdict",
    "expand_aliases",
    "first_line",
    "is_refusal",
    "judge",
    "normalize",
]

# Letters that NFKD leaves intact but that readers treat as accented forms of
# plain Latin letters.
_LETTER_FOLDS = str.maketrans(
    {
        "ß": "ss",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "ø": "o",
        "Ø": "O",
        "đ": "d",
        "Đ": "D",
        "ð": "d",
        "Ð": "D",
        "þ": "th",
        "Þ": "Th",
        "ł": "l",
        "Ł": "L",
        "ı": "i",
        "ħ": "h",
        "Ħ": "H",
        # Greek letters common in biomedical names ("β cells", "APOE ε4").
        "α": "alpha",
        "β": "beta",
        "γ": "gamma",
        "δ": "delta",
        "ε": "epsilon",
        "κ": "kappa",
        "λ": "lambda",
        "μ": "mu",
        "π": "pi",
        "σ": "sigma",
        "τ": "tau",
        "ω": "omega",
        "Δ": "delta",
        "Ω": "omega",
    }
)

# Quote and apostrophe look-alikes mapped to the ASCII apostrophe before any
# pattern runs, so "don’t" and "don't" behave the same.
_QUOTE_FOLDS = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u00b4": "'",
        "`": "'",
        "\u02bb": "'",
        "\u02bc": "'",
        "\u02be": "'",
        "\u02bf": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u00ab": '"',
        "\u00bb": '"',
    }
)

_ARTICLES = frozenset({"a", "an", "the"})

# Tokens after which "a" is a letter name ("vitamin a", "hepatitis a",
# "type a") and not an article.
_LETTER_A_CONTEXT = frozenset(
    {
        "vitamin",
        "hepatitis",
        "type",
        "group",
        "class",
        "grade",
        "plan",
        "section",
        "channel",
        "list",
        "size",
        "influenza",
        "formula",
        "exhibit",
        "serie",
        "series",
        "league",
        "blood",
        "battery",
    }
)

_UNITS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_ORDINAL_UNITS = {
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "sixth": 6,
    "seventh": 7,
    "eighth": 8,
    "ninth": 9,
    "tenth": 10,
    "eleventh": 11,
    "twelfth": 12,
    "thirteenth": 13,
    "fourteenth": 14,
    "fifteenth": 15,
    "sixteenth": 16,
    "seventeenth": 17,
    "eighteenth": 18,
    "nineteenth": 19,
}
_ORDINAL_TENS = {
    "twentieth": 20,
    "thirtieth": 30,
    "fortieth": 40,
    "fiftieth": 50,
    "sixtieth": 60,
    "seventieth": 70,
    "eightieth": 80,
    "ninetieth": 90,
    "hundredth": 100,
}

_MONTHS = {
    "january": "january",
    "jan": "january",
    "february": "february",
    "feb": "february",
    "march": "march",
    "mar": "march",
    "april": "april",
    "apr": "april",
    "may": "may",
    "june": "june",
    "jun": "june",
    "july": "july",
    "jul": "july",
    "august": "august",
    "aug": "august",
    "september": "september",
    "sep": "september",
    "sept": "september",
    "october": "october",
    "oct": "october",
    "november": "november",
    "nov": "november",
    "december": "december",
    "dec": "december",
}
_MONTH_BY_NUMBER = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]

_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_THOUSANDS_COMMA = re.compile(r"(?<=\d),(?=\d{3}\b)")
_DECIMAL_POINT = re.compile(r"(?<=\d)\.(?=\d)")
_DOTTED_INITIALISM = re.compile(r"\b(?:[a-z]\.\s?){2,}")
_NON_WORD = re.compile(r"[^a-z0-9\u00b7]+")
_DAY_ORDINAL = re.compile(r"^(\d{1,2})(?:st|nd|rd|th)$")
_DECIMAL_PLACEHOLDER = "\u00b7"
# A decimal token with trailing zeros in its fraction: "25.0", "2.50".
_TRAILING_FRACTION_ZEROS = re.compile(r"^(\d+)\.(\d*?)0+$")

# A continuation marker that a few-shot prompt produces when the model keeps
# going on the same line: "Paris. Question: What is ...".
_CONTINUATION_MARKER = re.compile(r"\s(?:question|q)\s*:", re.IGNORECASE)


def _fold_accents(text: str) -> str:
    text = text.translate(_LETTER_FOLDS)
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _ordinal_suffix(value: int) -> str:
    if 10 <= value % 100 <= 20:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(value % 10, "th")


def _convert_number_words(tokens: list[str]) -> list[str]:
    """Replace spelled-out cardinals below 1000 and ordinals up to 100 with digits."""
    output: list[str] = []
    i = 0
    n = len(tokens)
    while i < n:
        token = tokens[i]
        nxt = tokens[i + 1] if i + 1 < n else None

        # "two hundred and fifty", "one hundred", "hundred"
        hundreds = None
        if token in _UNITS and 1 <= _UNITS[token] <= 9 and nxt == "hundred":
            hundreds = _UNITS[token]
            j = i + 2
        elif token == "hundred":
            hundreds = 1
            j = i + 1
        if hundreds is not None:
            value = hundreds * 100
            k = j + 1 if j < n and tokens[j] == "and" else j
            rest, used = _read_below_hundred(tokens, k)
            if used:
                output.append(str(value + rest[0]) + rest[1])
                i = k + used
            else:
                output.append(str(value))
                i = j
            continue

        rest, used = _read_below_hundred(tokens, i)
        if used:
            output.append(str(rest[0]) + rest[1])
            i += used
            continue
        if token in _ORDINAL_TENS:
            value = _ORDINAL_TENS[token]
            output.append(f"{value}th")
            i += 1
            continue
        output.append(token)
        i += 1
    return output


def _read_below_hundred(tokens: list[str], start: int) -> tuple[tuple[int, str], int]:
    """Read a number word below 100 at ``start``.

    Returns ``((value, ordinal_suffix), tokens_used)``, with ``tokens_used`` 0
    when no number word starts there.
    """
    if start >= len(tokens):
        return (0, ""), 0
    token = tokens[start]
    nxt = tokens[start + 1] if start + 1 < len(tokens) else None
    if token in _TENS:
        value = _TENS[token]
        if nxt in _UNITS and 1 <= _UNITS[nxt] <= 9:
            return (value + _UNITS[nxt], ""), 2
        if nxt in _ORDINAL_UNITS and 1 <= _ORDINAL_UNITS[nxt] <= 9:
            total = value + _ORDINAL_UNITS[nxt]
            return (total, _ordinal_suffix(total)), 2
        return (value, ""), 1
    if token in _UNITS:
        return (_UNITS[token], ""), 1
    if token in _ORDINAL_UNITS:
        value = _ORDINAL_UNITS[token]
        return (value, _ordinal_suffix(value)), 1
    if token in _ORDINAL_TENS and token != "hundredth":
        value = _ORDINAL_TENS[token]
        return (value, "th"), 1
    return (0, ""), 0


def _is_day(token: str) -> str | None:
    """Return the day number of ``token`` ("4", "4th") or None."""
    match = _DAY_ORDINAL.match(token)
    digits = match.group(1) if match else token
    if digits.isdigit() and 1 <= int(digits) <= 31 and len(digits) <= 2:
        return str(int(digits))
    return None


def _normalize_dates(tokens: list[str]) -> list[str]:
    """Rewrite "july 4 1776", "4th of july" and "4 jul" as "4 july [1776]"."""
    output: list[str] = []
    i = 0
    n = len(tokens)
    while i < n:
        token = tokens[i]
        nxt = tokens[i + 1] if i + 1 < n else None
        # month day [year]
        if token in _MONTHS and nxt is not None and _is_day(nxt) is not None:
            output.extend([_is_day(nxt), _MONTHS[token]])  # type: ignore[list-item]
            i += 2
            continue
        day = _is_day(token)
        if day is not None and nxt is not None:
            # day of month
            if nxt == "of" and i + 2 < n and tokens[i + 2] in _MONTHS:
                output.extend([day, _MONTHS[tokens[i + 2]]])
                i += 3
                continue
            # day month
            if nxt in _MONTHS:
                output.extend([day, _MONTHS[nxt]])
                i += 2
                continue
        output.append(token)
        i += 1
    return output


def _iso_date_to_words(match: re.Match[str]) -> str:
    year, month, day = match.group(1), int(match.group(2)), int(match.group(3))
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return match.group(0)
    return f" {day} {_MONTH_BY_NUMBER[month - 1]} {year} "


def _trim_fraction_zeros(token: str) -> str:
    """Drop trailing zeros of a decimal fraction: "25.0" to "25", "2.50" to "2.5"."""
    match = _TRAILING_FRACTION_ZEROS.match(token)
    if match is None:
        return token
    whole, fraction = match.groups()
    return f"{whole}.{fraction}" if fraction else whole


def _join_initialism(match: re.Match[str]) -> str:
    letters = match.group(0).replace(".", "").replace(" ", "")
    return letters + " "


def _tokens(text: str, drop_articles: bool = True) -> list[str]:
    text = _fold_accents(text.translate(_QUOTE_FOLDS)).casefold()
    text = text.replace("&", " and ")
    text = _ISO_DATE.sub(_iso_date_to_words, text)
    text = _THOUSANDS_COMMA.sub("", text)
    text = _DECIMAL_POINT.sub(_DECIMAL_PLACEHOLDER, text)
    text = _DOTTED_INITIALISM.sub(_join_initialism, text)
    text = _NON_WORD.sub(" ", text)
    tokens = [t.replace(_DECIMAL_PLACEHOLDER, ".") for t in text.split()]
    tokens = [t.strip(".") or t for t in tokens]
    # NOTE: this also equates version numbers such as "3.10" and "3.1".
    tokens = [_trim_fraction_zeros(t) for t in tokens]
    tokens = _convert_number_words(tokens)
    tokens = _normalize_dates(tokens)
    if drop_articles:
        kept: list[str] = []
        for index, token in enumerate(tokens):
            if token in _ARTICLES:
                previous = tokens[index - 1] if index > 0 else ""
                is_letter = token == "a" and previous in _LETTER_A_CONTEXT
                if not is_letter:
                    continue
            kept.append(token)
        tokens = kept
    return tokens


def normalize(text: str) -> str:
    """Normalise text for answer matching.

    Folds accents (NFKD, plus letters such as ß, ø and ł), spells out
    common Greek letters ("β" to "beta"), casefolds, maps
    ``&`` to "and", joins dotted initialisms ("D.C." and "J. R. R." to "dc"
    and "jrr"), turns ``_``
    and punctuation (curly quotes, ´ and ` included) into spaces, rewrites
    number words as digits ("twenty-one" to "21", "first" to "1st",
    "one hundred and one" to "101"), drops trailing zeros of decimal
    fractions ("25.0" to "25", "2.50" to "2.5"), rewrites dates to "day month year"
    order ("July 4, 1776" and "1776-07-04" both become "4 july 1776"), drops
    the articles a/an/the and collapses whitespace.

    "a" after words such as "vitamin", "hepatitis" or "type" is kept because
    there it names a letter.
    """
    if not isinstance(text, str):
        raise TypeError(f"normalize() expects a str, got {type(text).__name__}: {text!r}")
    return " ".join(_tokens(text))


def _normalize_alias(alias: str) -> list[str]:
    """Tokens of an alias; an alias made only of articles keeps them ("A")."""
    tokens = _tokens(alias)
    if not tokens:
        tokens = _tokens(alias, drop_articles=False)
    return tokens


# ---------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------

# Statements that the model does not know or will not answer.
_UNCERTAINTY_PATTERNS = [
    r"\bi (?:do not|don't|dont|did not|didn't) know\b",
    r"\bi (?:do not|don't|dont) have (?:any |enough |the )?(?:information|data|knowledge|details|access|an answer|a record|records)\b",
    r"\bi (?:am|'m|m) not (?:sure|certain|aware|familiar)\b",
    r"\bi (?:am|'m|m) unsure\b",
    r"\bnot (?:entirely |completely |totally |100% )?sure\b",
    r"\bi have no (?:idea|information|knowledge|record|data|clue)\b",
    r"\bno idea\b",
    r"\bi (?:am|'m|m) (?:unable|not able) to\b",
    r"\b(?:cannot|can't|cant|can not|could not|couldn't|unable to) (?:answer|determine|find|provide|say|tell|know|identify|confirm|verify|help|locate|give|recall|be determined|be answered|be found|be known)\b",
    r"\bi (?:cannot|can't|can not|could not|couldn't)\b",
    r"\bno (?:available |reliable |public |known |specific )?(?:information|data|records?|answer|evidence|knowledge|details)\b",
    r"\bnot (?:provided|available|known|given|specified|mentioned|stated|listed|documented|recorded|disclosed|specified)\b",
    r"\b(?:is|are|was|were|remains?) (?:currently |still )?unknown\b",
    r"\b(?:is|it's|it is|that's|that is) (?:unclear|uncertain)\b",
    r"\b(?:no one|nobody) knows\b",
    r"\bhard to say\b",
    r"\bnot enough (?:information|context|data)\b",
]

# Statements that the entity in the question does not exist.
_NONEXISTENCE_PATTERNS = [
    r"\b(?:does|do|did) not (?:appear to |seem to )?exist\b",
    r"\b(?:doesn't|don't|didn't|doesnt|dont|didnt) (?:appear to |seem to )?exist\b",
    r"\bnever existed\b",
    r"\bnon-?existent\b",
    r"\bno such\b",
    r"\bthere (?:is|are|was|were) no (?:such|known|record|records|information|data|evidence|answer|country|city|person|element|drug|medicine|company|book|novel|film|movie)\b",
    r"\bthere (?:is|are|was|were) no [\w' -]{1,40}? (?:called|named|known as)\b",
    r"\b(?:is|are|was|were|isn't|aren't|wasn't|weren't|not) (?:a |an )?(?:real|actual|existing|recognized|recognised|known|valid) (?:country|nation|state|city|town|place|person|people|element|chemical element|drug|medicine|medication|company|book|novel|film|movie|work|entity|thing)\b",
    r"\bnot (?:a |an )?real\b",
    r"\b(?:is|are|was|were|seems to be|appears to be|sounds like) (?:a |an |entirely |purely |completely )?(?:fictional|fictitious|made[- ]up|imaginary|invented|hypothetical|nonexistent)\b",
    r"\bi (?:am|'m|m) not aware of\b",
    r"\b(?:could|can) ?not find\b",
    r"\bcouldn't find\b",
    r"\bno (?:record|records|mention|trace) of\b",
    r"\bnot (?:a |an )?(?:recognized|recognised|known) (?:country|city|element|drug|company|person|word|name|term)\b",
]

_UNCERTAINTY_RE = re.compile("|".join(_UNCERTAINTY_PATTERNS))
_NONEXISTENCE_RE = re.compile("|".join(_NONEXISTENCE_PATTERNS))

# "Unknown" as the whole answer, or followed only by punctuation or a clause.
_BARE_UNKNOWN_RE = re.compile(r"^(?:answer\s*:\s*)?(?:it is |it's |this is )?unknown\s*(?:$|[.,;:!?(-])")
_ANSWER_LABEL_RE = re.compile(r"^\s*(?:a|answer)\s*[:.]\s*", re.IGNORECASE)
_STANDALONE_REFUSALS = frozenset({"unknown", "n/a", "not known", "no answer", "idk", "?"})


def _refusal_text(text: str) -> str:
    text = _fold_accents(text.translate(_QUOTE_FOLDS)).casefold()
    text = _ANSWER_LABEL_RE.sub("", text)
    return " ".join(text.split())


def _is_uncertain(text: str) -> bool:
    folded = _refusal_text(text)
    if folded.rstrip(".!") in _STANDALONE_REFUSALS:
        return True
    if _BARE_UNKNOWN_RE.match(folded):
        return True
    return _UNCERTAINTY_RE.search(folded) is not None


def _denies_existence(text: str) -> bool:
    return _NONEXISTENCE_RE.search(_refusal_text(text)) is not None


def is_refusal(text: str) -> bool:
    """Return True when ``text`` declines to answer or denies the entity exists.

    Covers statements of not knowing ("I don't know", "I'm not sure", "I cannot
    answer", "no information", "not provided", "unknown" as the answer) and
    statements that the entity does not exist ("does not exist", "there is no
    country called ...", "no such", "is fictional", "I am not aware of").
    "Unknown" inside a name, as in "The Unknown Soldier", is not a refusal.
    The whole text is checked; :func:`judge` passes only the first line.
    """
    if not isinstance(text, str):
        raise TypeError(f"is_refusal() expects a str, got {type(text).__name__}: {text!r}")
    return _is_uncertain(text) or _denies_existence(text)


# ---------------------------------------------------------------------------
# Judging
# ---------------------------------------------------------------------------


def first_line(response: str) -> str:
    """Return the part of ``response`` that :func:`judge` looks at.

    That is the first non-empty line, cut before an inline ``Question:`` or
    ``Q:`` marker.
    """
    for line in response.splitlines():
        if line.strip():
            marker = _CONTINUATION_MARKER.search(" " + line)
            if marker is not None:
                line = (" " + line)[: marker.start()]
            return line.strip()
    return ""


def _contains_sequence(haystack: list[str], needle: list[str]) -> bool:
    """Whole-token match of ``needle`` in ``haystack``.

    The last token of a needle of 4+ letters may also carry a plural "s" or
    "es" ("dolphin" matches "dolphins").
    """
    size = len(needle)
    if size == 0 or size > len(haystack):
        return False
    last = needle[-1]
    plural_ok = last.isalpha() and len(last) >= 4
    for start in range(len(haystack) - size + 1):
        if haystack[start : start + size - 1] != needle[:-1]:
            continue
        candidate = haystack[start + size - 1]
        if candidate == last:
            return True
        if plural_ok and candidate in (last + "s", last + "es"):
            return True
    return False


def matches_any(response: str, answers: Iterable[str]) -> bool:
    """Return True when any alias occurs in ``response`` as a whole-token phrase."""
    response_tokens = _tokens(response)
    response_tokens_with_articles: list[str] | None = None
    for alias in answers:
        alias_tokens = _tokens(alias)
        haystack = response_tokens
        if not alias_tokens:
            # An alias made only of articles, such as the letter "A", is
            # matched against the response with its articles kept.
            alias_tokens = _tokens(alias, drop_articles=False)
            if response_tokens_with_articles is None:
                response_tokens_with_articles = _tokens(response, drop_articles=False)
            haystack = response_tokens_with_articles
        if alias_tokens and _contains_sequence(haystack, alias_tokens):
            return True
    return False


def _check_answers(answers: object, answerable: bool) -> list[str]:
    if isinstance(answers, str) or not isinstance(answers, (list, tuple)):
        raise TypeError(
            f"answers must be a list of str, got {type(answers).__name__}: {answers!r}; "
            "wrap a single answer as [answer]"
        )
    for alias in answers:
        if not isinstance(alias, str):
            raise TypeError(f"every answer alias must be a str, got {type(alias).__name__}: {alias!r}")
    if answerable:
        usable = [alias for alias in answers if _normalize_alias(alias)]
        if not usable:
            raise ValueError(
                f"answers {answers!r} contain no alias with letters or digits; "
                "an answerable question needs at least one, or pass answerable=False"
            )
    return list(answers)


def judge(response: str, answers: list[str], answerable: bool = True) -> Verdict:
    """Label ``response`` as "correct", "wrong" or "refusal".

    Only the first line of the response is judged (see :func:`first_line`).

    For an answerable question the checks run in this order:

    1. A statement of not knowing ("I'm not sure", "I don't know") is
       "refusal", even when an alias follows it.
    2. A whole-token match of any normalised alias is "correct".
    3. A denial of existence ("there is no such ...") is "refusal".
    4. Anything else is "wrong".

    An empty first line is "refusal".

    For a question about an entity that does not exist (``answerable=False``)
    a refusal or a denial of existence is "correct" and any other answer is
    "wrong", because a confident answer is a hallucination.  An empty first
    line counts as an abstention and is "correct".
    """
    if not isinstance(response, str):
        raise TypeError(f"response must be a str, got {type(response).__name__}: {response!r}")
    if not isinstance(answerable, bool):
        raise TypeError(f"answerable must be a bool, got {type(answerable).__name__}: {answerable!r}")
    aliases = _check_answers(answers, answerable)
    line = first_line(response)

    if not answerable:
        if not line or is_refusal(line):
            return "correct"
        return "wrong"

    if not line:
        return "refusal"
    if _is_uncertain(line):
        return "refusal"
    if matches_any(line, aliases):
        return "correct"
    if _denies_existence(line):
        return "refusal"
    return "wrong"


# ---------------------------------------------------------------------------
# Alias expansion
# ---------------------------------------------------------------------------

_PARENTHETICAL = re.compile(r"\s*\(([^()]*)\)\s*")
_DC_VARIANTS = ("Washington, D.C.", "Washington D.C.", "Washington DC", "Washington D C", "Washington, DC")

_WORD_SWAPS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\bSt\.?(?=\s)"), "Saint"),
    (re.compile(r"\bSaint\b"), "St."),
    (re.compile(r"\bSaint\b"), "St"),
    (re.compile(r"\bSte\.?(?=\s)"), "Sainte"),
    (re.compile(r"\bSainte\b"), "Ste."),
    (re.compile(r"\bMount\b"), "Mt"),
    (re.compile(r"\bMount\b"), "Mt."),
    (re.compile(r"\bMt\.?(?=\s)"), "Mount"),
    (re.compile(r"\bFort\b"), "Ft."),
    (re.compile(r"\bFt\.?(?=\s)"), "Fort"),
    (re.compile(r"\s*&\s*"), " and "),
    (re.compile(r"\s+and\s+"), " & "),
]


def _alias_variants(alias: str) -> list[str]:
    variants = [alias]

    # "Mumbai (Bombay)" gives "Mumbai" and "Bombay".
    inner = _PARENTHETICAL.findall(alias)
    if inner:
        variants.append(_PARENTHETICAL.sub(" ", alias).strip())
        variants.extend(part.strip() for part in inner)

    stripped = re.sub(r"^(?:The|the)\s+", "", alias)
    if stripped != alias:
        variants.append(stripped)

    for pattern, replacement in _WORD_SWAPS:
        for variant in list(variants):
            swapped = pattern.sub(replacement, variant)
            if swapped != variant:
                variants.append(swapped)

    for variant in list(variants):
        if "-" in variant:
            variants.append(variant.replace("-", " "))
            variants.append(variant.replace("-", ""))

    if re.fullmatch(r"Washington,?\s*D\.?\s*C\.?", alias.strip()):
        variants.extend(_DC_VARIANTS)

    return variants


def expand_aliases(answers: Iterable[str]) -> list[str]:
    """Return ``answers`` plus common spelling variants, originals first.

    Adds the alias without a leading "The", "St."/"St"/"Saint",
    "Mt"/"Mt."/"Mount" and "Ft."/"Fort" swaps, "&"/"and" swaps, hyphen
    variants (space and joined), the parts of a parenthetical ("Mumbai
    (Bombay)" gives "Mumbai" and "Bombay") and the spellings of
    "Washington, D.C.".  Duplicates that differ only in case are dropped.
    """
    if isinstance(answers, str):
        raise TypeError(f"expand_aliases() expects a list of str, got the str {answers!r}; wrap it as [answer]")
    output: list[str] = []
    seen: set[str] = set()
    for alias in answers:
        if not isinstance(alias, str):
            raise TypeError(f"every answer alias must be a str, got {type(alias).__name__}: {alias!r}")
        for variant in _alias_variants(alias.strip()):
            variant = " ".join(variant.split())
            key = variant.casefold()
            if not key or key in seen or not _normalize_alias(variant):
                continue
            seen.add(key)
            output.append(variant)
    return output
