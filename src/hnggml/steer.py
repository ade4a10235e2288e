"""Export a GGUF model with chosen FFN neurons scaled in the weights.

In a gated FFN (Gemma 3 with a GELU gate, Llama and Qwen2 with a SiLU gate) the
activation of intermediate neuron j is ``z_j = act(gate_j · x) * (up_j · x)``.
Multiplying row j of ``blk.L.ffn_up.weight`` by ``alpha`` multiplies ``z_j`` by
``alpha`` for every input, so any llama.cpp runtime runs the steered copy at no
extra cost.  In ggml order ``ffn_up`` has shape ``[n_embd, n_ff]`` and row j is
contiguous, so it is a whole number of quantisation blocks.  A quantised row is
scaled by multiplying the f16 scale fields of its blocks (``d`` and, for types
with an offset term, ``dmin`` or ``m``), and no quantised value changes.  If the layer has a
``blk.L.ffn_up.bias``, element j of the bias is scaled too.

The export copies the source file byte for byte and then patches the scale
bytes in place, so the metadata is unchanged.  The output records neither
``alpha`` nor the neuron list, and callers who need that record must store it
themselves.

Rounding: each scaled f16 field is ``fl16(alpha * d)``, computed in float64
and rounded to nearest f16.  While the result is a normal f16 (magnitude at
least 2**-14) its relative error is at most 2**-11.  In the subnormal range the
absolute error is at most 2**-25, a relative error of up to
``2**-25 / (alpha * |d|)``.  Multiplying by a power of two is exact while the
results stay in the normal f16 range.  For types with an offset field (Q4_1,
Q5_1, Q2_K, Q4_K, Q5_K) an element is ``d * sc * q - dmin * m``, and its error
is bounded by the rounding errors of both terms, not by its own magnitude.

NOTE: in Gemma 3 270M Q4_K_M 99.9 % of the Q6_K ``d`` values are f16
subnormals, so a Q6_K row scaled by 0.1 can deviate from 0.1 times the
original by about 2 % of the row's maximum.  Re-choosing the int8 sub-block
scales together with ``d`` would reduce this but is not implemented.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import shutil
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from .gguf_index import GGUFIndex as _GGUFIndex
from .gguf_index import TensorInfo as _TensorInfo
from .gguf_index import read_gguf_index as _read_gguf_index

logger = logging.getLogger(__name__)

__all__ = ["SCALABLE_TYPES", "export_scaled_gguf", "scale_row_bytes"]

_Q = GGMLQuantizationType

# Byte offsets of the f16 scale fields inside one block, read from the
# dequantize_blocks() layouts in gguf-py 0.19.0 (gguf/quants.py), which match
# the block structs in ggml-common.h.  Every dequantised value of these types is
# linear in these fields and in nothing else stored as a float.
_BLOCK_SCALE_OFFSETS: dict[GGMLQuantizationType, tuple[int, ...]] = {
    _Q.Q4_0: (0,),  # d, qs[16]
    _Q.Q4_1: (0, 2),  # d, m, qs[16]
    _Q.Q5_0: (0,),  # d, qh[4], qs[16]
    _Q.Q5_1: (0, 2),  # d, m, qh[4], qs[16]
    _Q.Q8_0: (0,),  # d, qs[32]
    _Q.Q2_K: (80, 82),  # scales[16], qs[64], d, dmin
    _Q.Q3_K: (108,),  # hmask[32], qs[64], scales[12], d
    _Q.Q4_K: (0, 2),  # d, dmin, scales[12], qs[128]
    _Q.Q5_K: (0, 2),  # d, dmin, scales[12], qh[32], qs[128]
    _Q.Q6_K: (208,),  # ql[128], qh[64], scales[16], d
    _Q.TQ1_0: (52,),  # qs[48], qh[4], d
    _Q.TQ2_0: (64,),  # qs[64], d
    _Q.IQ1_S: (0,),  # d, qs[32], qh[16]
    _Q.IQ2_XXS: (0,),  # d, qs[64]
    _Q.IQ2_XS: (0,),  # d, qs[64], scales[8]
    _Q.IQ2_S: (0,),  # d, qs[64], qh[8], scales[8]
    _Q.IQ3_XXS: (0,),  # d, qs[96]
    _Q.IQ3_S: (0,),  # d, qs[64], qh[8], signs[32], scales[4]
    _Q.IQ4_NL: (0,),  # d, qs[16]
    _Q.IQ4_XS: (0,),  # d, scales_h, scales_l[4], qs[128]
}

# Element types that are scaled value by value, with their little-endian dtype.
_FLOAT_DTYPES: dict[GGMLQuantizationType, np.dtype] = {
    _Q.F16: np.dtype("<f2"),
    _Q.F32: np.dtype("<f4"),
    _Q.F64: np.dtype("<f8"),
    _Q.BF16: np.dtype("<u2"),
}

SCALABLE_TYPES: frozenset[GGMLQuantizationType] = frozenset(_BLOCK_SCALE_OFFSETS) | frozenset(_FLOAT_DTYPES)
"""Tensor types whose rows :func:`export_scaled_gguf` can scale."""

_F16_MAX = float(np.finfo(np.float16).max)
_BF16_MAX_BITS = 0x7F7F  # largest finite bfloat16, about 3.39e38
_BF16_INF_BITS = 0x7F80


@dataclass(frozen=True)
class _RowPatch:
    """Neuron rows of one tensor to scale, with the tensor's byte layout."""

    tensor_name: str
    qtype: GGMLQuantizationType
    data_offset: int
    row_bytes: int
    rows: tuple[int, ...]


def scale_row_bytes(row: np.ndarray, qtype: GGMLQuantizationType, alpha: float) -> tuple[np.ndarray, int]:
    """Return a scaled copy of one row of raw tensor bytes and the count of saturated values.

    ``row`` is a uint8 array holding whole blocks (or whole elements for float
    types).  A value whose scaled magnitude does not fit the storage type is
    saturated to the largest finite value and counted.
    """
    if qtype in _BLOCK_SCALE_OFFSETS:
        return _scale_block_fields(row, qtype, alpha)
    if qtype in _FLOAT_DTYPES:
        return _scale_float_elements(row, qtype, alpha)
    supported = ", ".join(sorted(t.name for t in SCALABLE_TYPES))
    raise ValueError(f"tensor type {qtype.name} cannot be scaled; supported types: {supported}")


def _scale_block_fields(row: np.ndarray, qtype: GGMLQuantizationType, alpha: float) -> tuple[np.ndarray, int]:
    type_size = GGML_QUANT_SIZES[qtype][1]
    if row.size % type_size != 0:
        raise ValueError(
            f"row of {row.size} bytes is not a whole number of {qtype.name} blocks of {type_size} bytes"
        )

    blocks = np.array(row, dtype=np.uint8, copy=True).reshape(-1, type_size)
    n_saturated = 0
    for offset in _BLOCK_SCALE_OFFSETS[qtype]:
        field = np.ascontiguousarray(blocks[:, offset : offset + 2]).view("<f2").reshape(-1)
        scaled = field.astype(np.float64) * alpha
        # Values from 65520 upwards round to inf in f16.
        overflow = np.abs(scaled) >= 65520.0
        n_saturated += int(np.count_nonzero(overflow))
        scaled = np.where(overflow, np.copysign(_F16_MAX, scaled), scaled)
        blocks[:, offset : offset + 2] = scaled.astype("<f2").view(np.uint8).reshape(-1, 2)
    return blocks.reshape(-1), n_saturated


def _scale_float_elements(
    row: np.ndarray, qtype: GGMLQuantizationType, alpha: float
) -> tuple[np.ndarray, int]:
    raw = np.array(row, dtype=np.uint8, copy=True)
    if qtype == _Q.BF16:
        return _scale_bf16_elements(raw, alpha)

    dtype = _FLOAT_DTYPES[qtype]
    values = raw.view(dtype).astype(np.float64) * alpha
    with np.errstate(over="ignore"):
        overflow = np.isfinite(values) & ~np.isfinite(values.astype(dtype))
    limit = float(np.finfo(dtype).max)
    scaled = np.where(overflow, np.copysign(limit, values), values).astype(dtype)
    return scaled.view(np.uint8), int(np.count_nonzero(overflow))


def _scale_bf16_elements(raw: np.ndarray, alpha: float) -> tuple[np.ndarray, int]:
    """Scale bfloat16 values, rounding the float32 product to nearest even."""
    values = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32).astype(np.float64) * alpha
    with np.errstate(over="ignore"):
        as_f32 = values.astype(np.float32)
    bits = as_f32.view(np.uint32).astype(np.uint64)
    is_nan = np.isnan(as_f32)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    result = np.where(is_nan, (bits >> 16) | 0x40, rounded)

    # Finite products that round past the largest bfloat16 saturate instead of becoming inf.
    overflow = np.isfinite(values) & ((result & 0x7FFF) >= _BF16_INF_BITS) & ~is_nan
    result = np.where(overflow, (result & 0x8000) | _BF16_MAX_BITS, result)
    return result.astype("<u2").view(np.uint8), int(np.count_nonzero(overflow))


def export_scaled_gguf(
    src: str | Path,
    dst: str | Path,
    neurons: Mapping[int, Iterable[int]],
    alpha: float,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a copy of the GGUF file ``src`` to ``dst`` with FFN neurons scaled by ``alpha``.

    ``neurons`` maps a layer index to FFN intermediate indices (0 .. n_ff-1),
    and repeated indices are scaled once.  ``progress``, if given, is called as
    ``progress(done, total)`` after each patched tensor.  The file is written
    to ``dst + ".tmp"`` in the same folder and renamed to ``dst`` when
    complete.  Returns ``dst`` as a Path.

    Raises FileNotFoundError if ``src`` or the folder of ``dst`` is missing.
    Raises ValueError for an invalid ``alpha``, layer or neuron index, an FFN
    that is not gated, or a tensor type that cannot be scaled.  Raises
    TypeError for arguments of the wrong type.  Emits a RuntimeWarning when a
    scaled value saturates at the largest finite value of its type.
    """
    src_path = Path(src)
    dst_path = Path(dst)
    alpha = _check_alpha(alpha)
    _check_paths(src_path, dst_path)

    patches = _plan_patches(src_path, _normalise_neurons(neurons))
    tmp_path = dst_path.with_name(dst_path.name + ".tmp")
    logger.info(
        "exporting %s to %s: %d tensors, alpha=%g",
        src_path,
        dst_path,
        len(patches),
        alpha,
    )
    try:
        shutil.copyfile(src_path, tmp_path)
        n_saturated = _apply_patches(src_path, tmp_path, patches, alpha, progress)
        os.replace(tmp_path, dst_path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise

    if n_saturated:
        message = (
            f"{n_saturated} scaled values overflowed their storage type and were saturated "
            f"to its largest finite value (alpha={alpha:g}); use a smaller alpha"
        )
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    return dst_path


def _check_alpha(alpha: float) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"alpha must be a real number, got {alpha!r} of type {type(alpha).__name__}")
    value = float(alpha)
    if not math.isfinite(value) or value < 0.0:
        raise ValueError(f"alpha must be finite and >= 0, got {alpha!r}")
    return value


def _check_paths(src: Path, dst: Path) -> None:
    if not src.is_file():
        raise FileNotFoundError(f"source GGUF file not found: {src}")
    if not dst.parent.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {dst.parent}; create it first")
    same_file = dst.resolve() == src.resolve() or (dst.exists() and os.path.samefile(src, dst))
    if same_file:
        raise ValueError(f"output path {dst} is the source file; choose a different output path")


def _normalise_neurons(neurons: Mapping[int, Iterable[int]]) -> dict[int, tuple[int, ...]]:
    if not isinstance(neurons, Mapping):
        raise TypeError(
            f"neurons must be a mapping of layer index to neuron indices, got {type(neurons).__name__}"
        )

    result: dict[int, tuple[int, ...]] = {}
    for layer, indices in neurons.items():
        if isinstance(layer, bool) or not isinstance(layer, numbers.Integral):
            raise TypeError(f"layer index must be an integer, got {layer!r}")
        if isinstance(indices, (str, bytes)) or not isinstance(indices, Iterable):
            raise TypeError(
                f"neuron indices of layer {layer} must be a sequence of integers, got {indices!r}"
            )
        rows: set[int] = set()
        for index in indices:
            if isinstance(index, bool) or not isinstance(index, numbers.Integral):
                raise TypeError(f"neuron index in layer {layer} must be an integer, got {index!r}")
            rows.add(int(index))
        if rows:
            result[int(layer)] = tuple(sorted(rows))
    return result


def _plan_patches(src: Path, neurons: dict[int, tuple[int, ...]]) -> list[_RowPatch]:
    """Validate the request against the source file and list the rows to patch."""
    index = _read_gguf_index(src)
    tensors = index.tensors
    n_layers = index.block_count()
    patches: list[_RowPatch] = []
    for layer, rows in sorted(neurons.items()):
        if not 0 <= layer < n_layers:
            raise ValueError(f"layer index {layer} is out of range; valid layers are 0..{n_layers - 1}")

        up_name = f"blk.{layer}.ffn_up.weight"
        up = tensors.get(up_name)
        if up is None:
            raise ValueError(
                f"{src} has no tensor {up_name}; only dense FFNs with a separate ffn_up can be scaled"
            )
        if f"blk.{layer}.ffn_gate.weight" not in tensors:
            raise ValueError(
                f"layer {layer} of {src} has no ffn_gate tensor; scaling ffn_up rows scales the neuron "
                "activation only in a gated FFN (GELU or SiLU gate), so this model cannot be exported"
            )
        if len(up.shape) != 2:
            raise ValueError(f"tensor {up_name} has shape {list(up.shape)}; expected 2 dimensions")

        n_embd, n_ff = up.shape
        bad = [row for row in rows if not 0 <= row < n_ff]
        if bad:
            raise ValueError(
                f"neuron index {bad[0]} in layer {layer} is out of range; valid indices are 0..{n_ff - 1}"
            )

        up_type = _scalable_type(up)
        block_size, type_size = GGML_QUANT_SIZES[up_type]
        if n_embd % block_size != 0:
            raise ValueError(
                f"tensor {up_name} has rows of {n_embd} values, "
                f"not a multiple of the {up_type.name} block size {block_size}"
            )
        row_bytes = n_embd // block_size * type_size
        _check_within_file(index, up, n_ff * row_bytes)
        patches.append(_RowPatch(up_name, up_type, up.data_offset, row_bytes, rows))

        bias = tensors.get(f"blk.{layer}.ffn_up.bias")
        if bias is not None:
            bias_type = _scalable_type(bias)
            if bias_type not in _FLOAT_DTYPES:
                raise ValueError(
                    f"tensor {bias.name} has type {bias_type.name}; only float biases can be scaled"
                )
            element_bytes = GGML_QUANT_SIZES[bias_type][1]
            if bias.shape != (n_ff,):
                raise ValueError(f"tensor {bias.name} has shape {list(bias.shape)}; expected [{n_ff}]")
            _check_within_file(index, bias, n_ff * element_bytes)
            patches.append(_RowPatch(bias.name, bias_type, bias.data_offset, element_bytes, rows))
    return patches


def _check_within_file(index: _GGUFIndex, tensor: _TensorInfo, n_bytes: int) -> None:
    if tensor.data_offset + n_bytes > index.file_size:
        raise ValueError(
            f"tensor {tensor.name} needs bytes {tensor.data_offset}..{tensor.data_offset + n_bytes} "
            f"but the file has {index.file_size} bytes; the file is truncated"
        )


def _scalable_type(tensor: _TensorInfo) -> GGMLQuantizationType:
    try:
        qtype = GGMLQuantizationType(tensor.type_id)
    except ValueError:
        qtype = None
    if qtype not in SCALABLE_TYPES:
        type_name = qtype.name if qtype is not None else f"unknown type id {tensor.type_id}"
        supported = ", ".join(sorted(t.name for t in SCALABLE_TYPES))
        raise ValueError(
            f"tensor {tensor.name} has type {type_name}, which cannot be scaled; supported types: {supported}"
        )
    return qtype


def _apply_patches(
    src: Path,
    dst: Path,
    patches: Sequence[_RowPatch],
    alpha: float,
    progress: Callable[[int, int], None] | None,
) -> int:
    """Overwrite the scaled rows in ``dst``, reading the original bytes from ``src``."""
    n_saturated = 0
    with open(src, "rb") as source, open(dst, "r+b") as out:
        for done, patch in enumerate(patches, start=1):
            for row in patch.rows:
                start = patch.data_offset + row * patch.row_bytes
                source.seek(start)
                original = np.frombuffer(source.read(patch.row_bytes), dtype=np.uint8)
                scaled, saturated = scale_row_bytes(original, patch.qtype, alpha)
                n_saturated += saturated
                out.seek(start)
                out.write(scaled.tobytes())
            logger.debug("scaled %d rows of %s", len(patch.rows), patch.tensor_name)
            if progress is not None:
                progress(done, len(patches))
        out.flush()
        os.fsync(out.fileno())
    return n_saturated
