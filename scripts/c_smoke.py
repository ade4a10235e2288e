#!/usr/bin/env python3
"""Run every path of the C monitor once on a real model, for sanitizer and valgrind runs.

Covers graph discovery at load, last-row capture with risk scoring during a
completion, a stream and a chat completion, neuron scaling, the logit
statistics, and all-rows capture of every neuron of two layers. Exits 0 and
prints "c_smoke: ok" when every check holds.

Usage: python scripts/c_smoke.py [MODEL] [PROBE]; the defaults are
$HNGGML_TEST_MODEL and $HNGGML_TEST_PROBE, else the embedded model and its
shipped probe. Set HNGGML_MONITOR_LIB to the library under test.
"""

from __future__ import annotations

import os
import sys

import numpy as np


def main() -> int:
    model = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("HNGGML_TEST_MODEL")
    probe = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("HNGGML_TEST_PROBE")

    from hnggml import Llama, _monitor

    prompt = "Q: What is the capital of France?\nA:"
    llm = Llama(model, probe=probe, n_ctx=256, n_threads=1, seed=0, verbose=False)
    result = llm.create_completion(prompt, max_tokens=3, temperature=0.0)
    assert result["hnggml"]["risk"] is not None, result["hnggml"]
    chunks = list(llm.create_completion(prompt, max_tokens=3, temperature=0.0, stream=True))
    assert "hnggml" in chunks[-1]
    chat = llm.create_chat_completion([{"role": "user", "content": "Hi"}], max_tokens=2, temperature=0.0)
    assert "hnggml" in chat
    llm.set_neuron_scale(0.5)
    scaled = llm.create_completion(prompt, max_tokens=3, temperature=0.0)
    assert scaled["hnggml"]["risk"] is not None
    llm.set_neuron_scale(1.0)
    llm.close()

    # All-rows capture of every neuron of the first and last layer.
    plain = Llama(model, probe=False, n_ctx=256, n_threads=1, seed=0, verbose=False)
    info = plain.model_info
    layers = (0, info.n_layer - 1)
    for layer in layers:
        plain.monitor.watch(layer, np.arange(info.n_ff, dtype=np.int32))
    plain.monitor.set_capture(_monitor.ROWS_ALL, 64)
    tokens = plain.tokenize(prompt.encode())
    plain.monitor.rewind()
    plain.eval(tokens)
    plain.monitor.raise_for_status()
    assert plain.monitor.rows(0) == len(tokens), (plain.monitor.rows(0), len(tokens))
    assert plain.monitor.z(0).shape == (len(tokens), info.n_ff)
    assert np.all(np.isfinite(plain.monitor.h_norm(layers[1])))
    plain.close()
    print("c_smoke: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
