"""Tests for hnggml.ollama against Ollama-style stores built in tmp_path."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import pytest

from hnggml import ollama
from hnggml.ollama import (
    OllamaModelNotFoundError,
    OllamaStoreError,
    is_ollama_ref,
    list_models,
    parse_name,
    resolve,
)

MODEL_PATH = Path(os.environ.get("HNGGML_TEST_MODEL", "/tmp/models/gemma-3-270m-q4_k_m.gguf"))
FAKE_GGUF = b"GGUF" + b"\x03\x00\x00\x00" + bytes(range(56))
TEMPLATE = "{{ .System }} {{ .Prompt }}"
PARAMS = {"stop": ["<end_of_turn>"], "temperature": 0.1}


class Store:
    """Builder of an Ollama model store: manifests/<host>/<ns>/<model>/<tag> and blobs/sha256-<hex>."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "manifests").mkdir(parents=True)
        (root / "blobs").mkdir()

    def add_blob(self, content: bytes, *, colon_name: bool = False) -> str:
        hex_digest = hashlib.sha256(content).hexdigest()
        separator = ":" if colon_name else "-"
        (self.root / "blobs" / f"sha256{separator}{hex_digest}").write_bytes(content)
        return f"sha256:{hex_digest}"

    def layer(self, media_type: str, content: bytes, **blob_options) -> dict:
        return {
            "mediaType": media_type,
            "digest": self.add_blob(content, **blob_options),
            "size": len(content),
        }

    def add_manifest(
        self,
        layers: list[dict],
        *,
        model: str = "gemma3",
        tag: str = "latest",
        namespace: str = "library",
        host: str = "registry.ollama.ai",
        raw: str | None = None,
    ) -> Path:
        path = self.root / "manifests" / host / namespace / model / tag
        path.parent.mkdir(parents=True, exist_ok=True)
        config = {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "digest": "sha256:" + "0" * 64,
            "size": 2,
        }
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": config,
            "layers": layers,
        }
        path.write_text(raw if raw is not None else json.dumps(manifest), encoding="utf-8")
        return path

    def add_model(self, content: bytes = FAKE_GGUF, **manifest_options) -> Path:
        layers = [
            self.layer(ollama.MEDIA_TYPE_MODEL, content),
            self.layer(ollama.MEDIA_TYPE_TEMPLATE, TEMPLATE.encode()),
            self.layer(ollama.MEDIA_TYPE_PARAMS, json.dumps(PARAMS).encode()),
            self.layer("application/vnd.ollama.image.license", b"license text"),
        ]
        return self.add_manifest(layers, **manifest_options)


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "models")


# Reference parsing -------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("ollama:gemma3", ("registry.ollama.ai", "library", "gemma3", "latest")),
        ("ollama:gemma3:270m", ("registry.ollama.ai", "library", "gemma3", "270m")),
        ("gemma3:270m", ("registry.ollama.ai", "library", "gemma3", "270m")),
        ("ollama:user/model:v1.5", ("registry.ollama.ai", "user", "model", "v1.5")),
        ("ollama:hf.co/bartowski/Qwen2.5-GGUF:Q4_K_M", ("hf.co", "bartowski", "Qwen2.5-GGUF", "Q4_K_M")),
    ],
)
def test_parse_name_valid(ref, expected):
    name = parse_name(ref)

    assert (name.host, name.namespace, name.model, name.tag) == expected


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("ollama:", "model name is empty"),
        ("ollama:../../etc/passwd", "got 4 parts"),
        ("ollama:..", "model name '..'"),
        ("ollama:/etc/passwd", "host ''"),
        ("ollama:gemma3:../../x", "must start with a letter"),
        ("ollama:gemma3:a/b", "must start with a letter"),
        ("ollama:gemma3:", "tag ''"),
        ("ollama:gem..ma", "model name 'gem..ma'"),
        ("ollama:.hidden", "model name '.hidden'"),
        ("ollama:-x", "model name '-x'"),
        ("ollama:ns.dot/model", "namespace 'ns.dot'"),
        ("ollama:gemma3@sha256-0000", "model name 'gemma3@sha256-0000'"),
        ("ollama:gemma 3", "model name 'gemma 3'"),
        ("ollama:a\\b", r"model name 'a\\\\b'"),
        ("ollama:" + "m" * 81, "model name"),
    ],
)
def test_parse_name_invalid(ref, message):
    with pytest.raises(ValueError, match=message):
        parse_name(ref)


def test_parse_name_rejects_non_string():
    with pytest.raises(TypeError, match="must be a string"):
        parse_name(Path("gemma3"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ollama:gemma3", True),
        ("ollama:", True),
        ("gemma3.gguf", False),
        ("/models/ollama:x", False),
        (Path("ollama:x"), False),
        (None, False),
    ],
)
def test_is_ollama_ref_prefix(value, expected):
    assert is_ollama_ref(value) is expected


# Store location ----------------------------------------------------------------


def test_default_store_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "custom"))

    assert ollama.default_store() == tmp_path / "custom"


def test_default_store_home(monkeypatch, tmp_path):
    monkeypatch.delenv("OLLAMA_MODELS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ollama" / "models").mkdir(parents=True)

    assert ollama.default_store() == tmp_path / ".ollama" / "models"


def test_resolve_uses_env_store(monkeypatch, store):
    store.add_model()
    monkeypatch.setenv("OLLAMA_MODELS", str(store.root))

    model = resolve("ollama:gemma3")

    assert model.gguf_path.parent == store.root.resolve() / "blobs"


# Resolution --------------------------------------------------------------------


def test_resolve_returns_model_fields(store):
    manifest = store.add_model(tag="270m")

    model = resolve("ollama:gemma3:270m", store.root)

    digest = "sha256:" + hashlib.sha256(FAKE_GGUF).hexdigest()
    assert model.name == "gemma3"
    assert model.tag == "270m"
    assert model.gguf_path == store.root.resolve() / "blobs" / f"sha256-{digest[7:]}"
    assert model.gguf_path.read_bytes() == FAKE_GGUF
    assert model.manifest_path == manifest.resolve()
    assert model.size == len(FAKE_GGUF)
    assert model.template == TEMPLATE
    assert model.params == PARAMS
    assert model.digest == digest
    assert model.reference == "ollama:gemma3:270m"


def test_resolve_default_tag_latest(store):
    store.add_model()

    assert resolve("ollama:gemma3", store.root).tag == "latest"


def test_resolve_namespace_and_host(store):
    store.add_model(model="Qwen2.5-GGUF", tag="Q4_K_M", namespace="bartowski", host="hf.co")
    store.add_model(model="tiny", tag="v1", namespace="user")

    hub = resolve("ollama:hf.co/bartowski/Qwen2.5-GGUF:Q4_K_M", store.root)
    user = resolve("ollama:user/tiny:v1", store.root)

    assert hub.name == "hf.co/bartowski/Qwen2.5-GGUF"
    assert user.name == "user/tiny"


def test_resolve_case_insensitive(store):
    store.add_model(model="gemma3", tag="270m")

    model = resolve("ollama:Gemma3:270M", store.root)

    assert model.manifest_path.name == "270m"


def test_resolve_accepts_colon_blob_name(store):
    layer = store.layer(ollama.MEDIA_TYPE_MODEL, FAKE_GGUF, colon_name=True)
    store.add_manifest([layer])

    model = resolve("ollama:gemma3", store.root)

    assert model.gguf_path.name.startswith("sha256:")


def test_resolve_without_template_or_params(store):
    store.add_manifest([store.layer(ollama.MEDIA_TYPE_MODEL, FAKE_GGUF)])

    model = resolve("ollama:gemma3", store.root)

    assert model.template is None
    assert model.params == {}


def test_resolve_missing_template_blob_warns(store, caplog):
    template_layer = {"mediaType": ollama.MEDIA_TYPE_TEMPLATE, "digest": "sha256:" + "a" * 64, "size": 10}
    store.add_manifest([store.layer(ollama.MEDIA_TYPE_MODEL, FAKE_GGUF), template_layer])

    with caplog.at_level(logging.WARNING, logger="hnggml.ollama"):
        model = resolve("ollama:gemma3", store.root)

    assert model.template is None
    assert "is missing" in caplog.text


def test_resolve_invalid_params_json_warns(store, caplog):
    layers = [
        store.layer(ollama.MEDIA_TYPE_MODEL, FAKE_GGUF),
        store.layer(ollama.MEDIA_TYPE_PARAMS, b"{not json"),
    ]
    store.add_manifest(layers)

    with caplog.at_level(logging.WARNING, logger="hnggml.ollama"):
        model = resolve("ollama:gemma3", store.root)

    assert model.params == {}
    assert "not valid JSON" in caplog.text


def test_resolve_verify_digest(store):
    store.add_model()

    model = resolve("ollama:gemma3", store.root, verify_digest=True)

    assert model.size == len(FAKE_GGUF)


def test_resolve_verify_digest_mismatch(store):
    layer = store.layer(ollama.MEDIA_TYPE_MODEL, FAKE_GGUF)
    blob = store.root / "blobs" / f"sha256-{layer['digest'][7:]}"
    blob.write_bytes(FAKE_GGUF[:-1] + b"\xff")
    store.add_manifest([layer])

    with pytest.raises(OllamaStoreError, match="the file is corrupt"):
        resolve("ollama:gemma3", store.root, verify_digest=True)


def test_list_models_sorted(store):
    store.add_model(tag="270m")
    store.add_model(tag="1b")
    store.add_model(model="tiny", tag="v1", namespace="user")
    store.add_model(model="Qwen2.5-GGUF", tag="Q4_K_M", namespace="bartowski", host="hf.co")
    (store.root / "manifests" / "registry.ollama.ai" / "library" / "gemma3" / ".hidden").write_text("{}")

    assert list_models(store.root) == [
        "gemma3:1b",
        "gemma3:270m",
        "hf.co/bartowski/Qwen2.5-GGUF:Q4_K_M",
        "user/tiny:v1",
    ]


def test_list_models_missing_store(tmp_path):
    assert list_models(tmp_path / "absent") == []


# Errors ------------------------------------------------------------------------


def test_resolve_missing_store(tmp_path):
    with pytest.raises(
        OllamaModelNotFoundError, match=r"Ollama model store not found at .*absent.*ollama pull gemma3:latest"
    ):
        resolve("ollama:gemma3", tmp_path / "absent")


def test_resolve_model_not_found_lists_close_names(store):
    store.add_model(tag="270m")
    store.add_model(model="qwen2.5-coder", tag="0.5b")

    with pytest.raises(OllamaModelNotFoundError) as raised:
        resolve("ollama:gemma3:1b", store.root)

    message = str(raised.value)
    assert "'gemma3:1b' not found" in message
    assert str(store.root.resolve()) in message
    assert "ollama pull gemma3:1b" in message
    assert "gemma3:270m" in message
    assert "qwen2.5-coder" not in message


def test_resolve_model_not_found_is_lookup_error(store):
    with pytest.raises(LookupError, match="not found"):
        resolve("ollama:absent", store.root)


def test_resolve_missing_blob(store):
    layer = store.layer(ollama.MEDIA_TYPE_MODEL, FAKE_GGUF)
    (store.root / "blobs" / f"sha256-{layer['digest'][7:]}").unlink()
    store.add_manifest([layer])

    with pytest.raises(
        OllamaModelNotFoundError,
        match=r"blob sha256:[0-9a-f]{64} of Ollama model 'gemma3:latest' is missing.*ollama pull",
    ):
        resolve("ollama:gemma3", store.root)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "is not valid JSON"),
        ("\xff\xfe", "is not valid JSON"),
        ("[1, 2]", "is not a JSON object"),
        ('{"schemaVersion": 1, "layers": []}', "schemaVersion 1, expected 2"),
        (
            '{"schemaVersion": 2, "mediaType": "text/plain", "layers": []}',
            "unsupported mediaType 'text/plain'",
        ),
        ('{"schemaVersion": 2}', "has no 'layers' list"),
        ('{"schemaVersion": 2, "layers": ["x"]}', "layer 0 .* is not a JSON object"),
        (
            '{"schemaVersion": 2, "layers": [{"digest": "sha256:' + "0" * 64 + '", "size": 1}]}',
            "no string 'mediaType'",
        ),
    ],
)
def test_resolve_invalid_manifest(store, raw, message):
    store.add_manifest([], raw=raw)

    with pytest.raises(OllamaStoreError, match=message):
        resolve("ollama:gemma3", store.root)


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:../../../../etc/passwd",
        "sha256:" + "0" * 63,
        "sha256:" + "A" * 64,
        "sha512:" + "0" * 64,
        "/etc/passwd",
        "sha256:" + "0" * 64 + "/../x",
        None,
    ],
)
def test_resolve_rejects_invalid_digest(store, digest):
    store.add_manifest([{"mediaType": ollama.MEDIA_TYPE_MODEL, "digest": digest, "size": 4}])

    with pytest.raises(OllamaStoreError, match="invalid digest"):
        resolve("ollama:gemma3", store.root)


@pytest.mark.parametrize("size", [-1, "8", 1.5, True, None])
def test_resolve_rejects_invalid_size(store, size):
    layer = store.layer(ollama.MEDIA_TYPE_MODEL, FAKE_GGUF)
    layer["size"] = size
    store.add_manifest([layer])

    with pytest.raises(OllamaStoreError, match="invalid size"):
        resolve("ollama:gemma3", store.root)


def test_resolve_rejects_multimodal(store):
    layers = [
        store.layer(ollama.MEDIA_TYPE_MODEL, FAKE_GGUF),
        store.layer(ollama.MEDIA_TYPE_PROJECTOR, b"GGUF projector"),
    ]
    store.add_manifest(layers)

    with pytest.raises(OllamaStoreError, match="is multimodal .* projector layer"):
        resolve("ollama:gemma3", store.root)


def test_resolve_rejects_adapter(store):
    layers = [
        store.layer(ollama.MEDIA_TYPE_MODEL, FAKE_GGUF),
        store.layer(ollama.MEDIA_TYPE_ADAPTER, b"GGUF adapter"),
    ]
    store.add_manifest(layers)

    with pytest.raises(OllamaStoreError, match="LoRA adapter"):
        resolve("ollama:gemma3", store.root)


def test_resolve_rejects_no_model_layer(store):
    store.add_manifest([store.layer(ollama.MEDIA_TYPE_TEMPLATE, TEMPLATE.encode())])

    with pytest.raises(OllamaStoreError, match="has no application/vnd.ollama.image.model layer"):
        resolve("ollama:gemma3", store.root)


def test_resolve_rejects_split_model(store):
    layers = [
        store.layer(ollama.MEDIA_TYPE_MODEL, FAKE_GGUF),
        store.layer(ollama.MEDIA_TYPE_MODEL, FAKE_GGUF + b"2"),
    ]
    store.add_manifest(layers)

    with pytest.raises(OllamaStoreError, match="split into 2 model layers"):
        resolve("ollama:gemma3", store.root)


def test_resolve_rejects_non_gguf_blob(store):
    store.add_manifest([store.layer(ollama.MEDIA_TYPE_MODEL, b"PK\x03\x04 not a gguf")])

    with pytest.raises(
        OllamaStoreError, match=r"does not start with the GGUF magic bytes \(found b'PK\\x03\\x04'\)"
    ):
        resolve("ollama:gemma3", store.root)


def test_resolve_rejects_size_mismatch(store):
    layer = store.layer(ollama.MEDIA_TYPE_MODEL, FAKE_GGUF)
    layer["size"] = len(FAKE_GGUF) + 100
    store.add_manifest([layer])

    with pytest.raises(
        OllamaStoreError, match=f"has {len(FAKE_GGUF)} bytes but its manifest lists {len(FAKE_GGUF) + 100}"
    ):
        resolve("ollama:gemma3", store.root)


# Path traversal and symlinks -----------------------------------------------------


@pytest.mark.parametrize(
    "ref",
    [
        "ollama:../../etc/passwd",
        "ollama:../manifests/x",
        "ollama:gemma3:../../../../etc/passwd",
        "ollama:gemma3:a/b",
        "ollama:..:..",
    ],
)
def test_resolve_rejects_traversal_refs(store, ref):
    store.add_model()

    with pytest.raises(ValueError, match="invalid Ollama model reference"):
        resolve(ref, store.root)


def test_resolve_rejects_blob_symlink_outside(store, tmp_path):
    outside = tmp_path / "outside.gguf"
    outside.write_bytes(FAKE_GGUF)
    digest = "sha256:" + hashlib.sha256(FAKE_GGUF).hexdigest()
    (store.root / "blobs" / f"sha256-{digest[7:]}").symlink_to(outside)
    store.add_manifest([{"mediaType": ollama.MEDIA_TYPE_MODEL, "digest": digest, "size": len(FAKE_GGUF)}])

    with pytest.raises(OllamaStoreError, match="outside the Ollama store"):
        resolve("ollama:gemma3", store.root)


def test_resolve_rejects_manifest_symlink_outside(store, tmp_path):
    outside = tmp_path / "outside-manifest"
    outside.write_text(
        json.dumps({"schemaVersion": 2, "layers": [store.layer(ollama.MEDIA_TYPE_MODEL, FAKE_GGUF)]})
    )
    folder = store.root / "manifests" / "registry.ollama.ai" / "library" / "gemma3"
    folder.mkdir(parents=True)
    (folder / "latest").symlink_to(outside)

    with pytest.raises(OllamaStoreError, match="manifest path .* outside the Ollama store"):
        resolve("ollama:gemma3", store.root)


def test_resolve_rejects_manifest_folder_symlink_outside(store, tmp_path):
    outside = tmp_path / "elsewhere"
    (outside / "gemma3").mkdir(parents=True)
    (outside / "gemma3" / "latest").write_text(json.dumps({"schemaVersion": 2, "layers": []}))
    (store.root / "manifests" / "registry.ollama.ai").mkdir()
    (store.root / "manifests" / "registry.ollama.ai" / "library").symlink_to(outside)

    with pytest.raises(OllamaStoreError, match="outside the Ollama store"):
        resolve("ollama:gemma3", store.root)


def test_resolve_allows_symlink_inside_store(store):
    layer = store.layer(ollama.MEDIA_TYPE_MODEL, FAKE_GGUF)
    blob = store.root / "blobs" / f"sha256-{layer['digest'][7:]}"
    real = store.root / "blobs" / "real-file"
    blob.rename(real)
    blob.symlink_to(real)
    store.add_manifest([layer])

    model = resolve("ollama:gemma3", store.root)

    assert model.gguf_path == real.resolve()


def test_resolve_store_given_as_symlink(store, tmp_path):
    store.add_model()
    link = tmp_path / "store-link"
    link.symlink_to(store.root)

    model = resolve("ollama:gemma3", link)

    assert model.gguf_path.is_relative_to(store.root.resolve())


# Real model --------------------------------------------------------------------


@pytest.mark.skipif(
    not MODEL_PATH.is_file(), reason=f"Gemma 3 270M GGUF not found at {MODEL_PATH}; set HNGGML_TEST_MODEL"
)
def test_resolve_real_gemma_blob(store):
    # The digest is a placeholder because resolve() hashes the blob only with verify_digest=True.
    hex_digest = hashlib.sha256(MODEL_PATH.name.encode()).hexdigest()
    blob = store.root / "blobs" / f"sha256-{hex_digest}"
    try:
        os.link(MODEL_PATH, blob)
    except OSError:
        blob.write_bytes(MODEL_PATH.read_bytes())
    size = MODEL_PATH.stat().st_size
    layers = [{"mediaType": ollama.MEDIA_TYPE_MODEL, "digest": f"sha256:{hex_digest}", "size": size}]
    store.add_manifest(layers, tag="270m")

    model = resolve("ollama:gemma3:270m", store.root)

    assert model.gguf_path == blob.resolve()
    assert model.size == size
    with open(model.gguf_path, "rb") as file:
        assert file.read(4) == b"GGUF"
