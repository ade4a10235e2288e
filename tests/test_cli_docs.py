"""docs/cli.md against the commands' --help output, and the help text of every option."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest

from hnggml.cli import main

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gen_cli_docs.py"


def _all_commands(command, path=("hnggml",)):
    yield " ".join(path), command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _all_commands(sub, (*path, name))


def test_cli_docs_up_to_date():
    result = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stderr


def test_cli_docs_check_detects_stale_file(tmp_path):
    stale = tmp_path / "cli.md"
    stale.write_text("# Command-line reference\n\nold text\n", encoding="utf-8")

    result = subprocess.run([sys.executable, str(SCRIPT), "--check", "--output", str(stale)],
                            capture_output=True, text=True, timeout=120)

    assert result.returncode == 1
    assert "is stale" in result.stderr


def test_cli_docs_write_then_check(tmp_path):
    output = tmp_path / "cli.md"
    written = subprocess.run([sys.executable, str(SCRIPT), "--output", str(output)],
                             capture_output=True, text=True, timeout=120)
    checked = subprocess.run([sys.executable, str(SCRIPT), "--check", "--output", str(output)],
                             capture_output=True, text=True, timeout=120)

    assert written.returncode == 0, written.stderr
    assert checked.returncode == 0, checked.stderr
    text = output.read_text(encoding="utf-8")
    for name, _ in _all_commands(main):
        assert f"## `{name}`" in text


@pytest.mark.parametrize(("name", "command"), list(_all_commands(main)), ids=lambda value: str(value))
def test_cli_every_option_has_help(name, command):
    undocumented = [
        option.opts[0]
        for option in command.params
        if isinstance(option, click.Option) and not option.hidden and not (option.help or "").strip()
    ]

    assert not undocumented, f"`{name}` has options without help text: {undocumented}"
