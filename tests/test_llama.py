"""hnggml.Llama as a drop-in llama_cpp.Llama with a risk on every answer."""

from __future__ import annotations

import json

import numpy as np
import pytest
from llama_cpp import Llama as PlainLlama

from hnggml import HProbe, Llama, ProbeMismatchError, UnsupportedModelError
from hnggml.names import check_graph, ffn_nodes

PROMPTS = [
    "Q: What is the capital of France?\nA:",
    "Q: Who wrote Hamlet?\nA:",
    "Q: What is the capital of France?\nA: Paris\nQ: What is the largest planet?\nA:",
]


def _check_report(report):
    assert 0.0 <= report["risk"] <= 1.0
    assert isinstance(report["flagged"], bool)
    assert report["flagged"] == (report["risk"] >= report["threshold"])
    assert report["n_tokens"] >= 0


def test_completion_carries_risk(llm):
    result = llm(PROMPTS[0], max_tokens=8, stop=["\n"], temperature=0)
    _check_report(result["hnggml"])
    json.dumps(result)


def test_stream_completion_risk_in_last_chunk(llm):
    chunks = list(llm.create_completion(PROMPTS[1], max_tokens=8, stream=True, temperature=0))
    assert "hnggml" not in chunks[0] or len(chunks) == 1
    _check_report(chunks[-1]["hnggml"])
    assert chunks[-1]["choices"][0]["finish_reason"] is not None


def test_chat_completion_carries_risk(llm):
    messages = [{"role": "user", "content": "What is the capital of Spain?"}]
    result = llm.create_chat_completion(messages=messages, max_tokens=8, temperature=0)
    assert result["choices"][0]["message"]["role"] == "assistant"
    _check_report(result["hnggml"])


def test_stream_chat_risk_in_last_chunk(llm):
    messages = [{"role": "user", "content": "Name a primary colour."}]
    chunks = list(llm.create_chat_completion(messages=messages, max_tokens=8, stream=True, temperature=0))
    _check_report(chunks[-1]["hnggml"])


def test_token_risks_listed(model_path, probe_path):
    llm = Llama(model_path, probe=probe_path, n_ctx=256, n_threads=2, token_risks=True, verbose=False)
    report = llm(PROMPTS[0], max_tokens=6, temperature=0)["hnggml"]
    assert len(report["tokens"]) == report["n_tokens"]
    assert all(0.0 <= t["risk"] <= 1.0 for t in report["tokens"])
    llm.close()


def test_text_identical_without_monitor(model_path, probe_path):
    kwargs = dict(n_ctx=512, n_threads=2, seed=3, verbose=False)
    monitored = Llama(model_path, probe=probe_path, **kwargs)
    plain = PlainLlama(str(model_path), **kwargs)
    for prompt in PROMPTS:
        a = monitored(prompt, max_tokens=16, temperature=0)["choices"][0]["text"]
        b = plain(prompt, max_tokens=16, temperature=0)["choices"][0]["text"]
        assert a == b
    monitored.close()
    plain.close()


def test_prefix_reuse_scores_only_new_tokens(model_path, probe_path):
    kwargs = dict(n_ctx=512, n_threads=2, seed=0, verbose=False)
    warm = Llama(model_path, probe=probe_path, **kwargs)
    warm(PROMPTS[0], max_tokens=8, stop=["\n"], temperature=0)
    second = warm(PROMPTS[2], max_tokens=8, stop=["\n"], temperature=0)
    fresh = Llama(model_path, probe=probe_path, **kwargs)
    alone = fresh(PROMPTS[2], max_tokens=8, stop=["\n"], temperature=0)
    assert second["choices"][0]["text"] == alone["choices"][0]["text"]
    assert second["hnggml"]["n_tokens"] == alone["hnggml"]["n_tokens"]
    # The cached prefix was decoded in another batch shape, so scores agree
    # to quantisation noise, not bit for bit.
    assert second["hnggml"]["risk"] == pytest.approx(alone["hnggml"]["risk"], abs=0.02)
    warm.close()
    fresh.close()


def test_exact_prompt_cache_hit_scores_again(llm):
    first = llm(PROMPTS[1], max_tokens=6, temperature=0)
    second = llm(PROMPTS[1], max_tokens=6, temperature=0)
    assert second["choices"][0]["text"] == first["choices"][0]["text"]
    assert second["hnggml"]["risk"] == pytest.approx(first["hnggml"]["risk"], abs=0.02)


def test_probe_for_other_model_rejected(model_path, probe_path, tmp_path):
    data = json.loads(probe_path.read_text())
    data["model"]["name"] = "Some Other Model"
    data["model"]["ffn_down_sha256"] = "0" * 64
    other = tmp_path / "other.json"
    other.write_text(json.dumps(data))
    with pytest.raises(ProbeMismatchError, match="Some Other Model.*Gemma"):
        Llama(model_path, probe=other, n_ctx=128, verbose=False)


def test_unknown_architecture_named():
    with pytest.raises(UnsupportedModelError, match="'mamba'"):
        ffn_nodes("mamba", "0.3.36")


def test_missing_graph_nodes_listed():
    nodes = ffn_nodes("gemma3", "0.3.36")
    seen = [("ffn_norm-0", "RMS_NORM"), ("ffn_up-0", "MUL_MAT"), ("ffn_gate-0", "MUL_MAT")]
    with pytest.raises(UnsupportedModelError, match="gemma3.*ffn_geglu-0.*ffn_gate-N"):
        check_graph("gemma3", nodes, 1, seen)


def test_old_builds_use_gate_par_names():
    assert ffn_nodes("llama", "0.3.9").z == "ffn_gate_par"
    assert ffn_nodes("qwen2", "0.3.36").z == "ffn_swiglu"


def test_neuron_scale_one_keeps_logits(model_path, probe_path):
    kwargs = dict(n_ctx=256, n_threads=2, seed=0, verbose=False)
    llm = Llama(model_path, probe=probe_path, **kwargs)
    tokens = llm.tokenize(PROMPTS[0].encode())
    llm.eval(tokens)
    base = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),)).copy()
    llm.set_neuron_scale(1.0)
    llm.reset()
    llm.eval(tokens)
    same = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),)).copy()
    llm.set_neuron_scale(0.0)
    llm.reset()
    llm.eval(tokens)
    zeroed = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),)).copy()
    np.testing.assert_array_equal(base, same)
    assert np.abs(base - zeroed).max() > 1e-3
    llm.close()


def test_probe_roundtrip(probe_path, tmp_path):
    probe = HProbe.load(probe_path)
    saved = probe.save(tmp_path / "copy.json")
    again = HProbe.load(saved)
    np.testing.assert_array_equal(probe.neurons_, again.neurons_)
    np.testing.assert_array_equal(probe.coef_, again.coef_)
