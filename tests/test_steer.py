"""Tests for hnggml.steer: scaled FFN neuron rows in an exported GGUF copy.

Dequantisation goes through gguf.quants (gguf-py), which is independent of the
byte offsets in hnggml.steer, so a wrong scale-field offset shows up as a row
that is not ``alpha`` times the original.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader, GGUFWriter

from hnggml import steer
from hnggml.steer import SCALABLE_TYPES, export_scaled_gguf, scale_row_bytes

Q = GGMLQuantizationType
MODEL_PATH = Path(os.environ.get("HNGGML_TEST_MODEL", "/tmp/models/gemma-3-270m-q4_k_m.gguf"))
requires_model = pytest.mark.skipif(
    not MODEL_PATH.is_file(),
    reason=f"Gemma 3 270M GGUF not found at {MODEL_PATH}; set HNGGML_TEST_MODEL to its path",
)

BLOCK_TYPES = sorted((t for t in SCALABLE_TYPES if GGML_QUANT_SIZES[t][0] > 1), key=lambda t: t.name)
FLOAT_TYPES = [Q.F16, Q.BF16, Q.F32, Q.F64]
F16_UNIT_ROUNDOFF = 2.0**-11
F16_SUBNORMAL_HALF_SPACING = 2.0**-25


# Helpers -------------------------------------------------------------------


def dequantize_rows(raw: np.ndarray, qtype: GGMLQuantizationType) -> np.ndarray:
    """Dequantise rows of raw bytes (shape (n_rows, row_bytes)) to float64."""
    raw = np.ascontiguousarray(raw, dtype=np.uint8)
    if qtype == Q.F64:
        return raw.view("<f8").astype(np.float64)
    if qtype == Q.F32:
        return raw.view("<f4").astype(np.float64)
    if qtype == Q.F16:
        return raw.view("<f2").astype(np.float64)
    return gguf.quants.dequantize(raw, qtype).astype(np.float64)


def random_blocks(
    qtype: GGMLQuantizationType, n_blocks: int, rng: np.random.Generator, low: float, high: float
):
    """Return random blocks of ``qtype`` whose scale fields lie in [low, high) with random signs."""
    type_size = GGML_QUANT_SIZES[qtype][1]
    blocks = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    for offset in steer._BLOCK_SCALE_OFFSETS[qtype]:
        magnitude = np.exp(rng.uniform(math.log(low), math.log(high), size=n_blocks))
        field = (magnitude * rng.choice([-1.0, 1.0], size=n_blocks)).astype("<f2")
        blocks[:, offset : offset + 2] = field.view(np.uint8).reshape(-1, 2)
    return blocks


def random_float_row(qtype: GGMLQuantizationType, n_values: int, rng: np.random.Generator) -> np.ndarray:
    """Return raw bytes of random values with magnitudes in [2**-8, 1), all normal in every float type."""
    magnitude = np.exp(rng.uniform(math.log(2.0**-8), 0.0, size=n_values))
    values = magnitude * rng.choice([-1.0, 1.0], size=n_values)
    if qtype == Q.BF16:
        return gguf.quants.quantize(values.astype(np.float32), Q.BF16).reshape(-1)
    dtype = {Q.F16: "<f2", Q.F32: "<f4", Q.F64: "<f8"}[qtype]
    return values.astype(dtype).view(np.uint8)


def field_error_bound(blocks: np.ndarray, qtype: GGMLQuantizationType, alpha: float) -> np.ndarray:
    """Bound |new - alpha*old| per element from the f16 rounding of each scale field.

    Each dequantised value is a sum of terms T_f, each linear in one scale field
    v_f.  Rounding ``alpha * v_f`` to f16 errs by at most
    max(2**-11 * |alpha * v_f|, 2**-25), so term f errs by at most that times
    |T_f / v_f|.  A float32 slack covers the arithmetic inside dequantize().
    """
    offsets = steer._BLOCK_SCALE_OFFSETS[qtype]
    bound = np.zeros((blocks.shape[0], GGML_QUANT_SIZES[qtype][0]))
    magnitude = np.zeros_like(bound)
    for offset in offsets:
        only_this_field = blocks.copy()
        for other in offsets:
            if other != offset:
                only_this_field[:, other : other + 2] = 0
        term = np.abs(dequantize_rows(only_this_field, qtype))
        field = np.abs(np.ascontiguousarray(blocks[:, offset : offset + 2]).view("<f2").astype(np.float64))
        with np.errstate(divide="ignore", invalid="ignore"):
            multiplier = np.where(field > 0, term / field, 0.0)
        field_error = np.maximum(F16_UNIT_ROUNDOFF * alpha * field, F16_SUBNORMAL_HALF_SPACING)
        bound += multiplier * field_error
        magnitude += term
    return bound + 2.0**-21 * alpha * magnitude


def write_model(
    path: Path,
    layers: list[tuple[GGMLQuantizationType, np.ndarray] | None],
    *,
    bias_layer: int | None = None,
    gate: bool = True,
    alignment: int | None = None,
) -> Path:
    """Write a small llama-architecture GGUF whose blk.L.ffn_up rows are the given raw bytes.

    ``layers[L]`` is (type, raw bytes of shape (n_ff, row_bytes)), or None for a
    layer without FFN tensors.
    """
    writer = GGUFWriter(str(path), "llama")
    writer.add_block_count(len(layers))
    writer.add_string("general.name", "steer test model")
    writer.add_array("tokenizer.ggml.tokens", [f"token{i}" for i in range(50)])
    writer.add_array("tokenizer.ggml.scores", [float(i) for i in range(50)])
    if alignment is not None:
        writer.add_custom_alignment(alignment)
    writer.add_tensor("token_embd.weight", np.arange(64, dtype=np.float32).reshape(4, 16))
    for layer, spec in enumerate(layers):
        if spec is None:
            continue
        qtype, raw = spec
        writer.add_tensor(f"blk.{layer}.ffn_up.weight", raw, raw_shape=raw.shape, raw_dtype=qtype)
        if gate:
            writer.add_tensor(
                f"blk.{layer}.ffn_gate.weight", raw[::-1].copy(), raw_shape=raw.shape, raw_dtype=qtype
            )
        if bias_layer == layer:
            writer.add_tensor(
                f"blk.{layer}.ffn_up.bias", np.linspace(-1.0, 1.0, raw.shape[0], dtype=np.float32)
            )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def tensor_bytes(path: Path, name: str) -> tuple[GGMLQuantizationType, np.ndarray, int]:
    """Return the type, raw bytes (n_rows, row_bytes) and file offset of a tensor, read with GGUFReader."""
    tensor = next(t for t in GGUFReader(path).tensors if t.name == name)
    raw = np.asarray(tensor.data)
    if raw.dtype != np.uint8:
        raw = (
            raw.view(np.uint8).reshape(raw.shape[0], -1)
            if raw.ndim == 2
            else raw.view(np.uint8).reshape(-1, raw.itemsize)
        )
    return tensor.tensor_type, np.array(raw), int(tensor.data_offset)


def changed_byte_offsets(a: Path, b: Path) -> np.ndarray:
    left = np.fromfile(a, dtype=np.uint8)
    right = np.fromfile(b, dtype=np.uint8)
    assert left.size == right.size
    return np.flatnonzero(left != right)


def scale_field_offsets(data_offset: int, row_bytes: int, rows, qtype: GGMLQuantizationType) -> set[int]:
    """Return the file offsets of every scale-field byte of the given rows."""
    type_size = GGML_QUANT_SIZES[qtype][1]
    allowed: set[int] = set()
    for row in rows:
        for block_start in range(
            data_offset + row * row_bytes, data_offset + (row + 1) * row_bytes, type_size
        ):
            for field in steer._BLOCK_SCALE_OFFSETS[qtype]:
                allowed.update((block_start + field, block_start + field + 1))
    return allowed


# Row scaling ---------------------------------------------------------------


@pytest.mark.parametrize("qtype", BLOCK_TYPES, ids=lambda t: t.name)
@pytest.mark.parametrize("alpha", [0.5, 2.0, 0.25])
def test_scale_row_bytes_power_of_two_exact(qtype, alpha):
    rng = np.random.default_rng(1)
    blocks = random_blocks(qtype, 8, rng, 2.0**-8, 2.0**4)

    scaled, n_saturated = scale_row_bytes(blocks.reshape(-1), qtype, alpha)

    assert n_saturated == 0
    before = dequantize_rows(blocks, qtype)
    after = dequantize_rows(scaled.reshape(blocks.shape), qtype)
    assert np.all(np.isfinite(before))
    np.testing.assert_array_equal(after, alpha * before)


@pytest.mark.parametrize("qtype", BLOCK_TYPES, ids=lambda t: t.name)
def test_scale_row_bytes_only_scale_fields_change(qtype):
    rng = np.random.default_rng(2)
    blocks = random_blocks(qtype, 4, rng, 2.0**-8, 1.0)

    scaled, _ = scale_row_bytes(blocks.reshape(-1), qtype, 0.3)

    changed = np.flatnonzero(scaled.reshape(blocks.shape) != blocks) % blocks.shape[1]
    fields = {offset + i for offset in steer._BLOCK_SCALE_OFFSETS[qtype] for i in (0, 1)}
    assert set(changed.tolist()) <= fields


@pytest.mark.parametrize("qtype", BLOCK_TYPES + FLOAT_TYPES, ids=lambda t: t.name)
def test_scale_row_bytes_zero_alpha(qtype):
    rng = np.random.default_rng(3)
    if qtype in FLOAT_TYPES:
        row = random_float_row(qtype, 256, rng)
    else:
        row = random_blocks(qtype, 4, rng, 2.0**-20, 2.0**4).reshape(-1)

    scaled, _ = scale_row_bytes(row, qtype, 0.0)

    after = dequantize_rows(scaled.reshape(1, -1), qtype)
    assert np.all(after == 0.0)


@pytest.mark.parametrize("qtype", BLOCK_TYPES, ids=lambda t: t.name)
def test_scale_row_bytes_rounding_within_bound(qtype):
    rng = np.random.default_rng(4)
    # Scales from deep in the f16 subnormal range up to normal values.
    blocks = random_blocks(qtype, 64, rng, 2.0**-22, 2.0**2)
    alpha = 0.3

    scaled, _ = scale_row_bytes(blocks.reshape(-1), qtype, alpha)

    before = dequantize_rows(blocks, qtype)
    after = dequantize_rows(scaled.reshape(blocks.shape), qtype)
    error = np.abs(after - alpha * before)
    bound = field_error_bound(blocks, qtype, alpha)
    assert np.all(error <= bound)


@pytest.mark.parametrize(
    ("qtype", "unit_roundoff"),
    [(Q.F16, 2.0**-11), (Q.BF16, 2.0**-8), (Q.F32, 2.0**-24), (Q.F64, 2.0**-53)],
    ids=lambda value: value.name if isinstance(value, Q) else "",
)
def test_scale_row_bytes_float_types(qtype, unit_roundoff):
    rng = np.random.default_rng(5)
    row = random_float_row(qtype, 512, rng)
    alpha = 0.3

    scaled, n_saturated = scale_row_bytes(row, qtype, alpha)

    assert n_saturated == 0
    before = dequantize_rows(row.reshape(1, -1), qtype)
    after = dequantize_rows(scaled.reshape(1, -1), qtype)
    assert np.all(np.abs(after - alpha * before) <= unit_roundoff * np.abs(alpha * before) + 2.0**-25)


def test_scale_row_bytes_f16_scale_saturates():
    block = np.zeros((1, 34), dtype=np.uint8)
    block[0, :2] = np.array([60000.0], dtype="<f2").view(np.uint8)
    block[0, 2:] = 1

    scaled, n_saturated = scale_row_bytes(block.reshape(-1), Q.Q8_0, 2.0)

    assert n_saturated == 1
    assert scaled[:2].view("<f2")[0] == np.finfo(np.float16).max


@pytest.mark.parametrize(
    ("qtype", "value", "limit"),
    [
        (Q.F16, 60000.0, 65504.0),
        (Q.BF16, 3.0e38, 3.3895313892515355e38),
        (Q.F32, 3.0e38, float(np.finfo(np.float32).max)),
    ],
    ids=["F16", "BF16", "F32"],
)
def test_scale_row_bytes_float_saturates(qtype, value, limit):
    if qtype == Q.BF16:
        row = gguf.quants.quantize(np.array([value, -value, 1.0], dtype=np.float32), Q.BF16).reshape(-1)
    else:
        row = np.array([value, -value, 1.0], dtype={Q.F16: "<f2", Q.F32: "<f4"}[qtype]).view(np.uint8)

    scaled, n_saturated = scale_row_bytes(row, qtype, 4.0)

    after = dequantize_rows(scaled.reshape(1, -1), qtype)[0]
    assert n_saturated == 2
    assert after[0] == limit
    assert after[1] == -limit
    assert after[2] == 4.0


def test_scale_row_bytes_unsupported_type():
    row = np.zeros(GGML_QUANT_SIZES[Q.IQ1_M][1], dtype=np.uint8)

    with pytest.raises(ValueError, match="IQ1_M cannot be scaled"):
        scale_row_bytes(row, Q.IQ1_M, 0.5)


# Export of synthetic GGUF files ---------------------------------------------

N_EMBD = 512
N_FF = 24


def random_tensor(qtype: GGMLQuantizationType, rng: np.random.Generator) -> np.ndarray:
    """Return raw ffn_up bytes (N_FF, row_bytes) with normal-range scales, so alpha=0.5 is exact."""
    if qtype in FLOAT_TYPES:
        return np.stack([random_float_row(qtype, N_EMBD, rng) for _ in range(N_FF)])
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    blocks = random_blocks(qtype, N_FF * N_EMBD // block_size, rng, 2.0**-8, 1.0)
    return blocks.reshape(N_FF, N_EMBD // block_size * type_size)


LAYER_TYPES = [Q.Q4_K, Q.Q6_K, Q.Q8_0, Q.F16, Q.BF16, Q.F32]


@pytest.fixture(scope="module")
def synthetic_model(tmp_path_factory) -> Path:
    rng = np.random.default_rng(6)
    layers = [(qtype, random_tensor(qtype, rng)) for qtype in LAYER_TYPES]
    return write_model(tmp_path_factory.mktemp("steer") / "model.gguf", layers, bias_layer=5, alignment=64)


def test_export_synthetic_rows_scaled(synthetic_model, tmp_path):
    neurons = {layer: [0, 7, N_FF - 1] for layer in range(len(LAYER_TYPES))}
    dst = tmp_path / "steered.gguf"

    result = export_scaled_gguf(synthetic_model, dst, neurons, 0.5)

    assert result == dst
    assert not (tmp_path / "steered.gguf.tmp").exists()
    for layer, qtype in enumerate(LAYER_TYPES):
        name = f"blk.{layer}.ffn_up.weight"
        type_before, before, _ = tensor_bytes(synthetic_model, name)
        type_after, after, _ = tensor_bytes(dst, name)
        assert type_before == type_after == qtype
        rows = neurons[layer]
        other = [row for row in range(N_FF) if row not in rows]
        np.testing.assert_array_equal(
            dequantize_rows(after[rows], qtype), 0.5 * dequantize_rows(before[rows], qtype)
        )
        np.testing.assert_array_equal(after[other], before[other])


def test_export_synthetic_other_bytes_identical(synthetic_model, tmp_path):
    neurons = {0: [3, 5], 1: [3]}
    dst = export_scaled_gguf(synthetic_model, tmp_path / "steered.gguf", neurons, 0.3)

    allowed: set[int] = set()
    for layer, rows in neurons.items():
        qtype, raw, offset = tensor_bytes(synthetic_model, f"blk.{layer}.ffn_up.weight")
        allowed |= scale_field_offsets(offset, raw.shape[1], rows, qtype)
    changed = changed_byte_offsets(synthetic_model, dst)
    assert changed.size > 0
    assert set(changed.tolist()) <= allowed


def test_export_synthetic_bias_scaled(synthetic_model, tmp_path):
    dst = export_scaled_gguf(synthetic_model, tmp_path / "steered.gguf", {5: [2, 9]}, 0.5)

    before = next(t for t in GGUFReader(synthetic_model).tensors if t.name == "blk.5.ffn_up.bias").data
    after = next(t for t in GGUFReader(dst).tensors if t.name == "blk.5.ffn_up.bias").data
    expected = before.copy()
    expected[[2, 9]] *= 0.5
    np.testing.assert_array_equal(after, expected)


def test_export_synthetic_zero_alpha(synthetic_model, tmp_path):
    neurons = {layer: [1, 4] for layer in range(len(LAYER_TYPES))}
    dst = export_scaled_gguf(synthetic_model, tmp_path / "steered.gguf", neurons, 0.0)

    for layer, qtype in enumerate(LAYER_TYPES):
        _, after, _ = tensor_bytes(dst, f"blk.{layer}.ffn_up.weight")
        assert np.all(dequantize_rows(after[[1, 4]], qtype) == 0.0)


def test_export_synthetic_duplicate_neurons_scaled_once(synthetic_model, tmp_path):
    dst = export_scaled_gguf(synthetic_model, tmp_path / "steered.gguf", {2: [6, 6, 6]}, 0.5)

    _, before, _ = tensor_bytes(synthetic_model, "blk.2.ffn_up.weight")
    _, after, _ = tensor_bytes(dst, "blk.2.ffn_up.weight")
    np.testing.assert_array_equal(
        dequantize_rows(after[[6]], Q.Q8_0), 0.5 * dequantize_rows(before[[6]], Q.Q8_0)
    )


def test_export_synthetic_progress_called(synthetic_model, tmp_path):
    calls = []

    export_scaled_gguf(
        synthetic_model, tmp_path / "steered.gguf", {0: [1], 5: [1]}, 0.5, progress=lambda *a: calls.append(a)
    )

    # Layer 5 has a bias, so three tensors are patched.
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_export_synthetic_failure_removes_temp(synthetic_model, tmp_path):
    dst = tmp_path / "steered.gguf"

    def fail(done, total):
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        export_scaled_gguf(synthetic_model, dst, {0: [1]}, 0.5, progress=fail)

    assert not dst.exists()
    assert not (tmp_path / "steered.gguf.tmp").exists()


def test_export_synthetic_overwrites_existing_dst(synthetic_model, tmp_path):
    dst = tmp_path / "steered.gguf"
    dst.write_bytes(b"old")

    export_scaled_gguf(synthetic_model, dst, {0: [1]}, 0.5)

    assert dst.stat().st_size == synthetic_model.stat().st_size


def test_export_synthetic_saturation_warns(tmp_path):
    raw = np.zeros((4, 34), dtype=np.uint8)
    raw[:, :2] = np.array([60000.0], dtype="<f2").view(np.uint8)
    src = write_model(tmp_path / "big.gguf", [(Q.Q8_0, raw)])

    with pytest.warns(RuntimeWarning, match="saturated"):
        export_scaled_gguf(src, tmp_path / "steered.gguf", {0: [0]}, 2.0)


def test_read_gguf_index_matches_gguf_reader(synthetic_model):
    index = steer._read_gguf_index(synthetic_model)
    reader = GGUFReader(synthetic_model)

    assert index.block_count() == len(LAYER_TYPES)
    assert set(index.tensors) == {t.name for t in reader.tensors}
    for tensor in reader.tensors:
        info = index.tensors[tensor.name]
        assert info.shape == tuple(int(dim) for dim in tensor.shape)
        assert info.type_id == int(tensor.tensor_type)
        assert info.data_offset == tensor.data_offset


# Invalid arguments -----------------------------------------------------------


def test_export_rejects_dst_equal_src(synthetic_model):
    with pytest.raises(ValueError, match="is the source file"):
        export_scaled_gguf(synthetic_model, synthetic_model, {0: [1]}, 0.5)


def test_export_rejects_hard_link_to_src(synthetic_model, tmp_path):
    link = tmp_path / "link.gguf"
    os.link(synthetic_model, link)

    with pytest.raises(ValueError, match="is the source file"):
        export_scaled_gguf(synthetic_model, link, {0: [1]}, 0.5)


def test_export_rejects_missing_src(tmp_path):
    with pytest.raises(FileNotFoundError, match="source GGUF file not found"):
        export_scaled_gguf(tmp_path / "absent.gguf", tmp_path / "out.gguf", {0: [1]}, 0.5)


def test_export_rejects_missing_dst_folder(synthetic_model, tmp_path):
    with pytest.raises(FileNotFoundError, match="output folder does not exist"):
        export_scaled_gguf(synthetic_model, tmp_path / "absent" / "out.gguf", {0: [1]}, 0.5)


def test_export_rejects_non_gguf_src(tmp_path):
    src = tmp_path / "text.gguf"
    src.write_bytes(b"this is not a gguf file at all")

    with pytest.raises(ValueError, match="is not a GGUF file"):
        export_scaled_gguf(src, tmp_path / "out.gguf", {0: [1]}, 0.5)


@pytest.mark.parametrize("alpha", [float("nan"), float("inf"), -0.5])
def test_export_rejects_invalid_alpha(synthetic_model, tmp_path, alpha):
    with pytest.raises(ValueError, match="alpha must be finite and >= 0"):
        export_scaled_gguf(synthetic_model, tmp_path / "out.gguf", {0: [1]}, alpha)


@pytest.mark.parametrize("alpha", [True, "0.5", None])
def test_export_rejects_non_numeric_alpha(synthetic_model, tmp_path, alpha):
    with pytest.raises(TypeError, match="alpha must be a real number"):
        export_scaled_gguf(synthetic_model, tmp_path / "out.gguf", {0: [1]}, alpha)


@pytest.mark.parametrize("layer", [-1, len(LAYER_TYPES)])
def test_export_rejects_layer_out_of_range(synthetic_model, tmp_path, layer):
    with pytest.raises(ValueError, match=rf"layer index {layer} is out of range; valid layers are 0\.\.5"):
        export_scaled_gguf(synthetic_model, tmp_path / "out.gguf", {layer: [1]}, 0.5)


@pytest.mark.parametrize("neuron", [-1, N_FF])
def test_export_rejects_neuron_out_of_range(synthetic_model, tmp_path, neuron):
    with pytest.raises(
        ValueError,
        match=rf"neuron index {neuron} in layer 1 is out of range; valid indices are 0\.\.{N_FF - 1}",
    ):
        export_scaled_gguf(synthetic_model, tmp_path / "out.gguf", {1: [0, neuron]}, 0.5)
    assert not (tmp_path / "out.gguf").exists()


@pytest.mark.parametrize(
    ("neurons", "message"),
    [
        ([(0, [1])], "neurons must be a mapping"),
        ({"0": [1]}, "layer index must be an integer"),
        ({0: 1}, "neuron indices of layer 0 must be a sequence"),
        ({0: [1.0]}, "neuron index in layer 0 must be an integer"),
        ({0: [True]}, "neuron index in layer 0 must be an integer"),
    ],
)
def test_export_rejects_invalid_neuron_types(synthetic_model, tmp_path, neurons, message):
    with pytest.raises(TypeError, match=message):
        export_scaled_gguf(synthetic_model, tmp_path / "out.gguf", neurons, 0.5)


def test_export_rejects_unsupported_tensor_type(tmp_path):
    raw = np.zeros((4, GGML_QUANT_SIZES[Q.IQ1_M][1]), dtype=np.uint8)
    src = write_model(tmp_path / "iq1m.gguf", [(Q.IQ1_M, raw)])

    with pytest.raises(
        ValueError, match=r"tensor blk\.0\.ffn_up\.weight has type IQ1_M, which cannot be scaled"
    ):
        export_scaled_gguf(src, tmp_path / "out.gguf", {0: [0]}, 0.5)


def test_export_rejects_ungated_ffn(tmp_path):
    rng = np.random.default_rng(7)
    src = write_model(tmp_path / "ungated.gguf", [(Q.Q8_0, random_tensor(Q.Q8_0, rng))], gate=False)

    with pytest.raises(ValueError, match="has no ffn_gate tensor"):
        export_scaled_gguf(src, tmp_path / "out.gguf", {0: [0]}, 0.5)


def test_export_rejects_layer_without_ffn_up(tmp_path):
    rng = np.random.default_rng(8)
    src = write_model(tmp_path / "partial.gguf", [(Q.Q8_0, random_tensor(Q.Q8_0, rng)), None])

    with pytest.raises(ValueError, match=r"has no tensor blk\.1\.ffn_up\.weight"):
        export_scaled_gguf(src, tmp_path / "out.gguf", {1: [0]}, 0.5)


# Export of the real Gemma 3 270M file ------------------------------------------

GEMMA_NEURONS = {0: [0, 7, 2047], 17: [100, 1000]}


def gemma_ffn_up(path: Path, layer: int) -> tuple[GGMLQuantizationType, np.ndarray, int]:
    """Return type, raw rows and data offset of blk.L.ffn_up.weight.

    GGUFReader needs several seconds for this file, so the offsets come from
    the header reader in hnggml.steer, which
    test_read_gguf_index_matches_gguf_reader checks against GGUFReader.
    """
    info = steer._read_gguf_index(path).tensors[f"blk.{layer}.ffn_up.weight"]
    qtype = Q(info.type_id)
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    n_embd, n_ff = info.shape
    row_bytes = n_embd // block_size * type_size
    raw = np.fromfile(path, dtype=np.uint8, count=n_ff * row_bytes, offset=info.data_offset)
    return qtype, raw.reshape(n_ff, row_bytes), info.data_offset


@requires_model
def test_export_gemma_rows_scaled(tmp_path):
    dst = export_scaled_gguf(MODEL_PATH, tmp_path / "steered.gguf", GEMMA_NEURONS, 0.5)

    allowed: set[int] = set()
    for layer, rows in GEMMA_NEURONS.items():
        qtype, before, offset = gemma_ffn_up(MODEL_PATH, layer)
        _, after, _ = gemma_ffn_up(dst, layer)
        # Gemma 3 270M has n_embd = 640, not a multiple of 256, so its ffn_up
        # tensors fall back from K-quants to Q5_0.
        assert qtype == Q.Q5_0
        np.testing.assert_array_equal(
            dequantize_rows(after[rows], qtype), 0.5 * dequantize_rows(before[rows], qtype)
        )
        allowed |= scale_field_offsets(offset, before.shape[1], rows, qtype)
    changed = changed_byte_offsets(MODEL_PATH, dst)
    assert changed.size > 0
    assert set(changed.tolist()) <= allowed


@requires_model
def test_export_gemma_zero_alpha(tmp_path):
    dst = export_scaled_gguf(MODEL_PATH, tmp_path / "steered.gguf", GEMMA_NEURONS, 0.0)

    for layer, rows in GEMMA_NEURONS.items():
        qtype, after, _ = gemma_ffn_up(dst, layer)
        assert np.all(dequantize_rows(after[rows], qtype) == 0.0)


@requires_model
@pytest.mark.parametrize(
    ("source_tensor", "qtype"),
    [("blk.2.ffn_down.weight", Q.Q4_K), ("blk.0.ffn_down.weight", Q.Q6_K)],
    ids=["Q4_K", "Q6_K"],
)
def test_export_gemma_k_quant_blocks_within_bound(tmp_path, source_tensor, qtype):
    # Gemma's ffn_up has no K-quant rows, so a small model reuses real Q4_K and
    # Q6_K blocks from its ffn_down tensors (most Q6_K scales there are f16 subnormals).
    info = steer._read_gguf_index(MODEL_PATH).tensors[source_tensor]
    assert Q(info.type_id) == qtype
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    row_bytes = info.shape[0] // block_size * type_size
    n_rows = 64
    raw = np.fromfile(MODEL_PATH, dtype=np.uint8, count=n_rows * row_bytes, offset=info.data_offset).reshape(
        n_rows, row_bytes
    )
    src = write_model(tmp_path / "kquant.gguf", [(qtype, raw)])
    rows = list(range(0, n_rows, 3))
    alpha = 0.5

    dst = export_scaled_gguf(src, tmp_path / "steered.gguf", {0: rows}, alpha)

    _, after, _ = tensor_bytes(dst, "blk.0.ffn_up.weight")
    before_rows = dequantize_rows(raw[rows], qtype)
    after_rows = dequantize_rows(after[rows], qtype)
    blocks = raw[rows].reshape(-1, type_size)
    bound = field_error_bound(blocks, qtype, alpha).reshape(after_rows.shape)
    assert np.all(np.abs(after_rows - alpha * before_rows) <= bound)
