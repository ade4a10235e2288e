"""Resolve ``ollama:NAME[:TAG]`` to the GGUF file inside a local Ollama model store.

Ollama keeps one JSON manifest per pulled model at
``<store>/manifests/<registry host>/<namespace>/<model>/<tag>``, with the
defaults ``registry.ollama.ai``, ``library`` and ``latest``.  The manifest is a
Docker v2 image manifest whose layers point to content-addressed files in
``<store>/blobs/sha256-<hex>`` (older stores name them ``sha256:<hex>``).  The
layer with media type ``application/vnd.ollama.image.model`` is the GGUF file,
which llama.cpp loads directly, so hnggml reuses models the user already pulled.

Names are validated against a strict character set before they touch the file
system.  The manifest and blob paths must resolve (after following symlinks) to
paths inside the resolved store folder.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import HnggmlError

logger = logging.getLogger(__name__)

__all__ = [
    "OllamaModel",
    "OllamaModelNotFoundError",
    "OllamaStoreError",
    "default_store",
    "is_ollama_ref",
    "list_models",
    "parse_name",
    "resolve",
]

OLLAMA_PREFIX = "ollama:"
DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"

MEDIA_TYPE_MODEL = "application/vnd.ollama.image.model"
MEDIA_TYPE_PROJECTOR = "application/vnd.ollama.image.projector"
MEDIA_TYPE_ADAPTER = "application/vnd.ollama.image.adapter"
MEDIA_TYPE_TEMPLATE = "application/vnd.ollama.image.template"
MEDIA_TYPE_PARAMS = "application/vnd.ollama.image.params"
MANIFEST_MEDIA_TYPES = frozenset(
    {
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
    }
)

GGUF_MAGIC = b"GGUF"

# Character sets follow Ollama's model-name parser (types/model/name.go):
# letters, digits, "_", "-" and "." (no "." in a namespace).  The length limits
# (host 350, other parts 80 characters) follow an earlier version of that file.
# A part must also start with a letter, digit or "_", so "." and ".." can never
# be a part, and ".." inside a part is rejected separately.
_HOST_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,349}")
_NAMESPACE_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,79}")
_MODEL_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}")
_TAG_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}")
_DIGEST_PATTERN = re.compile(r"sha256:([0-9a-f]{64})")

# Manifests, templates and params blobs are a few KiB, so larger files are rejected.
_MAX_TEXT_BYTES = 4 * 1024 * 1024
_HASH_CHUNK_BYTES = 8 * 1024 * 1024


class OllamaModelNotFoundError(HnggmlError, LookupError):
    """An Ollama model, its store or one of its blobs is not on disk."""


class OllamaStoreError(HnggmlError, ValueError):
    """An Ollama manifest or blob is invalid, unsupported or outside the store."""


@dataclass(frozen=True)
class _ModelName:
    """Fully qualified Ollama model name."""

    host: str
    namespace: str
    model: str
    tag: str

    @property
    def display(self) -> str:
        """Shortest form that Ollama accepts for this name, without the tag."""
        if self.host == DEFAULT_HOST and self.namespace == DEFAULT_NAMESPACE:
            return self.model
        if self.host == DEFAULT_HOST:
            return f"{self.namespace}/{self.model}"
        return f"{self.host}/{self.namespace}/{self.model}"

    @property
    def reference(self) -> str:
        return f"{self.display}:{self.tag}"


@dataclass(frozen=True)
class OllamaModel:
    """GGUF model resolved from a local Ollama store."""

    name: str
    """Model name in its shortest form, for example ``gemma3`` or ``hf.co/user/repo``."""
    tag: str
    gguf_path: Path
    manifest_path: Path
    size: int
    """Size of the GGUF file in bytes, as listed in the manifest and checked on disk."""
    template: str | None = None
    """Ollama's Go chat template, or None when the model has none."""
    params: dict[str, Any] = field(default_factory=dict)
    """Default generation parameters from the params layer (for example ``stop``)."""
    digest: str = ""
    """Content digest of the GGUF blob, ``sha256:<hex>``."""

    @property
    def reference(self) -> str:
        """Return the ``ollama:NAME:TAG`` reference of this model."""
        return f"{OLLAMA_PREFIX}{self.name}:{self.tag}"


def is_ollama_ref(value: object) -> bool:
    """Return True if ``value`` is a string with the ``ollama:`` prefix.

    This checks the prefix only, and resolve() validates the name itself.
    """
    return isinstance(value, str) and value.startswith(OLLAMA_PREFIX)


def default_store() -> Path:
    """Return the Ollama model store folder that Ollama itself would use.

    ``$OLLAMA_MODELS`` wins when set.  Otherwise the store is
    ``~/.ollama/models``, and on Linux, when that folder does not exist, the
    system service's ``/usr/share/ollama/.ollama/models`` if it exists.
    """
    configured = os.environ.get("OLLAMA_MODELS")
    if configured:
        return Path(configured).expanduser()
    user_store = Path.home() / ".ollama" / "models"
    if sys.platform.startswith("linux") and not user_store.exists():
        service_store = Path("/usr/share/ollama/.ollama/models")
        if service_store.exists():
            return service_store
    return user_store


def parse_name(ref: str) -> _ModelName:
    """Split ``[ollama:][host/][namespace/]model[:tag]`` into validated parts.

    Raises ValueError naming the invalid part.
    """
    if not isinstance(ref, str):
        raise TypeError(f"Ollama model reference must be a string, got {type(ref).__name__}")
    text = ref[len(OLLAMA_PREFIX) :] if ref.startswith(OLLAMA_PREFIX) else ref
    if not text:
        raise ValueError(
            f"invalid Ollama model reference {ref!r}: the model name is empty; use ollama:NAME[:TAG]"
        )

    tag = DEFAULT_TAG
    colon = text.rfind(":")
    if colon > text.rfind("/"):
        text, tag = text[:colon], text[colon + 1 :]

    parts = text.split("/")
    if len(parts) > 3:
        raise ValueError(
            f"invalid Ollama model reference {ref!r}: expected [host/][namespace/]model[:tag], "
            f"got {len(parts)} parts separated by '/'"
        )
    defaults = [DEFAULT_HOST, DEFAULT_NAMESPACE][: 3 - len(parts)]
    host, namespace, model = [*defaults, *parts]
    name = _ModelName(host, namespace, model, tag)

    checks = [
        ("host", host, _HOST_PATTERN),
        ("namespace", namespace, _NAMESPACE_PATTERN),
        ("model name", model, _MODEL_PATTERN),
        ("tag", tag, _TAG_PATTERN),
    ]
    for label, value, pattern in checks:
        if not pattern.fullmatch(value) or ".." in value:
            raise ValueError(
                f"invalid Ollama model reference {ref!r}: the {label} {value!r} must start with a letter, "
                "digit or '_' and contain only letters, digits, '_', '-' and single '.' characters"
            )
    return name


def resolve(
    ref: str, store: str | os.PathLike[str] | None = None, *, verify_digest: bool = False
) -> OllamaModel:
    """Find the GGUF file of an Ollama model and check it against its manifest.

    ``ref`` is ``[ollama:][host/][namespace/]model[:tag]``.  ``store`` defaults
    to :func:`default_store`.  With ``verify_digest`` the GGUF file is hashed
    and compared with its sha256 digest, which reads the whole file.

    Raises ValueError for an invalid reference, OllamaModelNotFoundError (a
    LookupError) when the store, the model or its GGUF blob is missing, and
    OllamaStoreError (a ValueError) when the manifest or blob is invalid or
    unsupported.
    """
    name = parse_name(ref)
    store_path = Path(store).expanduser() if store is not None else default_store()
    if not store_path.is_dir():
        raise OllamaModelNotFoundError(
            f"Ollama model store not found at {store_path}; install Ollama and run `ollama pull {name.reference}`, "
            "or set OLLAMA_MODELS to the folder that contains 'manifests' and 'blobs'"
        )
    store_root = store_path.resolve()

    manifest_path = _find_manifest(store_root, name)
    layers = _read_manifest_layers(manifest_path, name)
    model_layer = _select_model_layer(layers, manifest_path, name)

    digest = model_layer["digest"]
    gguf_path = _find_blob(store_root, digest)
    if gguf_path is None:
        raise OllamaModelNotFoundError(
            f"blob {digest} of Ollama model {name.reference!r} is missing from {store_root / 'blobs'}; "
            f"run `ollama pull {name.reference}` to download it again"
        )
    _check_gguf_blob(gguf_path, model_layer["size"], name)
    if verify_digest:
        _verify_digest(gguf_path, digest, name)

    template = _read_text_layer(store_root, layers, MEDIA_TYPE_TEMPLATE, name)
    params = _read_params_layer(store_root, layers, name)
    logger.info("resolved ollama:%s to %s", name.reference, gguf_path)
    return OllamaModel(
        name=name.display,
        tag=name.tag,
        gguf_path=gguf_path,
        manifest_path=manifest_path,
        size=model_layer["size"],
        template=template,
        params=params,
        digest=digest,
    )


def list_models(store: str | os.PathLike[str] | None = None) -> list[str]:
    """Return the sorted ``NAME:TAG`` references of every manifest in the store.

    Entries whose path parts are not valid Ollama names are skipped.  A missing
    store gives an empty list.
    """
    store_path = Path(store).expanduser() if store is not None else default_store()
    manifests = store_path / "manifests"
    if not manifests.is_dir():
        return []

    found: list[str] = []
    for host in _valid_children(manifests, _HOST_PATTERN):
        for namespace in _valid_children(host, _NAMESPACE_PATTERN):
            for model in _valid_children(namespace, _MODEL_PATTERN):
                for tag in _valid_children(model, _TAG_PATTERN, files=True):
                    found.append(_ModelName(host.name, namespace.name, model.name, tag.name).reference)
    return sorted(found)


def _valid_children(folder: Path, pattern: re.Pattern[str], *, files: bool = False) -> list[Path]:
    try:
        entries = list(folder.iterdir())
    except OSError as error:
        logger.warning("failed to list %s: %s", folder, error)
        return []
    return [
        entry
        for entry in entries
        if pattern.fullmatch(entry.name)
        and ".." not in entry.name
        and (entry.is_file() if files else entry.is_dir())
    ]


def _find_manifest(store_root: Path, name: _ModelName) -> Path:
    """Return the manifest path, matching each part case-insensitively if the exact path is missing.

    Ollama compares model names case-insensitively (Name.EqualFold in
    types/model/name.go), so the stored path may differ in case from the request.
    """
    parts = [name.host, name.namespace, name.model, name.tag]
    candidate = store_root.joinpath("manifests", *parts)
    if not candidate.is_file():
        candidate = _match_case_insensitive(store_root / "manifests", parts)
    if candidate is None or not candidate.is_file():
        raise OllamaModelNotFoundError(_not_found_message(store_root, name))
    return _inside_store(candidate, store_root, "manifest")


def _match_case_insensitive(base: Path, parts: list[str]) -> Path | None:
    current = base
    for part in parts:
        exact = current / part
        if exact.exists():
            current = exact
            continue
        try:
            matches = [entry for entry in current.iterdir() if entry.name.lower() == part.lower()]
        except OSError:
            return None
        if len(matches) != 1:
            return None
        current = matches[0]
    return current


def _not_found_message(store_root: Path, name: _ModelName) -> str:
    available = list_models(store_root)
    close = difflib.get_close_matches(name.reference, available, n=5, cutoff=0.6)
    same_model = [ref for ref in available if ref.rsplit(":", 1)[0].lower() == name.display.lower()]
    suggestions = list(dict.fromkeys(same_model + close))
    searched = store_root.joinpath("manifests", name.host, name.namespace, name.model, name.tag)
    message = (
        f"Ollama model {name.reference!r} not found in the store {store_root} (looked for {searched}); "
        f"run `ollama pull {name.reference}` first"
    )
    if suggestions:
        message += f", or use one of the models already pulled: {', '.join(suggestions)}"
    elif available:
        message += f"; `ollama list` shows the {len(available)} models in this store"
    return message


def _inside_store(path: Path, store_root: Path, kind: str) -> Path:
    """Return ``path`` with symlinks resolved, or raise if it leaves the store."""
    resolved = path.resolve()
    if not resolved.is_relative_to(store_root):
        raise OllamaStoreError(
            f"the {kind} path {path} resolves to {resolved}, outside the Ollama store {store_root}; "
            "remove the symlink or set OLLAMA_MODELS to the real store folder"
        )
    return resolved


def _read_manifest_layers(manifest_path: Path, name: _ModelName) -> list[dict[str, Any]]:
    """Parse and validate a manifest and return its layers."""
    repair = f"run `ollama pull {name.reference}` to download it again"
    if manifest_path.stat().st_size > _MAX_TEXT_BYTES:
        raise OllamaStoreError(
            f"manifest {manifest_path} of {name.reference!r} is larger than {_MAX_TEXT_BYTES} bytes; {repair}"
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise OllamaStoreError(
            f"manifest {manifest_path} of {name.reference!r} is not valid JSON ({error}); {repair}"
        ) from error

    if not isinstance(manifest, dict):
        raise OllamaStoreError(
            f"manifest {manifest_path} of {name.reference!r} is not a JSON object; {repair}"
        )
    if manifest.get("schemaVersion") != 2:
        raise OllamaStoreError(
            f"manifest {manifest_path} of {name.reference!r} has schemaVersion {manifest.get('schemaVersion')!r}, "
            f"expected 2; {repair}"
        )
    media_type = manifest.get("mediaType")
    if media_type is not None and media_type not in MANIFEST_MEDIA_TYPES:
        raise OllamaStoreError(
            f"manifest {manifest_path} of {name.reference!r} has unsupported mediaType {media_type!r}; "
            f"expected one of {', '.join(sorted(MANIFEST_MEDIA_TYPES))}"
        )
    layers = manifest.get("layers")
    if not isinstance(layers, list):
        raise OllamaStoreError(
            f"manifest {manifest_path} of {name.reference!r} has no 'layers' list; {repair}"
        )

    for position, layer in enumerate(layers):
        _check_layer(layer, position, manifest_path, name)
    return layers


def _check_layer(layer: object, position: int, manifest_path: Path, name: _ModelName) -> None:
    where = f"layer {position} of manifest {manifest_path} ({name.reference!r})"
    if not isinstance(layer, dict):
        raise OllamaStoreError(f"{where} is not a JSON object")
    if not isinstance(layer.get("mediaType"), str):
        raise OllamaStoreError(f"{where} has no string 'mediaType'")
    digest = layer.get("digest")
    if not isinstance(digest, str) or not _DIGEST_PATTERN.fullmatch(digest):
        raise OllamaStoreError(
            f"{where} has invalid digest {digest!r}; expected 'sha256:' followed by 64 lowercase hex digits"
        )
    size = layer.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise OllamaStoreError(f"{where} has invalid size {size!r}; expected a non-negative integer")


def _select_model_layer(
    layers: list[dict[str, Any]], manifest_path: Path, name: _ModelName
) -> dict[str, Any]:
    """Return the single GGUF layer, or raise for multimodal, adapter and split models."""
    media_types = [layer["mediaType"] for layer in layers]
    if MEDIA_TYPE_PROJECTOR in media_types:
        raise OllamaStoreError(
            f"Ollama model {name.reference!r} is multimodal (its manifest {manifest_path} has a projector layer); "
            "hnggml supports single-file text models only, so pick a text-only model"
        )
    if MEDIA_TYPE_ADAPTER in media_types:
        raise OllamaStoreError(
            f"Ollama model {name.reference!r} applies a LoRA adapter layer on top of its base model; "
            "hnggml loads a single GGUF file, so merge the adapter or use the base model"
        )

    model_layers = [layer for layer in layers if layer["mediaType"] == MEDIA_TYPE_MODEL]
    if not model_layers:
        raise OllamaStoreError(
            f"manifest {manifest_path} of {name.reference!r} has no {MEDIA_TYPE_MODEL} layer, so there is no GGUF "
            f"file to load; run `ollama pull {name.reference}` to download it again"
        )
    if len(model_layers) > 1:
        raise OllamaStoreError(
            f"Ollama model {name.reference!r} is split into {len(model_layers)} model layers in {manifest_path}; "
            "split models are unsupported, so use a model stored as one GGUF file"
        )
    return model_layers[0]


def _find_blob(store_root: Path, digest: str) -> Path | None:
    """Return the blob file of a validated digest, named ``sha256-<hex>`` or ``sha256:<hex>``, or None."""
    hex_digest = digest.removeprefix("sha256:")
    for file_name in (f"sha256-{hex_digest}", f"sha256:{hex_digest}"):
        candidate = store_root / "blobs" / file_name
        if candidate.is_file():
            return _inside_store(candidate, store_root, "blob")
    return None


def _check_gguf_blob(path: Path, expected_size: int, name: _ModelName) -> None:
    actual_size = path.stat().st_size
    if actual_size != expected_size:
        raise OllamaStoreError(
            f"blob {path} of Ollama model {name.reference!r} has {actual_size} bytes but its manifest lists "
            f"{expected_size}; the download may be incomplete, so run `ollama pull {name.reference}` again"
        )
    with open(path, "rb") as file:
        magic = file.read(len(GGUF_MAGIC))
    if magic != GGUF_MAGIC:
        raise OllamaStoreError(
            f"blob {path} of Ollama model {name.reference!r} does not start with the GGUF magic bytes "
            f"(found {magic!r}); it is not a GGUF file that llama.cpp can load"
        )


def _verify_digest(path: Path, digest: str, name: _ModelName) -> None:
    hasher = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_HASH_CHUNK_BYTES):
            hasher.update(chunk)
    actual = f"sha256:{hasher.hexdigest()}"
    if actual != digest:
        raise OllamaStoreError(
            f"blob {path} of Ollama model {name.reference!r} has digest {actual}, expected {digest}; "
            f"the file is corrupt, so run `ollama pull {name.reference}` again"
        )


def _read_text_layer(
    store_root: Path, layers: list[dict[str, Any]], media_type: str, name: _ModelName
) -> str | None:
    """Return the text of the first layer with ``media_type``, or None if there is none or it is unreadable."""
    layer = next((layer for layer in layers if layer["mediaType"] == media_type), None)
    if layer is None:
        return None
    path = _find_blob(store_root, layer["digest"])
    if path is None:
        logger.warning(
            "blob %s (%s) of ollama:%s is missing; continuing without it",
            layer["digest"],
            media_type,
            name.reference,
        )
        return None
    if path.stat().st_size > _MAX_TEXT_BYTES:
        logger.warning(
            "blob %s (%s) is larger than %d bytes; continuing without it", path, media_type, _MAX_TEXT_BYTES
        )
        return None
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        logger.warning("blob %s (%s) is not UTF-8 text (%s); continuing without it", path, media_type, error)
        return None


def _read_params_layer(store_root: Path, layers: list[dict[str, Any]], name: _ModelName) -> dict[str, Any]:
    text = _read_text_layer(store_root, layers, MEDIA_TYPE_PARAMS, name)
    if text is None:
        return {}
    try:
        params = json.loads(text)
    except json.JSONDecodeError as error:
        logger.warning(
            "params layer of ollama:%s is not valid JSON (%s); continuing without it", name.reference, error
        )
        return {}
    if not isinstance(params, Mapping):
        logger.warning(
            "params layer of ollama:%s is not a JSON object; continuing without it", name.reference
        )
        return {}
    return dict(params)
