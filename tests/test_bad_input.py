"""Hostile and broken inputs: each fails with a clear error, and the instance keeps working.

Every rejected input names the bad value and the fix. After every failed or
interrupted request, the next request must give exactly the text, tokens,
CETT rows and risk that a second instance gives for the same prompt.

The monitored instances use n_batch = n_ubatch = 1. llama.cpp's matmul
results depend slightly on how many tokens one decode contains. With larger
batches, a prompt served partly from the prefix cache therefore scores a
little differently from the same prompt decoded in one batch. With one token
per decode the numbers do not depend on the cache and can be compared
exactly.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
import pytest
from llama_cpp import LogitsProcessorList, StoppingCriteriaList

import hnggml.probe
from hnggml import Llama
from hnggml.errors import ProbeFormatError, ProbeMismatchError, UnsupportedModelError
from hnggml.probe import HProbe

PROMPT = "Q: What is the capital of France?\nA:"
# The context is small so that max_tokens=0 stays short. llama.cpp pads it to 256.
OTHER_PROMPT = "Q: Who wrote Hamlet?\nA:"
N_CTX = 128


def small_llama(model_path, probe_path) -> Llama:
    return Llama(model_path, probe=probe_path, n_ctx=N_CTX, n_batch=1, n_ubatch=1,
                 n_threads=1, seed=0, verbose=False)


@pytest.fixture(scope="module")
def llm(model_path, probe_path):
    instance = small_llama(model_path, probe_path)
    yield instance
    instance.close()


@pytest.fixture(scope="module")
def reference(model_path, probe_path):
    """Return a cached-answer function backed by a second instance that serves only successful requests."""
    instance = small_llama(model_path, probe_path)
    cache: dict[tuple, Answer] = {}

    def get(prompt: str, **kwargs) -> Answer:
        key = (prompt, json.dumps(kwargs, sort_keys=True))
        if key not in cache:
            cache[key] = answer(instance, prompt, **kwargs)
        return cache[key]

    yield get
    instance.close()


@dataclass
class Answer:
    text: str
    tokens: list[int]
    n_tokens: int
    risk: float | None
    rows: np.ndarray
    finish_reason: str


def answer(llm: Llama, prompt: str, **kwargs) -> Answer:
    params = {"max_tokens": 6, "temperature": 0.0, **kwargs}
    result = llm.create_completion(prompt, **params)
    request = llm.last_request
    rows = np.stack(request.rows) if request.rows else np.zeros((0, llm.probe.n_neurons), np.float32)
    return Answer(
        text=result["choices"][0]["text"],
        tokens=list(request.tokens),
        n_tokens=result["hnggml"]["n_tokens"],
        risk=result["hnggml"]["risk"],
        rows=rows,
        finish_reason=result["choices"][0]["finish_reason"],
    )


def assert_same_answer(got: Answer, expected: Answer) -> None:
    assert got.text == expected.text
    assert got.tokens == expected.tokens
    assert got.n_tokens == expected.n_tokens
    assert got.finish_reason == expected.finish_reason
    np.testing.assert_array_equal(got.rows, expected.rows)
    assert got.risk == expected.risk


# GGUF files -------------------------------------------------------------------------------


def write_tiny_gguf(path: Path, arch: str = "gemma3", keys: bool = True, ffn_down: bool = True,
                    ffn_widths: list[int] | None = None, n_layer: int = 2) -> Path:
    """Write a GGUF with FFN metadata and ffn_down tensors but no usable model."""
    writer = gguf.GGUFWriter(str(path), arch)
    if keys:
        writer.add_block_count(n_layer)
        writer.add_feed_forward_length(ffn_widths if ffn_widths is not None else 64)
        writer.add_embedding_length(32)
    writer.add_name(f"tiny {arch}")
    if ffn_down:
        for il in range(n_layer):
            writer.add_tensor(f"blk.{il}.ffn_down.weight", np.ones((32, 64), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def truncated_prefix(model_path: Path, tmp_path: Path, size: int) -> Path:
    target = tmp_path / "truncated.gguf"
    with model_path.open("rb") as f:
        target.write_bytes(f.read(size))
    return target


def truncated_copy(source: Path, tmp_path: Path, cut: str) -> Path:
    path = tmp_path / "truncated.gguf"
    shutil.copyfile(source, path)
    size = path.stat().st_size
    os.truncate(path, size // 2 if cut == "half" else size - 1)
    return path


def raw_header(tmp_path: Path, body: bytes, tensor_count: int, kv_count: int) -> Path:
    path = tmp_path / "header.gguf"
    path.write_bytes(struct.pack("<IIQQ", gguf.GGUF_MAGIC, 3, tensor_count, kv_count) + body + bytes(64))
    return path


def gguf_string(text: str) -> bytes:
    return struct.pack("<Q", len(text)) + text.encode()


ARRAY = int(gguf.GGUFValueType.ARRAY)


def corrupted_tiny(tmp_path: Path, offset: int) -> Path:
    path = write_tiny_gguf(tmp_path / "corrupted.gguf")
    raw = bytearray(path.read_bytes())
    raw[offset:offset + 8] = np.random.default_rng(offset).integers(0, 256, 8, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(raw))
    return path


UNREADABLE = r"failed to read .*\.gguf as GGUF \(.*\); check that the file is a complete \.gguf model"
NO_ARCHITECTURE = r"corrupted\.gguf has no general\.architecture key; it is not a llama\.cpp model or its header is damaged"
TRUNCATED = (r"truncated\.gguf is truncated or damaged: tensor \S+ ends at byte \d+ but the file has \d+ bytes; "
             r"copy or download the model again")

GGUF_CASES = [
    # (id, build(tmp_path, model_path) -> path, exception, match)
    ("missing", lambda tmp, model: tmp / "nope.gguf", FileNotFoundError,
     r"model file not found: .*nope\.gguf; pass a \.gguf path, ollama:NAME"),
    ("folder", lambda tmp, model: tmp, FileNotFoundError,
     r"a folder was given; pass the \.gguf file inside it"),
    *((f"model cut to {size} bytes", lambda tmp, model, size=size: truncated_prefix(model, tmp, size),
       UnsupportedModelError, UNREADABLE)
      for size in (0, 3, 16, 1000, 100_000)),
    *((f"model cut to {cut}", lambda tmp, model, cut=cut: truncated_copy(model, tmp, cut),
       UnsupportedModelError, TRUNCATED)
      for cut in ("half", "all but one byte")),
    *((f"small GGUF cut to {cut}", lambda tmp, model, cut=cut: truncated_copy(write_tiny_gguf(tmp / "t.gguf"), tmp, cut),
       UnsupportedModelError, TRUNCATED)
      for cut in ("half", "all but one byte")),
    ("tensor with 2**32-1 dimensions",
     lambda tmp, model: raw_header(tmp, gguf_string("t") + struct.pack("<I", 2**32 - 1), 1, 0),
     UnsupportedModelError, r"tensor 't' has 4294967295 dimensions; GGUF allows at most 4"),
    ("arrays nested 5000 deep",
     lambda tmp, model: raw_header(tmp, gguf_string("a") + struct.pack("<I", ARRAY)
                                   + struct.pack("<IQ", ARRAY, 1) * 5000 + struct.pack("<IQ", 4, 0), 0, 1),
     UnsupportedModelError, r"has a GGUF header with arrays nested too deeply to read"),
    ("array of 2**62 items",
     lambda tmp, model: raw_header(tmp, gguf_string("a") + struct.pack("<I", ARRAY) + struct.pack("<IQ", 4, 2**62), 0, 2),
     UnsupportedModelError, r"array of 4611686018427387904 items runs past the end of the file"),
    ("tensor count 2**64-1", lambda tmp, model: raw_header(tmp, b"", 2**64 - 1, 0),
     UnsupportedModelError, r"has a truncated or invalid GGUF header"),
    # Offsets: magic, version, tensor count, key-value count, first key length,
    # first key text, first value type.
    *((f"random bytes at header offset {offset}", lambda tmp, model, offset=offset: corrupted_tiny(tmp, offset),
       UnsupportedModelError, match)
      for offset, match in ((0, UNREADABLE), (4, UNREADABLE), (8, UNREADABLE), (16, UNREADABLE), (24, UNREADABLE),
                            (32, NO_ARCHITECTURE), (60, UNREADABLE))),
    ("unknown architecture", lambda tmp, model: write_tiny_gguf(tmp / "m.gguf", arch="mamba"),
     UnsupportedModelError, r"architecture 'mamba' is not in hnggml's node table; supported: .*gemma3"),
    ("no FFN metadata", lambda tmp, model: write_tiny_gguf(tmp / "m.gguf", arch="mamba", keys=False),
     UnsupportedModelError, r"m\.gguf \(mamba\) lacks block_count, feed_forward_length or embedding_length"),
    ("no ffn_down tensors", lambda tmp, model: write_tiny_gguf(tmp / "m.gguf", ffn_down=False),
     UnsupportedModelError, r"has no tensor blk\.0\.ffn_down\.weight; mixture-of-experts"),
    ("FFN width per layer", lambda tmp, model: write_tiny_gguf(tmp / "m.gguf", ffn_widths=[64, 32]),
     UnsupportedModelError, r"m\.gguf \(gemma3\) has FFN widths that vary by layer; hnggml supports one width"),
    ("readable header, no model", lambda tmp, model: write_tiny_gguf(tmp / "m.gguf"), ValueError,
     r"Failed to load model from file: .*m\.gguf; llama\.cpp rejected the model .*pass verbose=True"),
    ("ollama name with traversal", lambda tmp, model: "ollama:../../etc/passwd", ValueError,
     r"invalid Ollama model reference 'ollama:\.\./\.\./etc/passwd': expected \[host/\]\[namespace/\]model\[:tag\]"),
]


@pytest.mark.parametrize(("build", "exception", "match"), [case[1:] for case in GGUF_CASES],
                         ids=[case[0] for case in GGUF_CASES])
def test_bad_gguf_rejected(tmp_path, model_path, build, exception, match):
    path = build(tmp_path, model_path)
    with pytest.raises(exception, match=match):
        Llama(path, probe=False, n_ctx=N_CTX, n_threads=1, verbose=False)


# Probe files ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def probe_data(probe_path) -> dict:
    return json.loads(Path(probe_path).read_text())


def edited(**changes):
    """Return a function that applies changes to a copy of the probe and serialises it."""
    def build(data: dict) -> bytes:
        data = json.loads(json.dumps(data))
        for key, value in changes.items():
            value = value(data) if callable(value) else value
            if "." in key:
                outer, inner = key.split(".")
                data[outer][inner] = value
            else:
                data[key] = value
        return json.dumps(data).encode()
    return build


def replaced(old: str, new: str):
    def build(data: dict) -> bytes:
        text = json.dumps(data)
        assert old in text
        return text.replace(old, new, 1).encode()
    return build


def first_coef_literal(data: dict) -> str:
    return f'"coef": [{json.dumps(data["coef"][0])}'


def with_literal(literal: str):
    def build(data: dict) -> bytes:
        return replaced(first_coef_literal(data), f'"coef": [{literal}')(data)
    return build


def every_neuron(transform):
    return lambda data: [transform(pair, data) for pair in data["neurons"]]


PROBE_CASES = [
    # (id, build(probe data) -> bytes, match); all raise ProbeFormatError
    ("not JSON", lambda data: b"hello", r"is not valid JSON: Expecting value"),
    ("binary", lambda data: bytes(range(256)), r"is not valid JSON: 'utf-8' codec can't decode"),
    ("empty", lambda data: b"", r"is not valid JSON"),
    ("UTF-16", lambda data: json.dumps(data).encode("utf-16"), r"is not valid JSON"),
    ("cut in half", lambda data: json.dumps(data).encode()[: len(json.dumps(data)) // 2], r"is not valid JSON"),
    ("deep nesting", lambda data: b"[" * 100_000 + b"]" * 100_000, r"nests JSON arrays or objects too deeply"),
    ("top-level list", lambda data: json.dumps([data]).encode(), r'is not an hnggml probe \(missing "format": "hnggml-probe"\)'),
    ("wrong format", edited(format="gguf"), r'is not an hnggml probe \(missing "format": "hnggml-probe"\)'),
    ("format version 2", edited(format_version=2), r"has format_version 2; this hnggml reads version 1"),
    ("format version string", edited(format_version="1"), r"has format_version '1'; this hnggml reads version 1"),
    ("model list", edited(model=[1]), r"field 'model' must be a JSON object, got list"),
    ("nodes list", edited(nodes=[1, 2]), r"field 'nodes' must be a JSON object, got list"),
    ("metrics string", edited(metrics="auc"), r"field 'metrics' must be a JSON object, got str"),
    ("n_layer boolean", edited(**{"model.n_layer": True}), r"model\.n_layer must be a positive integer, got True"),
    ("n_ff zero", edited(**{"model.n_ff": 0}), r"model\.n_ff must be a positive integer, got 0"),
    ("neurons string", edited(neurons="0,1"), r"field 'neurons' must be a list, got str"),
    ("neurons as strings", edited(neurons=every_neuron(lambda p, d: [str(p[0]), str(p[1])])),
     r"field 'neurons' item 0 is \['\d+', '\d+'\]; expected a \[layer, neuron\] pair of integers"),
    ("fractional neuron", edited(neurons=every_neuron(lambda p, d: [p[0], p[1] + 0.5])),
     r"field 'neurons' item 0 is \[\d+, [\d.]+\]; expected a \[layer, neuron\] pair of integers"),
    ("boolean layer", edited(neurons=every_neuron(lambda p, d: [True, p[1]])),
     r"field 'neurons' item 0 is \[True, \d+\]; expected a \[layer, neuron\] pair"),
    ("triple instead of pair", edited(neurons=every_neuron(lambda p, d: [p[0], p[1], 0])),
     r"field 'neurons' item 0 is \[\d+, \d+, 0\]; expected a \[layer, neuron\] pair"),
    ("huge index", edited(neurons=every_neuron(lambda p, d: [p[0], 10**30])),
     r"field 'neurons' holds a number too large for int64"),
    ("layer out of range", edited(neurons=lambda d: [[d["model"]["n_layer"], 0]] + d["neurons"][1:]),
     r"probe neuron \[(\d+), 0\] has layer \1 outside \[0, \1\) for the \1-layer model it names; fix the pair"),
    ("negative layer", edited(neurons=lambda d: [[-1, 0]] + d["neurons"][1:]),
     r"probe neuron \[-1, 0\] has layer -1 outside \[0, \d+\)"),
    ("neuron out of range", edited(neurons=lambda d: [[0, d["model"]["n_ff"]]] + d["neurons"][1:]),
     r"probe neuron \[0, (\d+)\] has neuron index \1 outside \[0, \1\) for model\.n_ff=\1; fix the pair or model\.n_ff"),
    ("duplicate pair", edited(neurons=lambda d: [d["neurons"][1]] + d["neurons"][1:]),
     r"lists the \(layer, neuron\) pair \[\d+, \d+\] more than once"),
    ("coef count", edited(coef=lambda d: d["coef"][:-1]),
     r"probe has (\d+) neurons but \d+ coefficients and \1 column norms; all three must match"),
    ("coef as strings", edited(coef=lambda d: [str(c) for c in d["coef"]]), r"field 'coef' item 0 is '[-\d.e]+'; expected a number"),
    ("coef nested", edited(coef=lambda d: [d["coef"]]), r"field 'coef' item 0 is \[.*\]; expected a number"),
    ("coef null", edited(coef=lambda d: [None] * len(d["coef"])), r"field 'coef' item 0 is None; expected a number"),
    ("NaN literal", with_literal("NaN"), r"NaN is not a valid number in a probe"),
    ("Infinity literal", with_literal("Infinity"), r"Infinity is not a valid number in a probe"),
    ("-Infinity literal", with_literal("-Infinity"), r"-Infinity is not a valid number in a probe"),
    ("overflowing literal", with_literal("1e999"), r"coefficients must be finite numbers \(found NaN or infinity\)"),
    ("NaN string", with_literal('"NaN"'), r"field 'coef' item 0 is 'NaN'; expected a number"),
    ("inf string", with_literal('"inf"'), r"field 'coef' item 0 is 'inf'; expected a number"),
    ("intercept string", edited(intercept="-1"), r"field 'intercept' must be a number, got str"),
    ("threshold missing", lambda data: json.dumps({k: v for k, v in data.items() if k != "threshold"}).encode(),
     r"missing field 'threshold'"),
    ("threshold above one", edited(threshold=1.5), r"probe threshold must lie in \[0, 1\], got 1\.5"),
    ("aggregation", edited(aggregation="median"), r"probe aggregation must be 'mean' or 'max', got 'median'"),
    ("negative column norm", edited(w_norm=lambda d: [-1.0] * len(d["w_norm"])),
     r"column norms must be finite and non-negative"),
    ("combiner list", edited(combiner=[1]), r"field 'combiner' must be a JSON object, got list"),
    ("combiner unknown input",
     edited(combiner={"inputs": ["bogus"], "mean": [0.0], "scale": [1.0], "coef": [1.0], "intercept": 0.0}),
     r"probe combiner reads unknown inputs \['bogus'\]; allowed: "),
    ("combiner zero scale",
     edited(combiner={"inputs": ["h_logit"], "mean": [0.0], "scale": [0.0], "coef": [1.0], "intercept": 0.0}),
     r"combiner\.scale must be positive"),
]


@pytest.mark.parametrize(("build", "match"), [case[1:] for case in PROBE_CASES], ids=[case[0] for case in PROBE_CASES])
def test_bad_probe_file_rejected(tmp_path, probe_data, build, match):
    path = tmp_path / "probe.json"
    path.write_bytes(build(probe_data))
    with pytest.raises(ProbeFormatError, match=rf"probe file .*probe\.json.*{match}"):
        HProbe.load(path)


def test_probe_file_too_large_rejected(tmp_path):
    path = tmp_path / "probe.json"
    with path.open("wb") as f:  # a sparse file: the size check must come before any read
        f.write(b"{")
        f.truncate(hnggml.probe.MAX_PROBE_BYTES + 1)
    with pytest.raises(ProbeFormatError, match=rf"is {hnggml.probe.MAX_PROBE_BYTES + 1} bytes; the maximum is"):
        HProbe.load(path)


def test_probe_with_too_many_neurons_rejected(tmp_path, probe_data, monkeypatch):
    monkeypatch.setattr(hnggml.probe, "MAX_NEURONS", 3)
    path = tmp_path / "probe.json"
    path.write_text(json.dumps(probe_data))
    with pytest.raises(ProbeFormatError, match=rf"probe has {len(probe_data['neurons'])} neurons; the maximum is 3"):
        HProbe.load(path)


def test_probe_missing_file_rejected(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"probe file not found: .*absent\.json"):
        HProbe.load(tmp_path / "absent.json")


def test_probe_with_byte_order_mark_loads(tmp_path, probe_data):
    path = tmp_path / "probe.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(probe_data).encode())
    assert HProbe.load(path).n_neurons == len(probe_data["neurons"])


OTHER_MODEL_CASES = [
    ("other hash", {"ffn_down_sha256": "0" * 64}, r"ffn_down 000000000000\) but the loaded model is"),
    ("other width", {"n_ff": 4096}, r"n_ff 4096, ffn_down .* but the loaded model is .* n_ff \d+"),
    ("other depth", {"n_layer": 40}, r"40 layers, .* but the loaded model is .*, \d+ layers"),
    ("other architecture", {"architecture": "llama"}, r"\(llama, .* but the loaded model is .*\(gemma3,"),
]


@pytest.mark.parametrize(("changes", "match"), [case[1:] for case in OTHER_MODEL_CASES],
                         ids=[case[0] for case in OTHER_MODEL_CASES])
def test_probe_for_other_model_rejected(tmp_path, model_path, probe_data, changes, match):
    data = json.loads(json.dumps(probe_data))
    data["model"].update(changes)
    path = tmp_path / "probe.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ProbeMismatchError, match=rf"probe was trained on .*{match}.*pass the probe trained for this model"):
        Llama(model_path, probe=path, n_ctx=N_CTX, n_threads=1, verbose=False)


def test_malformed_probe_rejected_by_llama(tmp_path, model_path):
    path = tmp_path / "probe.json"
    path.write_text('{"format": "hnggml-probe", "format_version": 1, "coef": [NaN]}')
    with pytest.raises(ProbeFormatError, match=r"NaN is not a valid number in a probe"):
        Llama(model_path, probe=path, n_ctx=N_CTX, n_threads=1, verbose=False)


# Requests ---------------------------------------------------------------------------------


def test_empty_prompt_scored(llm, reference):
    got = answer(llm, "")
    assert got.risk is not None
    assert 0 < got.n_tokens <= 6
    assert_same_answer(got, reference(""))


def test_prompt_longer_than_context_rejected(llm, reference):
    n_ctx = llm.n_ctx()
    with pytest.raises(ValueError, match=rf"Requested tokens \(\d+\) exceed context window of {n_ctx}; "
                                          r"shorten the prompt or create the Llama with a larger n_ctx"):
        answer(llm, "word " * (n_ctx + 10))
    assert_same_answer(answer(llm, PROMPT), reference(PROMPT))


def test_prompt_longer_than_context_rejected_in_stream(llm, reference):
    stream = llm.create_completion("word " * (llm.n_ctx() + 10), max_tokens=4, stream=True)
    with pytest.raises(ValueError, match=r"exceed context window .*larger n_ctx"):
        next(stream)
    assert_same_answer(answer(llm, PROMPT), reference(PROMPT))


def test_max_tokens_zero_fills_context(llm, reference):
    # llama-cpp-python treats max_tokens <= 0 as "up to the end of the context".
    n_ctx = llm.n_ctx()
    filler = "The sky is blue. " * 45
    prompt_tokens = len(llm.tokenize((filler + PROMPT).encode()))
    assert n_ctx - 40 < prompt_tokens < n_ctx - 5
    # The prompt is also longer than the n_ctx argument, which llama.cpp padded.
    assert prompt_tokens > N_CTX
    result = llm.create_completion(filler + PROMPT, max_tokens=0, temperature=0.0)
    usage = result["usage"]
    request = llm.last_request
    assert usage["prompt_tokens"] + usage["completion_tokens"] == n_ctx
    assert len(request.tokens) == usage["completion_tokens"]
    assert len(request.rows) == len(request.tokens)
    assert result["hnggml"]["risk"] is not None
    assert result["hnggml"]["n_tokens"] <= usage["completion_tokens"]
    assert_same_answer(answer(llm, PROMPT), reference(PROMPT))


def test_stop_sequence_at_once_scores_first_token(llm, reference):
    first = reference(PROMPT).text[:1]
    got = answer(llm, PROMPT, stop=[first])
    assert got.text == ""
    assert got.finish_reason == "stop"
    assert got.n_tokens == 0
    # An empty answer is scored on the row that chose its first token.
    assert got.risk is not None
    assert len(got.rows) == 1
    assert_same_answer(got, reference(PROMPT, stop=[first]))
    assert_same_answer(answer(llm, PROMPT), reference(PROMPT))


def test_abandoned_stream_then_new_request(llm, reference):
    stream = llm.create_completion(PROMPT, max_tokens=20, temperature=0.0, stream=True)
    for index, _ in enumerate(stream):
        if index == 2:
            break
    del stream
    assert_same_answer(answer(llm, OTHER_PROMPT), reference(OTHER_PROMPT))
    assert_same_answer(answer(llm, PROMPT), reference(PROMPT))


def test_stream_closed_after_newer_request_keeps_its_record(llm, reference):
    stream = llm.create_completion(PROMPT, max_tokens=20, temperature=0.0, stream=True)
    next(stream)
    next(stream)
    got = answer(llm, OTHER_PROMPT)
    newer = llm.last_request
    stream.close()  # the abandoned stream ends after the newer request
    assert llm.last_request is newer
    assert llm._request is None
    assert_same_answer(got, reference(OTHER_PROMPT))
    assert_same_answer(answer(llm, PROMPT), reference(PROMPT))


class Interrupt(Exception):
    """Raised by a test callback in the middle of generation."""


def raising_callback(exception: BaseException, at_call: int, returns_scores: bool):
    calls = 0

    def callback(input_ids, scores):
        nonlocal calls
        calls += 1
        if calls == at_call:
            raise exception
        return scores if returns_scores else False

    return callback


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("at_call", [1, 3])
@pytest.mark.parametrize("exception", [Interrupt("from a callback"), KeyboardInterrupt()],
                         ids=["exception", "KeyboardInterrupt"])
@pytest.mark.parametrize("where", ["logits_processor", "stopping_criteria"])
def test_callback_raising_mid_generation(llm, reference, where, exception, at_call, stream):
    if where == "logits_processor":
        kwargs = {"logits_processor": LogitsProcessorList([raising_callback(exception, at_call, True)])}
    else:
        kwargs = {"stopping_criteria": StoppingCriteriaList([raising_callback(exception, at_call, False)])}
    with pytest.raises(type(exception)):
        result = llm.create_completion(PROMPT, max_tokens=6, temperature=0.0, stream=stream, **kwargs)
        if stream:
            for _ in result:
                pass
    assert llm._request is None
    assert_same_answer(answer(llm, PROMPT), reference(PROMPT))
    assert_same_answer(answer(llm, OTHER_PROMPT), reference(OTHER_PROMPT))


def test_chat_completion_after_callback_error(llm, reference):
    messages = [{"role": "user", "content": "Name a colour."}]
    with pytest.raises(Interrupt):
        llm.create_chat_completion(messages, max_tokens=4, temperature=0.0,
                                   logits_processor=LogitsProcessorList([raising_callback(Interrupt(), 1, True)]))
    result = llm.create_chat_completion(messages, max_tokens=4, temperature=0.0)
    assert result["hnggml"]["risk"] is not None
    assert_same_answer(answer(llm, PROMPT), reference(PROMPT))


# Trust boundary ---------------------------------------------------------------------------------


def test_chat_template_runs_sandboxed():
    # llama-cpp-python renders GGUF chat templates in jinja2's
    # ImmutableSandboxedEnvironment, so a template cannot reach Python internals.
    from jinja2.exceptions import SecurityError
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    hostile = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    formatter = Jinja2ChatFormatter(template=hostile, eos_token="</s>", bos_token="<s>")
    with pytest.raises(SecurityError):
        formatter(messages=[{"role": "user", "content": "hi"}])
    mutating = "{% set m = messages %}{{ m.append({'role': 'x'}) }}"
    formatter = Jinja2ChatFormatter(template=mutating, eos_token="</s>", bos_token="<s>")
    with pytest.raises(SecurityError):
        formatter(messages=[{"role": "user", "content": "hi"}])
