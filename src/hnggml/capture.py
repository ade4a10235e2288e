"""Teacher-forced capture of CETT for every FFN neuron (the training path).

The prompt and a stored answer are decoded in one batch with logits requested
at the answer-producing positions, that is the positions whose logits choose
each answer token: the last prompt position up to the second-to-last answer
token. These are the same rows hnggml.Llama scores during generation, and the
last layer carries only them, because llama.cpp computes the last layer for
output positions alone.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

from . import _monitor
from .features import aggregate, cett, logit_signals
from .weights import all_column_norms


@dataclass
class Capture:
    """CETT of one teacher-forced answer."""

    rows: np.ndarray
    """(n_answer_tokens, n_layer * n_ff) CETT, layer-major."""
    entropy: np.ndarray
    logprob: np.ndarray

    def features(self, how: str = "mean") -> np.ndarray:
        return aggregate(self.rows, how)

    def signals(self) -> dict[str, float]:
        return logit_signals(self.entropy, self.logprob)


class TeacherForcer:
    """Capture every neuron of a model loaded as hnggml.Llama(probe=False)."""

    def __init__(self, llm, max_tokens: int = 512) -> None:
        if llm.probe is not None:
            raise ValueError("TeacherForcer needs a Llama loaded with probe=False")
        if max_tokens > llm.n_batch:
            raise ValueError(f"max_tokens {max_tokens} exceeds the context's n_batch {llm.n_batch}")
        self.llm = llm
        info = llm.model_info
        self.n_layer, self.n_ff = info.n_layer, info.n_ff
        self.w_norm = all_column_norms(info.path)
        self.max_tokens = max_tokens
        self._cached: list[int] = []
        every = np.arange(self.n_ff, dtype=np.int32)
        for layer in range(self.n_layer):
            llm.monitor.watch(layer, every)
        llm.monitor.set_capture(_monitor.ROWS_ALL, max_tokens)

    def _reuse_prefix(self, tokens: list[int], first: int) -> int:
        """Keep the cached positions shared with the previous capture, up to first.

        Few-shot prompts share a long header, so only the question, the answer
        and the rows to capture are decoded again. Returns the number of
        positions kept; 0 clears the cache.
        """
        common = 0
        for a, b in zip(self._cached, tokens):
            if a != b:
                break
            common += 1
        reuse = min(common, first)
        if reuse > 0 and self.llm._ctx.kv_cache_seq_rm(-1, reuse, -1):
            return reuse
        self.llm._ctx.kv_cache_clear()
        return 0

    def capture(self, prompt_tokens: list[int], answer_tokens: list[int]) -> Capture:
        """Decode prompt + answer and return CETT at the answer-producing positions."""
        llm = self.llm
        prompt_tokens, answer_tokens = list(prompt_tokens), list(answer_tokens)
        if not prompt_tokens or not answer_tokens:
            raise ValueError("teacher forcing needs a non-empty prompt and a non-empty answer")
        tokens = prompt_tokens + answer_tokens
        n_prompt, n_answer = len(prompt_tokens), len(answer_tokens)
        if len(tokens) > self.max_tokens:
            raise ValueError(f"prompt + answer is {len(tokens)} tokens; the capture holds {self.max_tokens}")
        first = n_prompt - 1
        with llm._request_lock:
            reuse = self._reuse_prefix(tokens, first)
            llm.monitor.rewind()
            batch = llm._batch.batch
            batch.n_tokens = len(tokens) - reuse
            for i, token in enumerate(tokens[reuse:]):
                position = reuse + i
                batch.token[i] = token
                batch.pos[i] = position
                batch.seq_id[i][0] = 0
                batch.n_seq_id[i] = 1
                batch.logits[i] = first <= position < first + n_answer
            llm._ctx.decode(llm._batch)
            self._cached = tokens
            llm.n_tokens = 0  # llama_cpp.Llama must not reuse this cache for generation
            llm.monitor.raise_for_status()

            entropy = np.empty(n_answer)
            logprob = np.empty(n_answer)
            for k in range(n_answer):
                address = ctypes.cast(llm._ctx.get_logits_ith(first - reuse + k), ctypes.c_void_p).value
                _, entropy[k], logprob[k], _ = llm.monitor.logit_stats(address, llm.n_vocab(), answer_tokens[k])

            rows = np.empty((n_answer, self.n_layer * self.n_ff), dtype=np.float32)
            decoded = len(tokens) - reuse
            for layer in range(self.n_layer):
                z = llm.monitor.z(layer)
                h = llm.monitor.h_norm(layer)
                if len(h) == decoded:
                    start = first - reuse
                    z, h = z[start:start + n_answer], h[start:start + n_answer]
                elif len(h) != n_answer:
                    raise RuntimeError(
                        f"layer {layer} produced {len(h)} rows for {decoded} decoded tokens and "
                        f"{n_answer} outputs"
                    )
                rows[:, layer * self.n_ff:(layer + 1) * self.n_ff] = cett(z, h, self.w_norm[layer])
        return Capture(rows=rows, entropy=entropy, logprob=logprob)
