"""``hnggml.Llama``: llama_cpp.Llama with a hallucination risk on every answer.

The class takes every llama_cpp.Llama argument unchanged. Each completion,
chat completion and the last chunk of each stream carries one extra key,
``"hnggml"``, holding the response's risk and the signals behind it (see
:meth:`Llama.report_schema`).

How rows line up with tokens: llama.cpp samples token i from the logits of
one position, and hnggml scores token i with the FFN activations of that same
position. The monitor keeps the last token row of every decode, which is the
position whose logits the next sample() call reads, so every sampled token
gets exactly the row that produced it, also when the prompt came from the
prefix cache and no decode ran for this request.

Trap: llama.cpp reuses a cached prompt prefix. Activations of cached tokens
were computed under the neuron scale in force at the time, so changing the
scale with :meth:`Llama.set_neuron_scale` clears the cache.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import llama_cpp
import llama_cpp.llama_cpp as llama_cpp_lib
import numpy as np

from . import _monitor, abstain
from .errors import ProbeMismatchError
from .features import aggregate, logit_signals
from .models import resolve_model
from .names import check_graph, ffn_nodes
from .paths import probes_dir
from .probe import HProbe
from .weights import ModelInfo, model_info

logger = logging.getLogger(__name__)

# Llama.__init__ reads llama_context_default_params() through the module at
# call time; the patch that adds cb_eval must not race another constructor.
_PARAMS_PATCH_LOCK = threading.Lock()

_ABSTAIN_TEXT = "I don't know."


@dataclass
class _Request:
    """Per-request record of sampled tokens and the rows that produced them."""

    prompt_tokens: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    rows: list[np.ndarray] = field(default_factory=list)
    entropy: list[float] = field(default_factory=list)
    logprob: list[float] = field(default_factory=list)


def find_bundled_probe(info: ModelInfo, folder: Path | None = None) -> Path | None:
    """Return the shipped probe trained on this exact model, if there is one."""
    folder = folder or probes_dir()
    for path in sorted(Path(folder).glob("*.json")):
        try:
            probe = HProbe.load(path)
        except (OSError, ValueError) as exc:
            logger.warning("skipping unreadable probe %s: %s", path, exc)
            continue
        if probe.model.get("ffn_down_sha256") == info.ffn_down_sha256:
            return path
    return None


class Llama(llama_cpp.Llama):
    """llama_cpp.Llama whose answers carry a hallucination risk from H-neurons.

    Extra keyword-only arguments:

    probe: path of a probe file; None picks the shipped probe trained on this
        model (an error names the model when there is none); False runs the
        monitor without a probe (capture only, no risk).
    risk_threshold: risk at or above which an answer is flagged; defaults to
        the probe's threshold.
    neuron_scale: factor applied to the probe's neurons at every position
        (1.0 changes nothing).
    abstain_above: when set, an answer whose risk is at or above it is
        replaced by a marked "I don't know" (the original text is kept in
        the report). A chat message that calls a tool is kept. In a stream
        the text has already been sent, so only the last chunk's report is
        marked. hnggml.abstain describes this and the "i_dont_know" tool
        that create_chat_completion(..., abstain_tool=True) offers.
    token_risks: add a per-token risk list to each report.

    ``model_path`` may be None (the embedded Gemma 3 270M), a .gguf path or
    "ollama:NAME[:TAG]".
    """

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        *args: Any,
        probe: str | os.PathLike | HProbe | None | bool = None,
        risk_threshold: float | None = None,
        neuron_scale: float = 1.0,
        abstain_above: float | None = None,
        token_risks: bool = False,
        **kwargs: Any,
    ) -> None:
        path = resolve_model(model_path)
        self.model_info = model_info(path)
        self.nodes = ffn_nodes(self.model_info.architecture, llama_cpp.__version__)
        self.probe = self._load_probe(probe)
        self.risk_threshold = self._check_unit("risk_threshold", risk_threshold)
        self.abstain_above = self._check_unit("abstain_above", abstain_above)
        self.token_risks = bool(token_risks)
        self._request_lock = threading.RLock()
        self._request: _Request | None = None
        self.last_request: _Request | None = None
        self.last_report: dict[str, Any] | None = None

        info = self.model_info
        self.monitor = _monitor.Monitor(info.n_layer, info.n_ff, info.n_embd, self.nodes.z, self.nodes.h)
        self._groups = self.probe.layer_neurons() if self.probe is not None else {}
        for layer, (neurons, _) in self._groups.items():
            self.monitor.watch(layer, neurons)
        self.monitor.set_capture(_monitor.ROWS_LAST)
        n_gpu_layers = kwargs.get("n_gpu_layers", 0)
        self.monitor.set_host_memory(n_gpu_layers == 0 or not llama_cpp_lib.llama_supports_gpu_offload())
        self.monitor.set_enabled(True)

        self._init_with_callback(str(path), args, kwargs)
        self._fit_buffers_to_context()
        self._discover_graph()
        self._neuron_scale = 1.0
        self.set_neuron_scale(neuron_scale)

    # Construction -----------------------------------------------------------

    @classmethod
    def from_ollama(cls, name: str, **kwargs: Any) -> "Llama":
        """Load a model pulled with Ollama, e.g. ``Llama.from_ollama("gemma3:270m", probe=...)``.

        ``name`` is ``[host/][namespace/]model[:tag]`` (an ``ollama:`` prefix
        is accepted too); the store is $OLLAMA_MODELS, else ~/.ollama/models.
        """
        if not isinstance(name, str):
            raise TypeError(f"from_ollama needs the Ollama model name as a string such as 'gemma3:270m', "
                            f"got {type(name).__name__}")
        if not name.strip():
            raise ValueError(f"from_ollama needs an Ollama model name such as 'gemma3:270m', got {name!r}")
        if name.startswith("ollama:"):
            name = name[len("ollama:"):]
        return cls(model_path=f"ollama:{name}", **kwargs)

    @staticmethod
    def _check_unit(name: str, value: float | None) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
        return float(value)

    def _load_probe(self, probe: str | os.PathLike | HProbe | None | bool) -> HProbe | None:
        if probe is False:
            return None
        if isinstance(probe, HProbe):
            loaded = probe
        elif probe is None or probe is True:
            found = find_bundled_probe(self.model_info)
            if found is None:
                raise ProbeMismatchError(
                    f"no shipped probe matches the model {self.model_info.name!r} "
                    f"({self.model_info.architecture}, {Path(self.model_info.path).name}); "
                    "train one with `hnggml train --model ...` and pass probe=PATH, or pass "
                    "probe=False to run without a risk"
                )
            loaded = HProbe.load(found)
        else:
            loaded = HProbe.load(probe)
        loaded.check_model(self.model_info)
        return loaded

    def _init_with_callback(self, path: str, args: tuple, kwargs: dict) -> None:
        callback = self.monitor.ctypes_callback(llama_cpp_lib.ggml_backend_sched_eval_callback)
        user_data = self.monitor.ctypes_user_data()

        with _PARAMS_PATCH_LOCK:
            # Read the function under the lock. Read earlier, it could be
            # another thread's patch, which this thread would then restore
            # for good, and every later context would call that monitor.
            original = llama_cpp_lib.llama_context_default_params

            def params_with_callback():
                params = original()
                params.cb_eval = callback
                params.cb_eval_user_data = user_data
                return params

            llama_cpp_lib.llama_context_default_params = params_with_callback
            try:
                super().__init__(path, *args, **kwargs)
            except ValueError as exc:
                # llama-cpp-python 0.3.36 gives no reason; llama.cpp logs it.
                if str(exc).startswith("Failed to load model from file"):
                    raise ValueError(
                        f"{exc}; llama.cpp rejected the model (its GGUF header is readable); "
                        "pass verbose=True to see llama.cpp's reason"
                    ) from exc
                raise
            finally:
                llama_cpp_lib.llama_context_default_params = original
        if not self.context_params.cb_eval:
            raise RuntimeError("failed to install the eval callback in the llama.cpp context")
        self._callback_ref = callback

    def _fit_buffers_to_context(self) -> None:
        """Grow the token and score buffers to the context llama.cpp created.

        llama-cpp-python 0.3.36 sizes them by the n_ctx argument, but llama.cpp
        may pad the context (n_ctx=128 becomes 256), and a prompt longer than
        the argument would then fail after its decode.
        """
        n_ctx = self.n_ctx()
        if len(self.input_ids) < n_ctx:
            input_ids = np.zeros(n_ctx, dtype=self.input_ids.dtype)
            input_ids[: len(self.input_ids)] = self.input_ids
            self.input_ids = input_ids
        if self._logits_all and len(self.scores) < n_ctx:
            scores = np.zeros((n_ctx, self.scores.shape[1]), dtype=self.scores.dtype)
            scores[: len(self.scores)] = self.scores
            self.scores = scores

    def _discover_graph(self) -> None:
        """Decode one token with discovery on and check the node names."""
        self.monitor.set_discovery(True)
        try:
            token = self.token_bos() if self.token_bos() >= 0 else 0
            self._batch.set_batch(batch=[token], n_past=0, logits_all=False)
            self._ctx.decode(self._batch)
            seen = self.monitor.discovered()
        finally:
            self.monitor.set_discovery(False)
            self._clear_cache()
        check_graph(self.model_info.architecture, self.nodes, self.model_info.n_layer, seen)
        self.monitor.rewind()

    def _clear_cache(self, rewind: bool = True) -> None:
        self._ctx.kv_cache_clear()
        self.n_tokens = 0
        self._requires_eval = True
        if rewind:
            self.monitor.rewind()

    # Intervention -------------------------------------------------------------

    @property
    def neuron_scale(self) -> float:
        return self._neuron_scale

    def set_neuron_scale(self, alpha: float, neurons: np.ndarray | None = None) -> None:
        """Multiply neurons by alpha at every position from now on.

        neurons is an (n, 2) array of (layer, neuron) pairs; None means the
        probe's neurons. The KV cache is cleared whenever the scale changes,
        so no cached position computed under another scale is reused.
        """
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha < 0:
            raise ValueError(f"neuron_scale must be a finite number >= 0, got {alpha!r}")
        if neurons is None:
            if self.probe is None:
                if alpha != 1.0:
                    raise ValueError("neuron_scale needs a probe (or explicit neurons) to know which neurons to scale")
                return
            neurons = self.probe.neurons_
        neurons = np.asarray(neurons, dtype=np.int64).reshape(-1, 2)
        info = self.model_info
        if len(neurons) and (neurons[:, 0].min() < 0 or neurons[:, 0].max() >= info.n_layer
                             or neurons[:, 1].min() < 0 or neurons[:, 1].max() >= info.n_ff):
            raise ValueError(
                f"neurons must be (layer, neuron) pairs with layer in [0, {info.n_layer}) and "
                f"neuron in [0, {info.n_ff})"
            )
        with self._request_lock:
            for layer in range(info.n_layer):
                chosen = neurons[neurons[:, 0] == layer, 1].astype(np.int32)
                self.monitor.scale(layer, chosen, float(alpha))
            changed = alpha != self._neuron_scale or not np.array_equal(neurons, getattr(self, "_scaled", neurons))
            self._neuron_scale = float(alpha)
            self._scaled = neurons
            if changed:
                self._clear_cache()

    # Recording ----------------------------------------------------------------

    def sample(self, *args: Any, **kwargs: Any) -> int:
        self._processor_error = None
        token = super().sample(*args, **kwargs)
        error, self._processor_error = self._processor_error, None
        if error is not None:
            raise error
        if self._request is not None:
            self._record(token)
        return token

    def _init_sampler(self, *args: Any, logits_processor: Any = None, **kwargs: Any):
        # llama-cpp-python 0.3.36 calls logits processors from a ctypes
        # callback, which prints and drops any exception, KeyboardInterrupt
        # included, and samples on. The wrapper stores the first exception
        # and sample() raises it once the sampler returns.
        if logits_processor is not None:
            logits_processor = [self._guard_processor(p) for p in logits_processor]
        return super()._init_sampler(*args, logits_processor=logits_processor, **kwargs)

    def _guard_processor(self, processor: Any):
        def guarded(input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
            if getattr(self, "_processor_error", None) is not None:
                return scores
            try:
                return processor(input_ids, scores)
            except BaseException as exc:  # noqa: BLE001 - re-raised by sample()
                self._processor_error = exc
                return scores

        return guarded

    def _record(self, token: int) -> None:
        self.monitor.raise_for_status()
        request = self._request
        if not request.tokens:
            request.prompt_tokens = [int(t) for t in self._input_ids[: self.n_tokens]]
        request.tokens.append(int(token))
        if self.probe is not None:
            z = {layer: self.monitor.z(layer) for layer in self._groups}
            h = {layer: self.monitor.h_norm(layer) for layer in self._groups}
            rows = self.probe.cett_rows(z, h)
            request.rows.append(rows[-1] if len(rows) else np.zeros(self.probe.n_neurons, np.float32))
        logits = self._ctx.get_logits_ith(-1)
        address = ctypes.cast(logits, ctypes.c_void_p).value
        _, entropy, logprob, _ = self.monitor.logit_stats(address, self.n_vocab(), int(token))
        request.entropy.append(entropy)
        request.logprob.append(logprob)

    def _answer_length(self, request: _Request, text: str) -> int:
        """Count the sampled tokens that contribute to the returned text.

        An end-of-generation token and the tokens of a stop sequence that was
        cut from the text are not part of the answer.
        """
        kept = 0
        produced = b""
        target = len(text.encode("utf-8"))
        for token in request.tokens:
            if len(produced) >= target or llama_cpp_lib.llama_vocab_is_eog(self._model.vocab, token):
                break
            produced += self.detokenize([token])
            kept += 1
        return kept

    def _report(self, request: _Request, text: str) -> dict[str, Any]:
        n = self._answer_length(request, text)
        # An empty answer is scored on the row that produced its first token.
        k = max(n, 1) if request.tokens else 0
        signals = logit_signals(np.array(request.entropy[:k]), np.array(request.logprob[:k]))
        report: dict[str, Any] = {"risk": None, "flagged": False, "n_tokens": n, "signals": signals}
        if self.probe is None or k == 0:
            return report
        rows = np.stack(request.rows[:k])
        features = aggregate(rows, self.probe.aggregation)[None, :]
        columns = {name: np.array([value]) for name, value in signals.items()}
        h_logit = float(self.probe.h_logit(features)[0])
        risk = float(self.probe.predict_proba(features, columns)[0, 1])
        threshold = self.risk_threshold if self.risk_threshold is not None else self.probe.threshold
        report.update(
            risk=risk,
            flagged=risk >= threshold,
            threshold=threshold,
            signals={**signals, "h_neurons": float(1.0 / (1.0 + math.exp(-h_logit)))},
        )
        if self.token_risks:
            logits = self.probe.h_logit(rows)
            pieces = [self.detokenize([t]).decode("utf-8", "replace") for t in request.tokens[:k]]
            report["tokens"] = [
                {"token": piece, "risk": float(1.0 / (1.0 + math.exp(-x)))} for piece, x in zip(pieces, logits)
            ]
        return report

    def _abstain(self, report: dict[str, Any]) -> bool:
        return (
            self.abstain_above is not None
            and report.get("risk") is not None
            and report["risk"] >= self.abstain_above
        )

    # Completions ----------------------------------------------------------------

    @contextlib.contextmanager
    def _recording(self) -> Iterator[_Request]:
        with self._request_lock:
            self.monitor.raise_for_status()
            request = _Request()
            self._request = request
            try:
                yield request
            except ValueError as exc:
                # llama-cpp-python 0.3.36 names the sizes but not the fix.
                if str(exc).startswith("Requested tokens ("):
                    raise ValueError(f"{exc}; shorten the prompt or create the Llama with a larger n_ctx") from exc
                raise
            finally:
                # A stream that is closed late (abandoned, then garbage
                # collected) must not clear the request that replaced it.
                if self._request is request:
                    self._request = None
                    self.last_request = request

    def create_completion(self, prompt: Any, *args: Any, **kwargs: Any):
        if kwargs.get("stream", False):
            return self._stream_completion(prompt, args, kwargs)
        with self._recording() as request:
            result = super().create_completion(prompt, *args, **kwargs)
            choice = result["choices"][0]
            report = self._report(request, choice["text"])
            if self._abstain(report):
                report["abstained"] = True
                report["original_text"] = choice["text"]
                # Inside a chat completion the text may be a tool call's
                # arguments, so abstain.finish_chat decides on the message.
                if not getattr(self, "_in_chat", False):
                    choice["text"] = _ABSTAIN_TEXT
                    choice["finish_reason"] = "abstain"
            result["hnggml"] = report
            self.last_report = report
            return result

    def _stream_completion(self, prompt: Any, args: tuple, kwargs: dict):
        with self._recording() as request:
            text = []
            for chunk in super().create_completion(prompt, *args, **kwargs):
                choice = chunk["choices"][0]
                text.append(choice.get("text") or "")
                if choice.get("finish_reason") is not None:
                    report = self._report(request, "".join(text))
                    if self._abstain(report):
                        report["abstained"] = True
                        report["original_text"] = "".join(text)
                    chunk["hnggml"] = report
                    self.last_report = report
                yield chunk

    def create_chat_completion(self, *args: Any, **kwargs: Any):
        """Run llama_cpp's chat completion. ``abstain_tool=True`` offers the "i_dont_know" tool (see hnggml.abstain)."""
        abstain_tool = abstain.prepare_chat_kwargs(args, kwargs)
        if kwargs.get("stream", False):
            return self._stream_chat(args, kwargs)
        with self._request_lock:
            self.last_report = None
            self._in_chat = True
            try:
                result = super().create_chat_completion(*args, **kwargs)
            finally:
                self._in_chat = False
            report = self.last_report
            if report is not None:
                abstain.finish_chat(self, result, report, abstain_tool)
                result["hnggml"] = report
            return result

    def _stream_chat(self, args: tuple, kwargs: dict):
        with self._request_lock:
            self.last_report = None
            for chunk in super().create_chat_completion(*args, **kwargs):
                if chunk["choices"] and chunk["choices"][0].get("finish_reason") is not None:
                    if self.last_report is not None:
                        chunk["hnggml"] = self.last_report
                yield chunk

    # Lifetime -------------------------------------------------------------------

    def close(self) -> None:
        if not hasattr(self, "_stack"):  # __init__ failed before llama_cpp set up its resources
            return
        super().close()
        # The context is gone, so nothing calls the monitor any more.
        self._callback_ref = None

    @staticmethod
    def report_schema() -> dict[str, str]:
        """Describe the keys of the "hnggml" report attached to each response."""
        return {
            "risk": "probability in [0, 1] that the answer is a hallucination; None without a probe",
            "flagged": "True when risk >= threshold",
            "threshold": "the threshold used for flagged",
            "n_tokens": "answer tokens scored (stop sequences and end-of-generation excluded)",
            "signals": "h_neurons (neuron stage alone), entropy, neg_logprob, one_minus_min_prob, n_tokens",
            "tokens": "per-token risks, when token_risks=True",
            "abstained": "True when abstain_above replaced the answer; original_text keeps it",
            "abstain_tool_call": "True when abstain_tool=True replaced a chat answer by an i_dont_know tool call",
        }
