"""`hnggml models`: GGUF folders, an Ollama store and probe matching by ffn_down hash."""

from __future__ import annotations

import hashlib
import json
import shutil

from click.testing import CliRunner

from hnggml import ollama
from hnggml.cli import main
from hnggml.cli_models import ModelEntry, format_table


def make_store(root, blob: bytes, model: str = "broken", tag: str = "latest"):
    """Write an Ollama store with one model whose GGUF layer is ``blob``."""
    digest = hashlib.sha256(blob).hexdigest()
    (root / "blobs").mkdir(parents=True)
    (root / "blobs" / f"sha256-{digest}").write_bytes(blob)
    manifest = root / "manifests" / "registry.ollama.ai" / "library" / model / tag
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "layers": [{"mediaType": ollama.MEDIA_TYPE_MODEL, "digest": f"sha256:{digest}", "size": len(blob)}],
    }), encoding="utf-8")


def test_models_dir_and_matching_probe(tmp_path, model_path, probe_path):
    models = tmp_path / "models"
    models.mkdir()
    # A symlink shares the weight cache entry of the real file (the cache key resolves links).
    (models / "gemma.gguf").symlink_to(model_path)
    (models / "notes.txt").write_text("not a model")
    probes = tmp_path / "probes"
    probes.mkdir()
    shutil.copy(probe_path, probes / "gemma-probe.json")
    (probes / "broken.json").write_text("{}")

    result = CliRunner().invoke(main, ["models", "--no-default", "--dir", str(models), "--probes-dir", str(probes),
                                       "--ollama-store", str(tmp_path / "no-store"), "--json"])

    assert result.exit_code == 0, result.output
    entries = json.loads(result.stdout)
    assert [entry["name"] for entry in entries] == [str(models / "gemma.gguf")]
    assert entries[0]["probes"] == ["gemma-probe.json"]
    assert entries[0]["architecture"] == "gemma3"
    assert entries[0]["size"] == model_path.stat().st_size


def test_models_ollama_entry_with_unreadable_gguf(tmp_path):
    store = tmp_path / "store"
    make_store(store, b"GGUF" + b"\x00" * 60)
    probes = tmp_path / "probes"
    probes.mkdir()

    result = CliRunner().invoke(main, ["models", "--no-default", "--ollama-store", str(store),
                                       "--probes-dir", str(probes)])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["SOURCE", "MODEL", "SIZE", "ARCH", "PROBES", "PATH"]
    assert lines[1].startswith("ollama  ollama:broken:latest")
    assert "error: failed to read" in lines[1]


def test_models_none_found(tmp_path):
    probes = tmp_path / "probes"
    probes.mkdir()

    result = CliRunner().invoke(main, ["models", "--no-default", "--ollama-store", str(tmp_path / "none"),
                                       "--probes-dir", str(probes)])

    assert result.exit_code == 0
    assert result.stdout.startswith("no models found")


def test_models_table_columns():
    entries = [
        ModelEntry(source="dir", name="/m/a.gguf", path="/m/a.gguf", size=253_000_000, architecture="gemma3",
                   probes=["p.json"]),
        ModelEntry(source="ollama", name="ollama:qwen:latest", path="/store/blobs/sha256-1", size=None,
                   error="boom"),
    ]

    lines = format_table(entries).splitlines()

    assert lines[1].split() == ["dir", "/m/a.gguf", "253", "MB", "gemma3", "p.json"]
    assert lines[2].split()[:4] == ["ollama", "ollama:qwen:latest", "-", "-"]
    assert "error: boom" in lines[2]
    assert lines[2].endswith("/store/blobs/sha256-1")
