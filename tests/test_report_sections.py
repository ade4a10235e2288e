"""The report scripts replace only the sections of the models they ran."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from report_sections import merge_sections, write_report  # noqa: E402


def test_rerun_replaces_only_its_own_section():
    first = merge_sections("", {"a": "## A\nold a", "b": "## B\nold b"}, "# Report\n\nHand-written summary.")
    second = merge_sections(first, {"b": "## B\nnew b"}, "# unused header")
    assert "Hand-written summary." in second
    assert "old a" in second
    assert "new b" in second
    assert "old b" not in second
    assert second.count("<!-- generated: b -->") == 1
    assert "unused header" not in second


def test_new_section_is_appended_after_existing_text():
    text = merge_sections("# Report\n\nNotes.\n", {"c": "## C\nbody"}, "# unused")
    assert text.index("Notes.") < text.index("<!-- generated: c -->") < text.index("body")


def test_section_body_with_backslashes_is_kept_verbatim():
    text = merge_sections("x\n<!-- generated: a -->\nold\n<!-- end generated: a -->\n", {"a": r"C:\new \1 \g<0>"}, "")
    assert r"C:\new \1 \g<0>" in text


def test_bad_section_name_is_rejected():
    with pytest.raises(ValueError, match="section name"):
        merge_sections("", {"a b": "x"}, "# h")


def test_write_report_creates_and_updates_file(tmp_path):
    out = tmp_path / "report.md"
    write_report(out, {"m": "one"}, "# Title")
    write_report(out, {"m": "two"}, "# Title")
    text = out.read_text()
    assert text.startswith("# Title")
    assert "two" in text
    assert "one" not in text
    assert not (tmp_path / "report.md.tmp").exists()
