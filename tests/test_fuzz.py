"""Property-based fuzzing of the probe loader, the question loaders, the GGUF header reader and the C monitor.

Profiles (HYPOTHESIS_PROFILE): the default "ci" runs 150 derandomised
examples per target, "long" runs 5,000 with fresh randomness, and "smoke"
runs 15 (for valgrind). Set HNGGML_FUZZ_COUNTS=PATH to write the number of examples each
target ran as JSON.

The C monitor runs without a model. tests/fake_ggml.py implements the ggml
functions it calls over Python tensors, and a Python model of the monitor's
contract defines what it must store.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections import Counter
from pathlib import Path

import gguf
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hnggml import weights
from hnggml.datasets import load_any, load_jsonl
from hnggml.gguf_index import read_gguf_index
from hnggml.errors import ProbeFormatError
from hnggml.probe import HProbe

import fake_ggml
from fake_ggml import FakeGGML, FakeTensor, ReferenceMonitor

settings.register_profile(
    "ci", max_examples=150, derandomize=True, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long", max_examples=5000, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# For slow runs such as valgrind.
settings.register_profile("smoke", max_examples=15, derandomize=True, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
MIN_EXAMPLES = min(50, PROFILE.max_examples)

RUNS: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _report_counts():
    yield
    target = os.environ.get("HNGGML_FUZZ_COUNTS")
    if target:
        Path(target).write_text(json.dumps(dict(RUNS), indent=1, sort_keys=True) + "\n")


@pytest.fixture(scope="module")
def scratch():
    with tempfile.TemporaryDirectory(prefix="hnggml-fuzz-") as folder:
        yield Path(folder)


# JSON values ----------------------------------------------------------------------

json_scalars = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


# Probe files ------------------------------------------------------------------------

N_LAYER, N_FF = 4, 32


def valid_probe() -> dict:
    neurons = [[layer, neuron] for layer in range(N_LAYER) for neuron in (1, 7)]
    return {
        "format": "hnggml-probe",
        "format_version": 1,
        "model": {"architecture": "gemma3", "n_layer": N_LAYER, "n_ff": N_FF, "n_embd": 16,
                  "name": "fuzz", "ffn_down_sha256": "0" * 64},
        "nodes": {"z": "ffn_geglu", "h": "ffn_out"},
        "llama_cpp_version": "0.3.36",
        "aggregation": "mean",
        "threshold": 0.5,
        "neurons": neurons,
        "coef": [0.5] * len(neurons),
        "intercept": -1.0,
        "w_norm": [1.0] * len(neurons),
        "combiner": {"inputs": ["h_logit", "entropy"], "mean": [0.0, 1.0], "scale": [1.0, 2.0],
                     "coef": [1.0, 0.5], "intercept": 0.0},
        "prompt": {}, "training": {}, "metrics": {}, "versions": {},
    }


PATHS = [
    (), ("model",), ("combiner",), ("neurons",), ("neurons", 0), ("coef",), ("w_norm",),
    ("combiner", "inputs"), ("combiner", "scale"),
]
KEYS = sorted(valid_probe()) + ["n_layer", "n_ff", "inputs", "mean", "scale", "0", "controls"]


@st.composite
def mutated_probes(draw):
    """A valid probe with a few fields replaced, deleted or added."""
    data = valid_probe()
    for _ in range(draw(st.integers(1, 4))):
        node = data
        for step in draw(st.sampled_from(PATHS)):
            if isinstance(node, dict) and step in node and isinstance(node[step], (dict, list)):
                node = node[step]
            elif isinstance(node, list) and isinstance(step, int) and len(node) > step:
                node = node[step]
        action = draw(st.sampled_from(["set", "delete", "append"]))
        if isinstance(node, dict):
            key = draw(st.sampled_from(KEYS))
            if action == "delete":
                node.pop(key, None)
            else:
                node[key] = draw(json_values)
        elif isinstance(node, list):
            if action == "append" or not node:
                node.append(draw(json_values))
            elif action == "delete":
                node.pop(draw(st.integers(0, len(node) - 1)))
            else:
                node[draw(st.integers(0, len(node) - 1))] = draw(json_values)
    return data


@PROFILE
@given(st.one_of(mutated_probes(), json_values))
def test_fuzz_probe_from_dict(data):
    RUNS["probe_from_dict"] += 1
    try:
        probe = HProbe.from_dict(data)
    except ProbeFormatError:
        return
    # Whatever loads must score without error.
    assert probe.h_logit(np.zeros((1, probe.n_neurons))).shape == (1,)


def probe_bytes(draw) -> bytes:
    text = json.dumps(draw(mutated_probes()))
    kind = draw(st.sampled_from(["json", "cut", "flip", "constant", "nest", "random"]))
    if kind == "cut":
        return text.encode()[: draw(st.integers(0, len(text)))]
    if kind == "flip":
        raw = bytearray(text.encode())
        for _ in range(draw(st.integers(1, 8))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        return bytes(raw)
    if kind == "constant":
        literal = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", '"NaN"', '"inf"']))
        return text.replace('"intercept": -1.0', f'"intercept": {literal}').encode()
    if kind == "nest":
        depth = draw(st.integers(1, 50_000))
        return ("[" * depth + "]" * draw(st.integers(0, depth))).encode()
    if kind == "random":
        return draw(st.binary(max_size=256))
    return text.encode()


@PROFILE
@given(st.data())
def test_fuzz_probe_load(scratch, data):
    RUNS["probe_load"] += 1
    path = scratch / "probe.json"
    path.write_bytes(probe_bytes(data.draw))
    try:
        HProbe.load(path)
    except (ProbeFormatError, FileNotFoundError):
        pass


# Question files -----------------------------------------------------------------------

RECORD_KEYS = ["id", "question", "answers", "category", "source", "answerable", "form", "answer", "Data"]


@st.composite
def question_records(draw):
    record = {"id": draw(st.text(max_size=6)) or "q", "question": "Who?", "answers": ["A"],
              "category": "c", "source": "s"}
    for key in draw(st.lists(st.sampled_from(RECORD_KEYS), max_size=3)):
        if draw(st.booleans()):
            record.pop(key, None)
        else:
            record[key] = draw(json_values)
    return record


@st.composite
def question_files(draw):
    kind = draw(st.sampled_from(["jsonl", "jsonl", "document", "bytes", "text"]))
    if kind == "jsonl":
        lines = [json.dumps(draw(st.one_of(question_records(), json_values)))
                 for _ in range(draw(st.integers(0, 4)))]
        if draw(st.booleans()):
            lines.append(draw(st.text(max_size=20)))
        return "\n".join(lines).encode()
    if kind == "document":
        return json.dumps({"Data": draw(st.lists(json_values, max_size=3))}, indent=draw(st.sampled_from([None, 1]))).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    return draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")


@PROFILE
@given(content=question_files(), suffix=st.sampled_from([".jsonl", ".json", ".txt"]))
def test_fuzz_question_loaders(scratch, content, suffix):
    # .parquet is left out: reading it needs pandas and pyarrow, and a missing
    # package raises ImportError on purpose.
    RUNS["question_loaders"] += 1
    path = scratch / f"questions{suffix}"
    path.write_bytes(content)
    for loader in (load_jsonl, load_any):
        try:
            loader(path)
        except (ValueError, TypeError, FileNotFoundError):
            pass


# GGUF headers ----------------------------------------------------------------------------


def tiny_gguf_bytes() -> bytes:
    """Return a small valid GGUF with scalar, string and array metadata and two ffn_down tensors."""
    with tempfile.TemporaryDirectory(prefix="hnggml-fuzz-") as folder:
        path = Path(folder) / "tiny.gguf"
        writer = gguf.GGUFWriter(str(path), "gemma3")
        writer.add_block_count(2)
        writer.add_feed_forward_length(64)
        writer.add_embedding_length(32)
        writer.add_name("fuzz")
        writer.add_array("tokenizer.ggml.tokens", ["a", "bb", "ccc"])
        writer.add_array("tokenizer.ggml.scores", [0.0, 1.0, 2.0])
        for il in range(2):
            writer.add_tensor(f"blk.{il}.ffn_down.weight", np.ones((32, 64), dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return path.read_bytes()


TINY_GGUF = tiny_gguf_bytes()
SPECIAL_INTS = [0, 1, 2, 4, 5, 9, 2**31, 2**32 - 1, 2**63, 2**64 - 1]


@st.composite
def damaged_ggufs(draw) -> bytes:
    raw = bytearray(TINY_GGUF)
    header_end = min(len(raw), 600)
    kind = draw(st.sampled_from(["flip", "field", "cut", "insert"]))
    if kind == "flip":
        for _ in range(draw(st.integers(1, 8))):
            raw[draw(st.integers(0, header_end - 1))] = draw(st.integers(0, 255))
    elif kind == "field":
        offset = draw(st.integers(0, header_end - 8))
        width = draw(st.sampled_from([4, 8]))
        value = draw(st.sampled_from(SPECIAL_INTS)) % (2 ** (8 * width))
        raw[offset:offset + width] = value.to_bytes(width, "little")
    elif kind == "cut":
        del raw[draw(st.integers(0, len(raw) - 1)):]
    else:
        at = draw(st.integers(0, header_end))
        raw[at:at] = draw(st.binary(min_size=1, max_size=16))
    return bytes(raw)


@PROFILE
@given(damaged_ggufs())
def test_fuzz_gguf_header_reader(scratch, content):
    RUNS["gguf_header"] += 1
    path = scratch / "model.gguf"
    path.write_bytes(content)
    try:
        read_gguf_index(path)
        weights._read_info(path)
    except (ValueError, OSError):
        pass


# json.loads raises RecursionError on deeply nested input, which the loaders
# must turn into ValueError like any other malformed line.
@pytest.mark.parametrize("loader", [load_jsonl, load_any])
def test_question_loaders_deep_nesting(scratch, loader):
    path = scratch / "nested.jsonl"
    path.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(ValueError):
        loader(path)


# The C monitor over a fake ggml ----------------------------------------------------------

@pytest.fixture(scope="module")
def ggml():
    return FakeGGML()


Z_FAULTS = ["ok"] * 8 + ["drop", "width", "f16", "noncontig", "view_op", "view_name", "null_op", "null_name"]
H_FAULTS = ["ok"] * 8 + ["drop", "width", "f16", "noncontig", "rows", "null_name"]
SCALES = [0.0, 1.0, -1.0, 0.5, 2.0, 1.0000000001, math.nan, math.inf, 1e39]


@st.composite
def neuron_lists(draw, n_ff):
    valid = st.integers(0, n_ff - 1)
    anything = st.integers(-2, n_ff + 1)
    return draw(st.lists(st.one_of(valid, valid, valid, anything), max_size=min(n_ff + 1, 8)))


@st.composite
def ubatch(draw, n_layer, n_ff, n_embd):
    """Node specs of one ubatch: (name, op, rows, width, dtype, contiguous)."""
    rows = draw(st.integers(0, 5))
    specs = []
    for il in range(n_layer + 1):
        if draw(st.booleans()):
            specs.append((f"attn_norm-{il}", "MUL", rows, n_embd, np.float32, True))
        z = draw(st.sampled_from(Z_FAULTS))
        h = draw(st.sampled_from(H_FAULTS))
        if z != "drop":
            width = n_ff + (1 if z == "width" else 0)
            specs.append((
                None if z == "null_name" else f"ffn_geglu-{il}" + (" (view)" if z == "view_name" else ""),
                {"view_op": "VIEW", "null_op": None}.get(z, "GEGLU"),
                rows, width, np.float16 if z == "f16" else np.float32, z != "noncontig",
            ))
        if draw(st.booleans()):
            specs.append((f"ffn_out-{il}", draw(st.sampled_from(["RESHAPE", "VIEW", "CPY"])), rows, n_embd, np.float32, True))
        if h != "drop":
            specs.append((
                None if h == "null_name" else f"ffn_out-{il}", "MUL_MAT",
                rows + (1 if h == "rows" else 0), n_embd + (1 if h == "width" else 0),
                np.float16 if h == "f16" else np.float32, h != "noncontig",
            ))
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(["ffn_out-", "ffn_geglu-", "ffn_", "ff", "", "ffn_out"]))
        name += draw(st.sampled_from(["", "0", "00", "1", "1234567", "x", "0 (view)"]))
        specs.insert(draw(st.integers(0, len(specs))), (name, "MUL_MAT", rows, n_embd, np.float32, True))
    return specs


@st.composite
def monitor_scenarios(draw):
    """Sizes, a list of monitor operations, and a seed for the tensor data.

    Most scenarios start from a working setup: some layers watched or scaled,
    buffers allocated, monitor enabled. Captures, scaling and capacity
    overflow are then reached often, and the operations that follow may
    break the setup.
    """
    n_layer = draw(st.integers(1, 4))
    n_ff = draw(st.integers(1, 24))
    n_embd = draw(st.integers(1, 12))
    ops = [("enable", True)]
    if draw(st.integers(0, 9)) > 0:
        for il in range(n_layer):
            if draw(st.integers(0, 9)) < 7:
                ops.append(("watch", il, draw(st.lists(st.integers(0, n_ff - 1), min_size=1, max_size=8))))
            if draw(st.integers(0, 9)) < 4:
                factor = draw(st.one_of(st.floats(-4, 4), st.sampled_from(SCALES)))
                ops.append(("scale", il, draw(st.lists(st.integers(0, n_ff - 1), min_size=1, max_size=4)), factor))
        ops.append(("capture", draw(st.sampled_from([0, 1, 1])), draw(st.integers(1, 4))))
    for _ in range(draw(st.integers(1, 10))):
        kind = draw(st.sampled_from(
            ["watch", "scale", "capture", "graph", "graph", "graph", "graph", "graph", "graph",
             "rewind", "enable", "host", "discovery"]))
        if kind == "watch":
            ops.append(("watch", draw(st.integers(-1, n_layer)), draw(neuron_lists(n_ff))))
        elif kind == "scale":
            factor = draw(st.one_of(st.sampled_from(SCALES), st.floats(-4, 4)))
            ops.append(("scale", draw(st.integers(-1, n_layer)), draw(neuron_lists(n_ff)), factor))
        elif kind == "capture":
            mode = draw(st.sampled_from([0, 0, 1, 1, 1, 2, -1]))
            capacity = draw(st.one_of(st.integers(-1, 12), st.just(fake_ggml.MAX_CAPACITY + 1)))
            ops.append(("capture", mode, capacity))
        elif kind == "graph":
            ops.append(("graph", draw(ubatch(n_layer, n_ff, n_embd))))
        elif kind == "rewind":
            ops.append(("rewind",))
        else:
            ops.append((kind, draw(st.booleans())))
    return n_layer, n_ff, n_embd, ops, draw(st.integers(0, 2**32 - 1))


def build_graph(specs, rng) -> list[FakeTensor]:
    graph = []
    for name, op, rows, width, dtype, contiguous in specs:
        data = rng.normal(0.0, 2.0, size=(rows, width)).astype(dtype)
        graph.append(FakeTensor(name=name, op=op, data=data, contiguous=contiguous))
    return graph


def assert_same_state(ggml: FakeGGML, monitor, model: ReferenceMonitor, graphs) -> None:
    assert ggml.errors == []
    assert ggml.lib.hn_monitor_status(monitor) == model.status
    for il in range(model.n_layer):
        n_watch = len(model.layers[il].watch)
        assert ggml.lib.hn_monitor_rows(monitor, il) == model.layers[il].rows, f"rows of layer {il}"
        assert ggml.lib.hn_monitor_calls(monitor, il) == model.layers[il].calls, f"calls of layer {il}"
        np.testing.assert_array_equal(ggml.z(monitor, il, n_watch), model.stored_z(il), err_msg=f"z of layer {il}")
        np.testing.assert_allclose(ggml.h_norm(monitor, il), model.stored_h_norm(il), rtol=1e-6,
                                   err_msg=f"h_norm of layer {il}")
    for graph in graphs:
        for tensor in graph:
            np.testing.assert_array_equal(tensor.data, model.data[tensor], err_msg=f"data of {tensor.name!r}")
    assert ggml.discovered(monitor) == model.discovered


@PROFILE
@given(monitor_scenarios())
def test_fuzz_monitor_matches_reference(ggml, scenario):
    RUNS["monitor"] += 1
    n_layer, n_ff, n_embd, ops, seed = scenario
    rng = np.random.default_rng(seed)
    monitor = ggml.new_monitor(n_layer, n_ff, n_embd)
    model = ReferenceMonitor(n_layer, n_ff, n_embd)
    graphs = []
    try:
        run_operations(ggml, monitor, model, ops, graphs, rng)
        for status, count in model.status_events.items():
            RUNS[f"monitor_error_{status}"] += count
    finally:
        # No call into this monitor follows, so its stale tensor pointers are never read.
        ggml.release()


def run_operations(ggml: FakeGGML, monitor, model: ReferenceMonitor, ops, graphs, rng) -> None:
    for op in ops:
        kind = op[0]
        if kind == "watch":
            assert ggml.watch(monitor, op[1], op[2]) == model.watch(op[1], op[2]), op
        elif kind == "scale":
            assert ggml.scale(monitor, op[1], op[2], op[3]) == model.scale(op[1], op[2], op[3]), op
        elif kind == "capture":
            assert ggml.lib.hn_monitor_set_capture(monitor, op[1], op[2]) == model.set_capture(op[1], op[2]), op
        elif kind == "rewind":
            ggml.lib.hn_monitor_rewind(monitor)
            model.rewind()
        elif kind == "enable":
            ggml.lib.hn_monitor_set_enabled(monitor, op[1])
            model.enabled = op[1]
        elif kind == "host":
            # The results must not depend on how the monitor reads tensors.
            assert ggml.lib.hn_monitor_set_host_memory(monitor, op[1]) == 0
        elif kind == "discovery":
            ggml.lib.hn_monitor_set_discovery(monitor, op[1])
            model.set_discovery(op[1])
        else:
            graph = build_graph(op[1], rng)
            graphs.append(graph)
            # The model copies the tensor data before the C monitor scales it in place.
            expected = model.compute(graph)
            assert ggml.compute(monitor, graph) == expected, "ask-phase answers"
            count_coverage(model)
        assert_same_state(ggml, monitor, model, graphs)


def count_coverage(model: ReferenceMonitor) -> None:
    """Count the states the scenarios reach, for test_fuzz_counts_reached_minimum."""
    RUNS[f"monitor_status_{model.status}"] += 1
    if any(layer.rows > 0 for layer in model.layers):
        RUNS["monitor_rows_stored"] += 1
    if model.mode == fake_ggml.ROWS_ALL and any(layer.rows > 1 for layer in model.layers):
        RUNS["monitor_all_rows_mode"] += 1
    if any(layer.scaled() and layer.watch and layer.rows for layer in model.layers):
        RUNS["monitor_scaled_capture"] += 1
    if model.scaled_rows:
        RUNS["monitor_scaled_rows"] += 1


@PROFILE
@given(
    logits=st.lists(st.floats(-1e4, 1e4, width=32), min_size=1, max_size=300),
    token=st.integers(-2, 310),
)
def test_fuzz_logit_stats_match_numpy(ggml, logits, token):
    RUNS["logit_stats"] += 1
    row = np.asarray(logits, dtype=np.float32)
    out = ggml.ffi.new("float[4]")
    ggml.lib.hn_logit_stats(ggml.ffi.cast("float *", row.ctypes.data), len(row), token, out)
    shifted = row.astype(np.float64) - row.max()
    log_sum = math.log(np.exp(shifted).sum())
    logp = shifted - log_sum
    entropy = -(np.exp(logp) * logp).sum()
    assert out[0] == pytest.approx(row.max() + log_sum, rel=1e-5, abs=1e-4)
    assert out[1] == pytest.approx(entropy, rel=1e-4, abs=1e-4)
    assert out[3] == pytest.approx(-log_sum, rel=1e-5, abs=1e-5)
    if 0 <= token < len(row):
        assert out[2] == pytest.approx(logp[token], rel=1e-5, abs=1e-4)
    else:
        assert math.isnan(out[2])


# Fixed cases next to the fuzz targets -------------------------------------------------------

@pytest.mark.parametrize(
    ("n_layer", "n_ff", "n_embd", "z_prefix", "h_prefix"),
    [
        (0, 8, 8, "ffn_geglu", "ffn_out"),
        (4097, 8, 8, "ffn_geglu", "ffn_out"),
        (2, 0, 8, "ffn_geglu", "ffn_out"),
        (2, 8, -1, "ffn_geglu", "ffn_out"),
        (2, 8, 8, "", "ffn_out"),
        (2, 8, 8, "ffn_" + "x" * 44, "ffn_out"),
    ],
)
def test_monitor_new_rejects_bad_sizes(ggml, n_layer, n_ff, n_embd, z_prefix, h_prefix):
    assert ggml.new_monitor(n_layer, n_ff, n_embd, z_prefix, h_prefix) is None


def test_monitor_new_rejects_missing_function(ggml):
    api = ggml.ffi.new("hn_ggml_api *", ggml.api[0])
    api.tensor_set = ggml.ffi.NULL
    assert ggml.lib.hn_monitor_new(api, 2, 8, 8, b"ffn_geglu", b"ffn_out") == ggml.ffi.NULL


def test_monitor_callback_null_arguments(ggml):
    tensor = ggml.register(FakeTensor("ffn_out-0", "MUL_MAT", np.zeros((1, 4), np.float32)))
    assert not ggml.lib.hn_monitor_callback(tensor, True, ggml.ffi.NULL)
    assert ggml.lib.hn_monitor_callback(tensor, False, ggml.ffi.NULL)
    monitor = ggml.new_monitor(1, 4, 4)
    assert not ggml.lib.hn_monitor_callback(ggml.ffi.NULL, True, monitor)
    assert ggml.lib.hn_monitor_callback(ggml.ffi.NULL, False, monitor)


def test_monitor_discovery_stops_at_table_size(ggml):
    monitor = ggml.new_monitor(1, 4, 4)
    ggml.lib.hn_monitor_set_enabled(monitor, True)
    ggml.lib.hn_monitor_set_discovery(monitor, True)
    long_name = "ffn_" + "n" * 100
    graph = [FakeTensor(long_name, "MUL_" + "X" * 40, np.zeros((1, 4), np.float32))
             for _ in range(fake_ggml.DISCOVERY_MAX + 5)]
    ggml.compute(monitor, graph)
    found = ggml.discovered(monitor)
    assert len(found) == fake_ggml.DISCOVERY_MAX
    assert found[0] == (long_name[: fake_ggml.NAME_MAX - 1], ("MUL_" + "X" * 40)[: fake_ggml.OP_MAX - 1])
    assert ggml.errors == []


def test_monitor_capacity_overflow_keeps_first_rows(ggml):
    n_ff, n_embd = 6, 3
    monitor = ggml.new_monitor(1, n_ff, n_embd)
    ggml.lib.hn_monitor_set_enabled(monitor, True)
    assert ggml.watch(monitor, 0, [5, 0]) == 0
    assert ggml.lib.hn_monitor_set_capture(monitor, fake_ggml.ROWS_ALL, 4) == 0
    z = np.arange(6 * n_ff, dtype=np.float32).reshape(6, n_ff)
    h = np.ones((6, n_embd), np.float32)
    ggml.compute(monitor, [FakeTensor("ffn_geglu-0", "GEGLU", z), FakeTensor("ffn_out-0", "MUL_MAT", h)])
    assert ggml.lib.hn_monitor_status(monitor) == fake_ggml.ERR_CAPACITY
    assert ggml.lib.hn_monitor_rows(monitor, 0) == 4
    np.testing.assert_array_equal(ggml.z(monitor, 0, 2), z[:4][:, [5, 0]])
    np.testing.assert_allclose(ggml.h_norm(monitor, 0), np.full(4, math.sqrt(n_embd)), rtol=1e-6)


@pytest.mark.parametrize("host_memory", [True, False])
def test_monitor_scale_writes_before_capture(ggml, host_memory):
    n_ff, n_embd = 5, 2
    monitor = ggml.new_monitor(1, n_ff, n_embd)
    ggml.lib.hn_monitor_set_enabled(monitor, True)
    ggml.lib.hn_monitor_set_host_memory(monitor, host_memory)
    assert ggml.watch(monitor, 0, [1, 2]) == 0
    assert ggml.scale(monitor, 0, [2, 4], 0.5) == 0
    assert ggml.lib.hn_monitor_set_capture(monitor, fake_ggml.ROWS_LAST, 1) == 0
    z = np.full((3, n_ff), 8.0, np.float32)
    answers = ggml.compute(monitor, [FakeTensor("ffn_geglu-0", "GEGLU", z),
                                     FakeTensor("ffn_out-0", "MUL_MAT", np.ones((3, n_embd), np.float32))])
    assert answers == [True, True]
    np.testing.assert_array_equal(z[:, [0, 1, 3]], 8.0)
    np.testing.assert_array_equal(z[:, [2, 4]], 4.0)
    np.testing.assert_array_equal(ggml.z(monitor, 0, 2), [[8.0, 4.0]])
    assert ggml.errors == []


def test_fuzz_counts_reached_minimum():
    # Runs last in this file: each target must really have run its examples.
    for target in ("probe_from_dict", "probe_load", "question_loaders", "gguf_header", "monitor", "logit_stats"):
        assert RUNS[target] >= MIN_EXAMPLES, f"{target} ran {RUNS[target]} examples"
    # The monitor scenarios must reach every status and the interesting paths.
    for state in ("monitor_rows_stored", "monitor_all_rows_mode", "monitor_scaled_capture", "monitor_scaled_rows",
                  "monitor_status_0", *(f"monitor_error_{status}" for status in range(1, 5))):
        assert RUNS[state] >= 5, f"the monitor scenarios reached {state!r} {RUNS[state]} times"
