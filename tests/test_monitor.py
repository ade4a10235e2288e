"""The C monitor against an independent reference, and CETT by hand."""

from __future__ import annotations

import numpy as np
import pytest
from llama_cpp import Llama as PlainLlama

from hnggml import Llama
from hnggml.capture import TeacherForcer
from hnggml.features import cett
from hnggml.weights import all_column_norms

from reference_callback import ReferenceCapture

PROMPT = "Q: What is the capital of Italy?\nA:"


def test_monitor_rows_match_reference(model_path, probe_path):
    llm = Llama(model_path, probe=probe_path, n_ctx=256, n_threads=2, seed=0, verbose=False)
    layers = sorted(llm.monitor.watched)
    reference = ReferenceCapture(layers)
    with reference.install():
        plain = PlainLlama(str(model_path), n_ctx=256, n_threads=2, seed=0, verbose=False)
    tokens = llm.tokenize(PROMPT.encode())
    llm.eval(tokens)
    plain.eval(tokens)
    for layer in layers:
        neurons = llm.monitor.watched[layer]
        z_ref = [t for kind, il, t in reference.tensors if kind == "z" and il == layer][-1]
        h_ref = [t for kind, il, t in reference.tensors if kind == "h" and il == layer][-1]
        assert llm.monitor.rows(layer) == 1
        np.testing.assert_array_equal(llm.monitor.z(layer)[0], z_ref[-1, neurons])
        np.testing.assert_allclose(llm.monitor.h_norm(layer)[0], np.linalg.norm(h_ref[-1]), rtol=1e-5)
    plain.close()
    llm.close()


def test_monitor_last_layer_carries_output_row(model_path, probe_path):
    llm = Llama(model_path, probe=probe_path, n_ctx=256, n_threads=2, verbose=False)
    last = llm.model_info.n_layer - 1
    neurons = np.arange(8)
    llm.monitor.watch(last, neurons)
    llm.monitor.set_capture(0)
    llm.eval(llm.tokenize(PROMPT.encode()))
    assert llm.monitor.rows(last) == 1
    assert llm.monitor.calls(last) >= 1
    llm.close()


@pytest.fixture(scope="module")
def forcer(model_path):
    llm = Llama(model_path, probe=False, n_ctx=256, n_threads=2, verbose=False)
    yield TeacherForcer(llm, max_tokens=128)
    llm.close()


def test_cett_equals_hand_computation(forcer, model_path):
    from gguf import GGUFReader
    from gguf.quants import dequantize

    llm = forcer.llm
    prompt = llm.tokenize(PROMPT.encode())
    answer = llm.tokenize(b" Rome", add_bos=False)
    capture = forcer.capture(prompt, answer)
    layer, n_ff = 3, forcer.n_ff
    z = llm.monitor.z(layer)[len(prompt) - 1]
    h_norm = llm.monitor.h_norm(layer)[len(prompt) - 1]

    reader = GGUFReader(str(model_path))
    tensor = next(t for t in reader.tensors if t.name == f"blk.{layer}.ffn_down.weight")
    w_down = dequantize(np.asarray(tensor.data), tensor.tensor_type)
    column_norms = np.linalg.norm(w_down, axis=0)
    np.testing.assert_allclose(column_norms, all_column_norms(model_path)[layer], rtol=1e-5)

    # llama.cpp quantises the matmul input to 8 bits, so ||W z|| agrees to about 1%.
    assert abs(np.linalg.norm(w_down @ z) - h_norm) / h_norm < 0.02
    j = 17
    by_hand = abs(z[j]) * column_norms[j] / h_norm
    assert capture.rows[0, layer * n_ff + j] == pytest.approx(by_hand, rel=1e-5)
    np.testing.assert_allclose(cett(z[None, :], np.array([h_norm]), column_norms)[0, j], by_hand, rtol=1e-5)


def test_teacher_forcing_matches_generation(forcer, llm):
    result = llm(PROMPT, max_tokens=4, stop=["\n"], temperature=0)
    request = llm.last_request
    n = result["hnggml"]["n_tokens"]
    capture = forcer.capture(request.prompt_tokens, request.tokens[:n])
    columns = llm.probe.neurons_[:, 0] * forcer.n_ff + llm.probe.neurons_[:, 1]
    generated = np.stack(request.rows[:n])
    # One-token and batched decodes pick different matmul kernels, so the
    # rows agree to quantisation noise rather than bit for bit.
    np.testing.assert_allclose(generated, capture.rows[:, columns], atol=5e-3)
    np.testing.assert_allclose(generated.mean(axis=0), capture.features()[columns], atol=2e-3)


def test_teacher_forcing_reuses_shared_prefix(forcer):
    llm = forcer.llm
    prompt = llm.tokenize(PROMPT.encode())
    first = forcer.capture(prompt, llm.tokenize(b" Rome", add_bos=False))
    other = forcer.capture(prompt, llm.tokenize(b" Milan", add_bos=False))
    again = forcer.capture(prompt, llm.tokenize(b" Rome", add_bos=False))
    assert other.rows.shape == first.rows.shape
    np.testing.assert_allclose(again.rows, first.rows, atol=5e-3)
    np.testing.assert_allclose(again.logprob, first.logprob, atol=1e-2)
