"""``hnggml models``: list the models hnggml can load and the probes trained on each.

A probe matches a model when the SHA-256 of the model's ffn_down tensors
equals the one recorded in the probe, so a renamed or re-downloaded copy of
the same GGUF still matches. The hash is cached per path, size and
modification time. Computing it parses the GGUF file, which takes seconds for
a model with a large vocabulary.

Importing this module registers the command on :data:`hnggml.cli.main`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import click

from .cli import main

logger = logging.getLogger(__name__)


@dataclass
class ModelEntry:
    """One model found by `hnggml models`."""

    source: str
    """"default", "dir" or "ollama"."""
    name: str
    """The --model value that loads it: a path, ollama:NAME:TAG, or "(default)"."""
    path: str | None = None
    size: int | None = None
    architecture: str | None = None
    probes: list[str] = field(default_factory=list)
    error: str | None = None


def shipped_probe_hashes(folder: Path) -> dict[str, list[str]]:
    """Map each ffn_down hash to the probe files in ``folder`` trained for it."""
    from .probe import HProbe

    found: dict[str, list[str]] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            probe = HProbe.load(path)
        except (OSError, ValueError) as exc:
            logger.warning("skipping unreadable probe %s: %s", path, exc)
            continue
        sha = probe.model.get("ffn_down_sha256")
        if sha:
            found.setdefault(sha, []).append(path.name)
    return found


def _describe(entry: ModelEntry, path: Path, probes: dict[str, list[str]]) -> ModelEntry:
    from .errors import HnggmlError
    from .weights import model_info

    entry.path = str(path)
    try:
        entry.size = path.stat().st_size
        info = model_info(path)
    except (HnggmlError, OSError, ValueError) as exc:
        entry.error = str(exc)
        return entry
    entry.architecture = info.architecture
    entry.probes = probes.get(info.ffn_down_sha256, [])
    return entry


def find_models(dirs: tuple[Path, ...], ollama_store: Path | None, probes_folder: Path,
                include_default: bool = True) -> list[ModelEntry]:
    """Return the default model, the .gguf files in ``dirs`` and the models of the Ollama store."""
    from .ollama import list_models, resolve

    probes = shipped_probe_hashes(probes_folder)
    entries: list[ModelEntry] = []
    if include_default:
        from .models import default_model_path

        entry = ModelEntry(source="default", name="(default)")
        try:
            entries.append(_describe(entry, default_model_path(), probes))
        except FileNotFoundError as exc:
            entry.error = str(exc)
            entries.append(entry)

    for folder in dirs:
        for path in sorted(folder.glob("*.gguf")):
            entries.append(_describe(ModelEntry(source="dir", name=str(path)), path, probes))

    for reference in list_models(ollama_store):
        entry = ModelEntry(source="ollama", name=f"ollama:{reference}")
        try:
            resolved = resolve(reference, ollama_store)
        except (LookupError, ValueError) as exc:
            entry.error = str(exc)
            entries.append(entry)
            continue
        entries.append(_describe(entry, Path(resolved.gguf_path), probes))
    return entries


def _size_text(size: int | None) -> str:
    return "-" if size is None else f"{size / 1e6:.0f} MB"


def format_table(entries: list[ModelEntry]) -> str:
    """Render entries as aligned columns: SOURCE, MODEL, SIZE, ARCH, PROBES, PATH."""
    header = ("SOURCE", "MODEL", "SIZE", "ARCH", "PROBES", "PATH")
    rows = [header]
    for entry in entries:
        probes = ", ".join(entry.probes) if entry.probes else "-"
        if entry.error:
            probes = f"error: {entry.error}"
        # A file from --dir is loaded by its path, so its PATH cell would repeat the MODEL cell.
        path = "" if entry.path == entry.name else entry.path or "-"
        rows.append((entry.source, entry.name, _size_text(entry.size), entry.architecture or "-", probes, path))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths)] + [row[-1]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


@main.command("models")
@click.option("--dir", "dirs", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder to scan for .gguf files (not recursive); repeat for several folders.")
@click.option("--ollama-store", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Ollama model store (the folder holding manifests/ and blobs/); default: "
              "$OLLAMA_MODELS, else ~/.ollama/models.")
@click.option("--probes-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Folder of probe files to match against; default: the probes shipped with hnggml.")
@click.option("--no-default", is_flag=True,
              help="Leave out the default model (skips assembling it from its package on first use).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def models_command(dirs: tuple[Path, ...], ollama_store: Path | None, probes_dir: Path | None,
                   no_default: bool, as_json: bool) -> None:
    """List known models and the shipped probes that match each one.

    Known models are the default Gemma 3 270M, the .gguf files in each --dir
    and the models pulled into the Ollama store. A probe matches a model when
    both record the same SHA-256 of the ffn_down tensors.
    """
    from .paths import probes_dir as shipped_probes_dir

    entries = find_models(dirs, ollama_store, probes_dir or shipped_probes_dir(), include_default=not no_default)
    if as_json:
        click.echo(json.dumps([asdict(entry) for entry in entries], indent=1))
    elif entries:
        click.echo(format_table(entries))
    else:
        click.echo("no models found; pass --dir FOLDER or pull a model with Ollama")
