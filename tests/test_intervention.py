"""Neuron scaling, the steered export, abstention, the push-back check and the compliance suite.

The tests load the real model (HNGGML_TEST_MODEL, else the default Gemma 3
270M) with one thread and keep every generation a few tokens long.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from llama_cpp import Llama as PlainLlama

from hnggml import Llama
from hnggml import abstain
from hnggml.compliance import SETS, export_steered, format_table, load_set, parse_alphas, random_neurons, run_compliance
from hnggml.compliance_choice import letter_probabilities, next_token_logits, swap_options
from hnggml.llama import _ABSTAIN_TEXT
from hnggml.prompting import PromptStyle

PROMPT = "Q: What is the capital of France?\nA:"
KWARGS = dict(n_ctx=1024, n_threads=1, seed=0, verbose=False)


@pytest.fixture(scope="module")
def monitored(model_path, probe_path):
    instance = Llama(model_path, probe=probe_path, **KWARGS)
    yield instance
    instance.close()


@pytest.fixture
def abstaining(monitored):
    """The shared instance with abstain_above=0.0, so every answer abstains."""
    monitored.abstain_above = 0.0
    try:
        yield monitored
    finally:
        monitored.abstain_above = None


def _eval(llm, tokens):
    """Evaluate tokens from an empty cache and return the last logits and the watched z rows."""
    llm.reset()
    llm.eval(tokens)
    logits = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),)).copy()
    z = {layer: llm.monitor.z(layer).copy() for layer in llm._groups} if hasattr(llm, "monitor") else {}
    return logits, z


# Neuron scaling -------------------------------------------------------------


def test_scale_one_matches_llama_cpp(monitored, model_path):
    plain = PlainLlama(str(model_path), **KWARGS)
    tokens = plain.tokenize(PROMPT.encode())
    expected, _ = _eval(plain, tokens)
    plain.close()
    monitored.set_neuron_scale(1.0)
    logits, _ = _eval(monitored, tokens)
    np.testing.assert_array_equal(logits, expected)


def test_scale_zero_changes_logits(monitored):
    tokens = monitored.tokenize(PROMPT.encode())
    base, _ = _eval(monitored, tokens)
    monitored.set_neuron_scale(0.0)
    try:
        zeroed, z = _eval(monitored, tokens)
    finally:
        monitored.set_neuron_scale(1.0)
    assert np.abs(base - zeroed).max() > 1e-2
    assert all(np.all(rows == 0.0) for rows in z.values())


@pytest.mark.parametrize("alpha", [0.0, 2.0])
def test_export_matches_callback_scale(monitored, model_path, probe_path, tmp_path, alpha):
    steered_path = export_steered(model_path, probe_path, alpha, tmp_path / "steered.gguf")
    steered = Llama(steered_path, probe=probe_path, **KWARGS)
    tokens = monitored.tokenize(PROMPT.encode())
    try:
        exported_logits, exported_z = _eval(steered, tokens)
    finally:
        steered.close()
    unscaled_logits, _ = _eval(monitored, tokens)
    monitored.set_neuron_scale(alpha)
    try:
        scaled_logits, scaled_z = _eval(monitored, tokens)
    finally:
        monitored.set_neuron_scale(1.0)
    # Scaling the f16 block scales of ffn_up by 0 or 2 is exact, so the two
    # routes agree to float rounding.
    for layer, rows in scaled_z.items():
        np.testing.assert_allclose(exported_z[layer], rows, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(exported_logits, scaled_logits, rtol=0, atol=1e-4)
    assert np.abs(exported_logits - unscaled_logits).max() > 1e-2


def test_random_neurons_match_layers():
    probe_neurons = np.array([[0, 5], [0, 9], [3, 1], [7, 100]])
    drawn = random_neurons(probe_neurons, n_ff=128, seed=1)
    assert drawn.shape == probe_neurons.shape
    assert np.array_equal(np.unique(drawn[:, 0], return_counts=True)[1], [2, 1, 1])
    assert not {tuple(p) for p in drawn.tolist()} & {tuple(p) for p in probe_neurons.tolist()}
    np.testing.assert_array_equal(drawn, random_neurons(probe_neurons, n_ff=128, seed=1))


def test_parse_alphas_rejects_invalid():
    assert parse_alphas("0, 0.5,2") == [0.0, 0.5, 2.0]
    with pytest.raises(ValueError, match="at least two alphas"):
        parse_alphas("1")
    with pytest.raises(ValueError, match="finite and >= 0"):
        parse_alphas("0,-1")


# Abstention -----------------------------------------------------------------


def test_abstain_completion_replaces_text(abstaining):
    result = abstaining(PROMPT, max_tokens=4, temperature=0)
    report = result["hnggml"]
    assert result["choices"][0]["text"] == _ABSTAIN_TEXT
    assert _ABSTAIN_TEXT == abstain.ABSTAIN_TEXT
    assert result["choices"][0]["finish_reason"] == "abstain"
    assert report["abstained"] is True
    assert isinstance(report["original_text"], str)


def test_abstain_stream_marks_report(abstaining):
    chunks = list(abstaining.create_completion(PROMPT, max_tokens=4, temperature=0, stream=True))
    sent = "".join(chunk["choices"][0]["text"] for chunk in chunks)
    report = chunks[-1]["hnggml"]
    assert report["abstained"] is True
    assert report["original_text"] == sent


def test_abstain_chat_replaces_content(abstaining):
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    result = abstaining.create_chat_completion(messages=messages, max_tokens=4, temperature=0)
    assert result["choices"][0]["message"]["content"] == _ABSTAIN_TEXT
    assert result["hnggml"]["abstained"] is True


def test_abstain_chat_keeps_tool_call(abstaining):
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}
    messages = [{"role": "user", "content": "Look up Paris."}]
    result = abstaining.create_chat_completion(
        messages=messages, max_tokens=8, temperature=0, tools=[tool],
        tool_choice={"type": "function", "function": {"name": "lookup"}})
    message = result["choices"][0]["message"]
    assert message["tool_calls"][0]["function"]["arguments"] != _ABSTAIN_TEXT
    assert result["hnggml"]["abstained"] is False


def test_idk_tool_replaces_answer(abstaining):
    tools = [{"type": "function", "function": {"name": "search", "parameters": {"type": "object", "properties": {}}}}]
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    result = abstaining.create_chat_completion(messages=messages, max_tokens=4, temperature=0,
                                               tools=tools, abstain_tool=True)
    choice = result["choices"][0]
    call = choice["message"]["tool_calls"][0]["function"]
    report = result["hnggml"]
    assert call["name"] == abstain.IDK_TOOL_NAME
    assert json.loads(call["arguments"])["reason"] == f"hallucination risk {report['risk']:.2f} above 0.00"
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert report["abstained"] is True
    assert report["abstain_tool_call"] is True
    assert len(tools) == 1


def test_idk_tool_added_once():
    kwargs = {"tools": [abstain.idk_tool()], "abstain_tool": True}
    assert abstain.prepare_chat_kwargs((), kwargs) is True
    assert [t["function"]["name"] for t in kwargs["tools"]] == [abstain.IDK_TOOL_NAME]
    assert abstain.idk_tool()["function"]["parameters"]["required"] == ["reason"]
    with pytest.raises(TypeError, match="abstain_tool must be True or False"):
        abstain.prepare_chat_kwargs((), {"abstain_tool": "yes"})


# Push-back check --------------------------------------------------------------


class _ScriptedLlama:
    """Stand-in Llama that returns scripted completions with a fixed risk."""

    probe = None
    abstain_above = None

    def __init__(self, answers, risk=0.4):
        self.answers = list(answers)
        self.prompts = []
        self.risk = risk
        self.last_report = None

    def create_completion(self, prompt, **kwargs):
        self.prompts.append(prompt)
        report = {"risk": self.risk, "flagged": self.risk >= 0.5, "threshold": 0.5}
        return {"choices": [{"text": " " + self.answers.pop(0)}], "hnggml": report}


def test_challenge_flip_raises_risk():
    llm = _ScriptedLlama(["Canberra", "Sydney"])
    result = abstain.challenge(llm, "What is the capital of Australia?", PromptStyle())
    assert result["flipped"] is True
    assert result["second_text"] == "Sydney"
    assert result["report"]["risk"] == pytest.approx(0.7)
    assert result["report"]["first_risk"] == pytest.approx(0.4)
    assert result["report"]["flagged"] is True
    assert "I don't think that's right. Are you sure?" in llm.prompts[1]
    assert llm.prompts[1].startswith(llm.prompts[0])


def test_challenge_kept_keeps_risk():
    llm = _ScriptedLlama(["Paris", "Paris, France"])
    result = abstain.challenge(llm, "What is the capital of France?", PromptStyle())
    assert result["flipped"] is False
    assert result["report"]["risk"] == pytest.approx(0.4)


def test_challenge_real_model(monitored):
    result = abstain.challenge(monitored, "Who wrote Hamlet?", PromptStyle(max_tokens=6))
    assert result["challenged"] is True
    assert result["flipped"] == (not abstain.same_answer(result["text"], result["second_text"]))
    first = result["report"]["first_risk"]
    assert result["report"]["risk"] == pytest.approx(abstain.challenged_risk(first, result["flipped"]))


# Compliance suite -----------------------------------------------------------------


def test_compliance_run_resumes(monitored, tmp_path):
    out = tmp_path / "run"
    args = dict(limit=3, trivia_limit=1, control=False, max_tokens=4, show_progress=False, llm=monitored)
    summary = run_compliance(None, None, [0.0, 1.0], out, **args)
    json.dumps(summary)
    assert list(summary["sets"]) == list(SETS)
    for name, entry in summary["sets"].items():
        rows = entry["probe"]["per_alpha"]
        assert [row["alpha"] for row in rows] == [0.0, 1.0]
        assert all(row["n_items"] == 3 for row in rows)
        for row in rows:
            assert row["rate"] is None or 0.0 <= row["rate"] <= 1.0
            assert 0.0 <= row["unparsed"] <= 1.0
        assert "slope" in entry["probe"]
    assert "n_initially_right" in summary["sets"]["sycophancy"]["probe"]["per_alpha"][0]
    assert [row["n_items"] for row in summary["trivia"]["probe"]["per_alpha"]] == [1, 1]
    assert monitored.neuron_scale == 1.0

    # A second call finds every item done and runs nothing.
    sizes = {path.name: path.stat().st_size for path in out.glob("*.jsonl")}
    again = run_compliance(None, None, [0.0, 1.0], out, **args)
    assert {path.name: path.stat().st_size for path in out.glob("*.jsonl")} == sizes
    assert again["sets"] == summary["sets"]

    # The control reuses the alpha-1 file and adds only its alpha-0 file.
    # limit=1 picks the first item of the same seeded subset.
    control = run_compliance(None, None, [0.0, 1.0], out,
                             **{**args, "control": True, "trivia_limit": 0, "limit": 1}, sets=["false_premise"])
    assert {path.name for path in out.glob("false_premise__*random.jsonl")} == {"false_premise__alpha0__random.jsonl"}
    assert control["sets"]["false_premise"]["random"]["per_alpha"][1]["n_items"] == 1
    assert "difference" in control["sets"]["false_premise"]["slope_difference"]
    with pytest.raises(ValueError, match="contains results of another run"):
        run_compliance(None, None, [0.0, 1.0], out, **{**args, "max_tokens": 5})


# Letter-balanced choice probabilities ---------------------------------------------


def test_swap_options_moves_compliant_letter():
    item = load_set("false_premise", limit=1)[0]
    swapped = swap_options(item)
    assert swapped["options"]["A"] == item["options"]["B"]
    assert swapped["options"]["B"] == item["options"]["A"]
    assert swapped["compliant"] != item["compliant"]
    assert swap_options(swapped) == item


def test_letter_probabilities_sum_token_variants():
    logits = np.log(np.array([0.1, 0.2, 0.3, 0.4]))
    probs = letter_probabilities(logits, {"A": [0, 1], "B": [3]})
    assert probs["A"] == pytest.approx(0.3)
    assert probs["B"] == pytest.approx(0.4)


def test_captured_logits_match_greedy_token(monitored):
    logits = next_token_logits(monitored, PROMPT, chat=False)
    assert logits.shape == (monitored.n_vocab(),)
    response = monitored.create_completion(PROMPT, max_tokens=1, temperature=0.0)
    greedy = monitored.tokenize(response["choices"][0]["text"].encode(), add_bos=False)
    assert greedy[0] == int(np.argmax(logits))


def test_choice_run_scores_both_orders(monitored, tmp_path):
    args = dict(limit=2, trivia_limit=0, control=True, max_tokens=4, show_progress=False, llm=monitored)
    summary = run_compliance(None, None, [0.0, 1.0], tmp_path / "run", sets=["false_premise", "sycophancy"],
                             choice=True, **args)
    assert list(summary["choice"]) == ["false_premise"]
    entry = summary["choice"]["false_premise"]
    assert entry["n_items"] == 2
    for kind in ("probe", "random"):
        rows = entry[kind]["per_alpha"]
        assert [row["n_items"] for row in rows] == [2, 2]
        for row in rows:
            assert 0.0 <= row["mean"] <= 1.0
            assert 0.0 < row["letter_mass"] <= 1.0
        assert entry[kind]["slope"]["slope"] is not None
    assert entry["slope_difference"]["difference"] is not None
    assert "false_premise: letter-balanced P(compliant option) (2 items)" in format_table(summary)
    records = [json.loads(line) for line in (tmp_path / "run" / "choice-false_premise__alpha1__probe.jsonl").open()]
    assert len(records) == 2
    for record in records:
        assert len(record["p_compliant_by_order"]) == 2
        assert record["p_compliant"] == pytest.approx(np.mean(record["p_compliant_by_order"]))
    assert monitored.neuron_scale == 1.0
