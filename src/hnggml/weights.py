"""Model facts read from a GGUF file: shape, identity and ffn_down column norms.

CETT divides each neuron's contribution |z_j| * ||W_down[:, j]|| by the norm
of the FFN output, so every watched neuron needs the L2 norm of its column of
W_down. The norms of all neurons are cached on disk, keyed by the file's
path, size and modification time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from .errors import UnsupportedModelError
from .gguf_index import GGUFIndex, TensorInfo, read_gguf_index, tensor_bytes
from .paths import cache_dir

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """Shape and identity of a GGUF model."""

    path: str
    architecture: str
    n_layer: int
    n_ff: int
    n_embd: int
    name: str
    ffn_down_sha256: str
    """SHA-256 over the raw bytes of every blk.N.ffn_down.weight, in layer order."""


def _open(path: Path) -> GGUFIndex:
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        return read_gguf_index(path)
    except (ValueError, OSError) as exc:
        raise UnsupportedModelError(
            f"failed to read {path} as GGUF ({exc}); check that the file is a complete .gguf model"
        ) from exc


def _cache_key(path: Path) -> str:
    st = path.stat()
    raw = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def _ffn_down_tensors(index: GGUFIndex, n_layer: int, path: Path) -> list[TensorInfo]:
    by_name = index.tensors
    tensors = []
    for il in range(n_layer):
        tensor = by_name.get(f"blk.{il}.ffn_down.weight")
        if tensor is None:
            raise UnsupportedModelError(
                f"{path} has no tensor blk.{il}.ffn_down.weight; mixture-of-experts and "
                "other FFN layouts are not supported"
            )
        tensors.append(tensor)
    return tensors


def _check_tensor_bounds(index: GGUFIndex, path: Path) -> None:
    """Raise UnsupportedModelError unless every tensor's data lies inside the file.

    A copy or download cut short keeps a readable header, so only the sizes
    show it. Tensors of a type gguf-py does not know are not checked.
    """
    for tensor in index.tensors.values():
        try:
            block_size, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(tensor.type_id)]
        except (ValueError, KeyError):
            continue
        if not tensor.shape:
            continue
        rows = math.prod(tensor.shape[1:])
        end = tensor.data_offset + rows * (tensor.shape[0] // block_size) * type_size
        if end > index.file_size:
            raise UnsupportedModelError(
                f"{path} is truncated or damaged: tensor {tensor.name} ends at byte {end} but the "
                f"file has {index.file_size} bytes; copy or download the model again"
            )


def _read_info(path: Path) -> tuple[ModelInfo, GGUFIndex]:
    reader = _open(path)
    _check_tensor_bounds(reader, path)
    arch = reader.metadata.get("general.architecture")
    if not isinstance(arch, str):
        raise UnsupportedModelError(
            f"{path} has no general.architecture key; it is not a llama.cpp model or its header is damaged"
        )
    n_layer = reader.metadata.get(f"{arch}.block_count")
    n_ff = reader.metadata.get(f"{arch}.feed_forward_length")
    n_embd = reader.metadata.get(f"{arch}.embedding_length")
    if n_ff is None and f"{arch}.feed_forward_length" in reader.metadata:
        raise UnsupportedModelError(
            f"{path} ({arch}) has FFN widths that vary by layer; hnggml supports one width for all layers"
        )
    if not all(isinstance(v, int) and v > 0 for v in (n_layer, n_ff, n_embd)):
        raise UnsupportedModelError(
            f"{path} ({arch}) lacks block_count, feed_forward_length or embedding_length"
        )
    digest = hashlib.sha256()
    for tensor in _ffn_down_tensors(reader, n_layer, path):
        digest.update(tensor_bytes(path, tensor).tobytes())
    name = reader.metadata.get("general.name")
    info = ModelInfo(
        path=str(path),
        architecture=arch,
        n_layer=int(n_layer),
        n_ff=int(n_ff),
        n_embd=int(n_embd),
        name=name if isinstance(name, str) else path.stem,
        ffn_down_sha256=digest.hexdigest(),
    )
    return info, reader


def _dequantized_columns(path: Path, tensor: TensorInfo, columns: np.ndarray) -> np.ndarray:
    """Dequantise only the quant blocks that hold the given columns.

    Returns an (n_embd, len(columns)) float32 array. Quant blocks run along
    the neuron axis, so column j lives in block j // block_size of every row.
    """
    from gguf.quants import dequantize

    qtype = GGMLQuantizationType(tensor.type_id)
    raw = tensor_bytes(path, tensor)
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    if block_size == 1:  # F32, F16, BF16: one element per block
        return np.asarray(dequantize(np.asarray(raw), qtype), dtype=np.float32)[:, columns]
    out = np.empty((raw.shape[0], len(columns)), dtype=np.float32)
    for block in np.unique(columns // block_size):
        chunk = raw[:, block * type_size : (block + 1) * type_size]
        values = dequantize(np.ascontiguousarray(chunk), qtype)
        hit = np.flatnonzero(columns // block_size == block)
        out[:, hit] = values[:, columns[hit] - block * block_size]
    return out


def model_info(path: str | os.PathLike) -> ModelInfo:
    """Return the model's shape and identity, cached by path, size and mtime."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    meta_file = cache_dir() / "weights" / f"{_cache_key(path)}.json"
    if meta_file.exists():
        try:
            meta = json.loads(meta_file.read_text())
            meta["path"] = str(path)
            return ModelInfo(**meta)
        except (ValueError, TypeError, OSError):
            logger.warning("ignoring a damaged weight cache entry %s", meta_file)
    info, _ = _read_info(path)
    meta_file.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(meta_file, json.dumps(asdict(info)))
    return info


def column_norms(path: str | os.PathLike, neurons: np.ndarray) -> np.ndarray:
    """Return ||W_down[:, j]|| for each (layer, j) row of neurons, reading only their blocks."""
    path = Path(path)
    info, reader = _read_info(path)
    neurons = np.asarray(neurons, dtype=np.int64).reshape(-1, 2)
    tensors = _ffn_down_tensors(reader, info.n_layer, path)
    out = np.zeros(len(neurons), dtype=np.float32)
    for layer in np.unique(neurons[:, 0]):
        pos = np.flatnonzero(neurons[:, 0] == layer)
        columns = _dequantized_columns(path, tensors[int(layer)], neurons[pos, 1])
        out[pos] = np.linalg.norm(columns, axis=0)
    return out


def all_column_norms(path: str | os.PathLike) -> np.ndarray:
    """Return the (n_layer, n_ff) ffn_down column norms of every neuron, cached on disk."""
    from gguf.quants import dequantize

    path = Path(path)
    norms_file = cache_dir() / "weights" / f"{_cache_key(path)}.npy"
    if norms_file.exists():
        try:
            return np.load(norms_file)
        except (ValueError, OSError):
            logger.warning("ignoring a damaged weight cache entry %s", norms_file)
    info, reader = _read_info(path)
    norms = np.zeros((info.n_layer, info.n_ff), dtype=np.float32)
    for il, tensor in enumerate(_ffn_down_tensors(reader, info.n_layer, path)):
        qtype = GGMLQuantizationType(tensor.type_id)
        weights = dequantize(np.asarray(tensor_bytes(path, tensor)), qtype)  # (n_embd, n_ff)
        if weights.shape != (info.n_embd, info.n_ff):
            raise UnsupportedModelError(
                f"{tensor.name} in {path} has shape {weights.shape}, expected "
                f"{(info.n_embd, info.n_ff)}"
            )
        norms[il] = np.linalg.norm(weights.astype(np.float32), axis=0)
    norms_file.parent.mkdir(parents=True, exist_ok=True)
    _atomic_save_npy(norms_file, norms)
    return norms


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_save_npy(path: Path, array: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
