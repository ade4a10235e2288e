"""Keep one generated section per model in a Markdown report.

A report contains text written by hand (the summary, what the numbers mean) and
one generated section per model between the markers

    <!-- generated: NAME -->
    ...
    <!-- end generated: NAME -->

`merge_sections` replaces the sections of the models a report script just
ran and keeps every other section and all text outside the markers, so a
rerun for one model leaves the other models' results as they were.
"""

from __future__ import annotations

import os
import re
from pathlib import Path


def _begin(name: str) -> str:
    return f"<!-- generated: {name} -->"


def _end(name: str) -> str:
    return f"<!-- end generated: {name} -->"


def wrap(name: str, text: str) -> str:
    """Return ``text`` between the begin and end markers of ``name``."""
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise ValueError(f"section name {name!r} must use only letters, digits, '.', '_' and '-'")
    return f"{_begin(name)}\n{text.strip()}\n{_end(name)}"


def merge_sections(existing: str, sections: dict[str, str], header: str) -> str:
    """Return ``existing`` with each named section replaced, or appended when it is new.

    ``header`` is used only when ``existing`` is empty.
    """
    text = existing if existing.strip() else header.rstrip() + "\n"
    for name, body in sections.items():
        block = wrap(name, body)
        pattern = re.compile(re.escape(_begin(name)) + r".*?" + re.escape(_end(name)), re.S)
        if pattern.search(text):
            text = pattern.sub(lambda _: block, text, count=1)
        else:
            text = text.rstrip() + "\n\n" + block + "\n"
    return text if text.endswith("\n") else text + "\n"


def write_report(path: Path, sections: dict[str, str], header: str) -> None:
    """Merge ``sections`` into the report at ``path`` and replace the file atomically."""
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    text = merge_sections(existing, sections, header)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
