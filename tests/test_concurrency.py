"""Threads: separate instances keep separate monitors, and one instance serialises its requests.

Every instance decodes one token at a time (n_batch = n_ubatch = 1), so an
answer does not depend on what the instance computed before, and each
threaded result can be compared exactly with the same request run alone.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from hnggml import Llama

PROMPTS = [
    "Q: What is the capital of France?\nA:",
    "Q: Who wrote Hamlet?\nA:",
    "Q: What is the boiling point of water in Celsius?\nA:",
    "Q: Which planet is known as the Red Planet?\nA:",
    "Q: What is the largest mammal?\nA:",
    "Q: Who painted the Mona Lisa?\nA:",
]
PARAMS = {"max_tokens": 5, "temperature": 0.0}


def make_llama(model_path, probe) -> Llama:
    return Llama(model_path, probe=probe, n_ctx=256, n_batch=1, n_ubatch=1, n_threads=1, seed=0, verbose=False)


def outcome(llm: Llama, prompt: str, stream: bool = False) -> tuple:
    """Return (text, tokens, risk, CETT rows) of one greedy completion."""
    if stream:
        chunks = list(llm.create_completion(prompt, stream=True, **PARAMS))
        text = "".join(chunk["choices"][0]["text"] for chunk in chunks)
        report = chunks[-1]["hnggml"]
    else:
        result = llm.create_completion(prompt, **PARAMS)
        text = result["choices"][0]["text"]
        report = result["hnggml"]
    request = llm.last_request
    return text, tuple(request.tokens), report["risk"], np.stack(request.rows)


def assert_same_outcome(got: tuple, expected: tuple) -> None:
    assert got[0] == expected[0]
    assert got[1] == expected[1]
    assert got[2] == expected[2]
    np.testing.assert_array_equal(got[3], expected[3])


@pytest.fixture(scope="module")
def other_probe(probe_path, tmp_path_factory) -> Path:
    """A probe for the same model that watches other neurons with other weights."""
    data = json.loads(Path(probe_path).read_text())
    n_ff = data["model"]["n_ff"]
    data["neurons"] = [[layer, (neuron + n_ff // 2) % n_ff] for layer, neuron in data["neurons"]]
    data["coef"] = [-c for c in reversed(data["coef"])]
    path = tmp_path_factory.mktemp("probes") / "other.json"
    path.write_text(json.dumps(data))
    return path


def run_threads(targets) -> list:
    """Run the callables in threads and return their results, re-raising the first error."""
    results: list = [None] * len(targets)
    errors: list = []

    def runner(index, target):
        try:
            results[index] = target()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=runner, args=(i, t)) for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive(), "a worker thread hung"
    if errors:
        raise errors[0]
    return results


def test_two_instances_keep_separate_monitors(model_path, probe_path, other_probe):
    # Constructing both at once also exercises the lock around the context-parameter patch.
    first, second = run_threads([lambda: make_llama(model_path, probe_path),
                                 lambda: make_llama(model_path, other_probe)])
    assert first.monitor is not second.monitor
    assert first.monitor.watched.keys() or second.monitor.watched.keys()
    barrier = threading.Barrier(2)

    def serve(llm, prompts):
        out = []
        for prompt in prompts:
            barrier.wait(timeout=60)  # start every request of both instances together
            out.append(outcome(llm, prompt, stream=len(out) % 2 == 1))
        return out

    threaded = run_threads([lambda: serve(first, PROMPTS[:4]), lambda: serve(second, PROMPTS[2:6])])
    sequential = [[outcome(first, p) for p in PROMPTS[:4]], [outcome(second, p) for p in PROMPTS[2:6]]]
    for got_list, expected_list in zip(threaded, sequential):
        for got, expected in zip(got_list, expected_list):
            assert_same_outcome(got, expected)
    # The two probes read different neurons, so the same prompt gives different CETT rows.
    assert not np.array_equal(threaded[0][2][3], threaded[1][0][3])
    first.close()
    second.close()


def test_parallel_init_restores_params(model_path, probe_path, other_probe):
    """Instances built in several threads leave llama_cpp's default context parameters as they were."""
    import llama_cpp.llama_cpp as llama_cpp_lib

    original = llama_cpp_lib.llama_context_default_params
    for _ in range(3):
        instances = run_threads([lambda: make_llama(model_path, probe_path),
                                 lambda: make_llama(model_path, other_probe),
                                 lambda: make_llama(model_path, probe_path)])
        assert llama_cpp_lib.llama_context_default_params is original
        for llm in instances:
            llm.close()
    assert not llama_cpp_lib.llama_context_default_params().cb_eval


@pytest.fixture(scope="module")
def shared(model_path, probe_path):
    llm = make_llama(model_path, probe_path)
    yield llm
    llm.close()


@pytest.fixture(scope="module")
def alone(shared):
    """Each prompt's outcome when run alone, as a plain completion."""
    return {prompt: outcome(shared, prompt) for prompt in PROMPTS}


def test_one_instance_serialises_threads(shared, alone):
    def client(offset):
        return [(prompt, outcome(shared, prompt, stream=(offset + i) % 2 == 1))
                for i, prompt in enumerate(PROMPTS[offset::3])]

    for results in run_threads([lambda offset=k: client(offset) for k in range(3)]):
        for prompt, got in results:
            assert_same_outcome(got, alone[prompt])
    assert shared._request is None


def test_one_instance_serialises_chat_and_completion(shared, alone):
    messages = [{"role": "user", "content": "Name a colour."}]
    expected_chat = shared.create_chat_completion(messages, **PARAMS)

    def chat():
        return [shared.create_chat_completion(messages, **PARAMS) for _ in range(2)]

    def complete():
        return [outcome(shared, prompt) for prompt in PROMPTS[:2]]

    chats, completions = run_threads([chat, complete])
    for result in chats:
        assert result["choices"][0]["message"] == expected_chat["choices"][0]["message"]
        assert result["hnggml"]["risk"] == expected_chat["hnggml"]["risk"]
    for prompt, got in zip(PROMPTS[:2], completions):
        assert_same_outcome(got, alone[prompt])


def test_open_stream_blocks_other_threads(shared, alone):
    stream = shared.create_completion(PROMPTS[0], stream=True, **PARAMS)
    first_chunk = next(stream)
    done = threading.Event()
    results = []

    def other():
        results.append(outcome(shared, PROMPTS[1]))
        done.set()

    thread = threading.Thread(target=other)
    thread.start()
    # The stream holds the instance's request lock until it ends.
    assert not done.wait(timeout=1.0)
    rest = list(stream)
    thread.join(timeout=60)
    assert done.is_set()
    text = first_chunk["choices"][0]["text"] + "".join(c["choices"][0]["text"] for c in rest)
    assert text == alone[PROMPTS[0]][0]
    assert rest[-1]["hnggml"]["risk"] == alone[PROMPTS[0]][2]
    assert_same_outcome(results[0], alone[PROMPTS[1]])
