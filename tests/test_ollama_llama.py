"""Loading a model from an Ollama store: Llama.from_ollama, `hnggml ask` and `hnggml serve`.

The store is built in a temporary folder with the real test model hard-linked
(or copied) as its GGUF blob, and OLLAMA_MODELS points at it. The weight cache
is keyed by path, so the first load parses the blob's GGUF header again. For
Gemma 3 270M that takes tens of seconds because gguf-py reads its large
vocabulary slowly. Later loads hit the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from hnggml import Llama
from hnggml import ollama
from hnggml.cli import main

pytestmark = pytest.mark.slow

NAME = "gemma3:270m"
PROMPT = "Q: What is the capital of France?\nA:"
SERVE_LINE = re.compile(r"hnggml serve: (\S+) at (http://127\.0\.0\.1:\d+/v1)")


def build_store(root: Path, gguf: Path) -> Path:
    """Write an Ollama store holding ``gguf`` as library/gemma3:270m and return the blob path."""
    hasher = hashlib.sha256()
    with open(gguf, "rb") as file:
        while chunk := file.read(1 << 22):
            hasher.update(chunk)
    digest = hasher.hexdigest()
    blob = root / "blobs" / f"sha256-{digest}"
    blob.parent.mkdir(parents=True)
    try:
        os.link(gguf, blob)
    except OSError:
        import shutil

        shutil.copyfile(gguf, blob)
    params = json.dumps({"stop": ["<end_of_turn>"]}).encode()
    params_digest = hashlib.sha256(params).hexdigest()
    (root / "blobs" / f"sha256-{params_digest}").write_bytes(params)
    manifest = root / "manifests" / "registry.ollama.ai" / "library" / "gemma3" / "270m"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "digest": "sha256:" + "0" * 64, "size": 2},
        "layers": [
            {"mediaType": ollama.MEDIA_TYPE_MODEL, "digest": f"sha256:{digest}", "size": gguf.stat().st_size},
            {"mediaType": ollama.MEDIA_TYPE_PARAMS, "digest": f"sha256:{params_digest}", "size": len(params)},
        ],
    }), encoding="utf-8")
    return blob


@pytest.fixture(scope="module")
def store(tmp_path_factory, model_path):
    root = tmp_path_factory.mktemp("ollama") / "models"
    blob = build_store(root, model_path)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OLLAMA_MODELS", str(root))
        yield root, blob


def check_report(report: dict) -> None:
    assert 0.0 <= report["risk"] <= 1.0
    assert report["flagged"] == (report["risk"] >= report["threshold"])


def test_from_ollama_loads_store_blob(store, probe_path):
    root, blob = store
    llm = Llama.from_ollama(NAME, probe=probe_path, n_ctx=256, n_threads=1, verbose=False)
    try:
        result = llm(PROMPT, max_tokens=6, temperature=0)
    finally:
        llm.close()

    assert Path(llm.model_info.path).resolve() == blob.resolve()
    check_report(result["hnggml"])


def test_from_ollama_accepts_prefix(store, probe_path):
    llm = Llama.from_ollama(f"ollama:{NAME}", probe=probe_path, n_ctx=256, n_threads=1, verbose=False)
    llm.close()

    assert llm.model_info.architecture == "gemma3"


@pytest.mark.parametrize("name", ["", "   "])
def test_from_ollama_empty_name(name):
    with pytest.raises(ValueError, match="needs an Ollama model name"):
        Llama.from_ollama(name)


def test_from_ollama_name_not_string():
    with pytest.raises(TypeError, match="got NoneType"):
        Llama.from_ollama(None)


def test_from_ollama_missing_model(store):
    with pytest.raises(ollama.OllamaModelNotFoundError, match="gemma3:270m"):
        Llama.from_ollama("gemma3:1b", probe=False)


def test_ask_cli_ollama_model(store, probe_path):
    result = CliRunner().invoke(main, ["ask", "--model", f"ollama:{NAME}", "--probe", str(probe_path),
                                       "--threads", "1", "--max-tokens", "6", "--json",
                                       "What is the capital of France?"])

    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["text"]
    assert 0.0 <= answer["risk"] <= 1.0


def test_serve_cli_ollama_model(store, probe_path, tmp_path):
    root, _ = store
    log = tmp_path / "serve.log"
    env = {**os.environ, "OLLAMA_MODELS": str(root), "HNGGML_API_KEY": "secret"}
    command = [sys.executable, "-c", "import sys; from hnggml.cli import main; sys.exit(main())",
               "serve", "--model", f"ollama:{NAME}", "--probe", str(probe_path), "--port", "0",
               "--threads", "1", "--n-ctx", "512", "--max-tokens-cap", "16"]
    with open(log, "w") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120
        match = None
        while match is None:
            assert process.poll() is None, f"hnggml serve exited early:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"hnggml serve did not start:\n{log.read_text()}"
            time.sleep(0.1)
            match = SERVE_LINE.search(log.read_text())
        alias, base_url = match.groups()

        with httpx.Client(base_url=base_url, trust_env=False, timeout=60) as client:
            unauthorised = client.get("/models")
            client.headers["Authorization"] = "Bearer secret"
            models = client.get("/models").json()
            response = client.post("/completions", json={"model": alias, "prompt": PROMPT, "max_tokens": 6,
                                                         "temperature": 0})
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    assert alias == f"ollama:{NAME}"
    assert unauthorised.status_code == 401
    assert [model["id"] for model in models["data"]] == [alias]
    assert response.status_code == 200
    check_report(response.json()["hnggml"])
    assert response.headers["X-Hnggml-Risk"] == f"{response.json()['hnggml']['risk']:.6f}"
    assert process.returncode == 0, log.read_text()
