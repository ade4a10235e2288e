"""The H-neuron capture of hnggml.Llama, done by a pure-Python ctypes callback.

This is the benchmark's yardstick for the C monitor, not part of the package.
The callback requests the same nodes as csrc/hnggml_monitor.c (one per watched
layer: the ffn_down output h), notes the ffn_down input z during the ask
phase, and in the data phase copies the last token row of z and of h with
ggml_backend_tensor_get, keeps the probe's neurons of z and computes ||h||
in double precision. It runs the same shape and type checks as the C
monitor, calling the same ggml functions through ctypes.

Per sampled token, :class:`PythonCallbackLlama` then does what hnggml.Llama
does in Python: CETT rows through HProbe.cett_rows and the logit statistics
through the same C function (hn_logit_stats). At the end of a completion it
scores the response the same way. The only difference from hnggml.Llama is
the language of the eval callback, so the two overheads compare directly.
"""

from __future__ import annotations

import ctypes
import math
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

import llama_cpp
import llama_cpp.llama_cpp as llama_cpp_lib
import numpy as np

from hnggml import _monitor
from hnggml.features import aggregate, logit_signals
from hnggml.names import ffn_nodes
from hnggml.probe import HProbe
from hnggml.weights import model_info

# Views, reshapes and copies repeat the name of their source; the C monitor
# skips the same ops.
_PASS_THROUGH_OPS = {b"VIEW", b"RESHAPE", b"PERMUTE", b"TRANSPOSE", b"NONE", b"CPY"}

_PARAMS_PATCH_LOCK = threading.Lock()


def _load_ggml_base() -> ctypes.CDLL:
    """Open the ggml-base library that llama_cpp has loaded and declare its prototypes."""
    lib_dir = Path(llama_cpp.__file__).resolve().parent / "lib"
    pattern = {"darwin": "libggml-base.dylib*", "win32": "ggml-base.dll"}.get(sys.platform, "libggml-base.so*")
    candidates = sorted(lib_dir.glob(pattern))
    if not candidates:
        raise FileNotFoundError(f"ggml-base library not found in {lib_dir}; reinstall llama-cpp-python")
    lib = ctypes.CDLL(str(candidates[0]))
    pointer = [ctypes.c_void_p]
    for name, restype in (
        ("ggml_get_name", ctypes.c_char_p),
        ("ggml_op_desc", ctypes.c_char_p),
        ("ggml_nelements", ctypes.c_int64),
        ("ggml_nrows", ctypes.c_int64),
        ("ggml_element_size", ctypes.c_size_t),
        ("ggml_is_contiguous", ctypes.c_bool),
    ):
        function = getattr(lib, name)
        function.restype = restype
        function.argtypes = pointer
    lib.ggml_backend_tensor_get.restype = None
    lib.ggml_backend_tensor_get.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]
    return lib


class PythonCapture:
    """Last-row capture of the probe's neurons and of ||h|| for each watched layer."""

    def __init__(self, probe: HProbe, n_ff: int, n_embd: int, z_prefix: str, h_prefix: str) -> None:
        self.n_ff = n_ff
        self.n_embd = n_embd
        self.groups = probe.layer_neurons()
        self.z = {layer: np.zeros((1, len(neurons)), dtype=np.float32) for layer, (neurons, _) in self.groups.items()}
        self.h_norm = {layer: np.zeros(1, dtype=np.float32) for layer in self.groups}
        self.error: str | None = None
        self._z_node: dict[int, int | None] = dict.fromkeys(self.groups)
        # Node name -> (is the h node, layer); every other name is ignored.
        self._names: dict[bytes, tuple[bool, int]] = {}
        for layer in self.groups:
            self._names[f"{z_prefix}-{layer}".encode()] = (False, layer)
            self._names[f"{h_prefix}-{layer}".encode()] = (True, layer)
        self._ggml = _load_ggml_base()
        self._z_buf = np.zeros(n_ff, dtype=np.float32)
        self._h_buf = np.zeros(n_embd, dtype=np.float32)
        self._h_double = np.zeros(n_embd, dtype=np.float64)
        self.callback = llama_cpp_lib.ggml_backend_sched_eval_callback(self._make_callback())

    def _make_callback(self):
        # Locals instead of attribute look-ups: the reference should be as
        # fast as plain Python reasonably gets, so the comparison is fair.
        ggml = self._ggml
        get_name, op_desc = ggml.ggml_get_name, ggml.ggml_op_desc
        nelements, nrows = ggml.ggml_nelements, ggml.ggml_nrows
        element_size, is_contiguous = ggml.ggml_element_size, ggml.ggml_is_contiguous
        tensor_get = ggml.ggml_backend_tensor_get
        names, z_node = self._names, self._z_node
        n_ff, n_embd = self.n_ff, self.n_embd
        z_buf, h_buf, h_double = self._z_buf, self._h_buf, self._h_double
        z_address, h_address = z_buf.ctypes.data, h_buf.ctypes.data
        watch = {layer: neurons for layer, (neurons, _) in self.groups.items()}
        z_out, h_out = self.z, self.h_norm
        capture = self

        def row_shape(t: int) -> tuple[int, int]:
            if element_size(t) != 4 or not is_contiguous(t):
                return -1, -1
            rows = nrows(t)
            return rows, (nelements(t) // rows if rows > 0 else 0)

        def callback(t: int, ask: bool, user_data: int) -> bool:
            try:
                hit = names.get(get_name(t))
                if ask:
                    if hit is None or op_desc(t) in _PASS_THROUGH_OPS:
                        return False
                    is_h, layer = hit
                    if not is_h:
                        z_node[layer] = t
                        return False
                    return True
                if hit is None or not hit[0]:
                    return True
                layer = hit[1]
                z = z_node[layer]
                z_node[layer] = None
                if z is None:
                    capture.error = f"layer {layer}: ffn_down output computed without its input node"
                    return True
                z_rows, z_width = row_shape(z)
                h_rows, h_width = row_shape(t)
                if z_rows < 0 or h_rows < 0:
                    capture.error = f"layer {layer}: FFN node is not a contiguous float32 tensor"
                    return True
                if z_rows != h_rows or (h_rows > 0 and (z_width != n_ff or h_width != n_embd)):
                    capture.error = f"layer {layer}: FFN node shapes {z_rows}x{z_width}, {h_rows}x{h_width}"
                    return True
                if h_rows == 0:
                    return True
                last = h_rows - 1
                tensor_get(z, z_address, last * n_ff * 4, n_ff * 4)
                tensor_get(t, h_address, last * n_embd * 4, n_embd * 4)
                np.take(z_buf, watch[layer], out=z_out[layer][0])
                np.copyto(h_double, h_buf)
                h_out[layer][0] = math.sqrt(float(h_double @ h_double))
                return True
            except Exception as exc:  # noqa: BLE001 - ctypes would print and drop it
                capture.error = f"{type(exc).__name__}: {exc}"
                # False in the data phase would skip the rest of the graph split.
                return not ask

        return callback


class PythonCallbackLlama(llama_cpp.Llama):
    """llama_cpp.Llama that scores each completion like hnggml.Llama, capturing in Python."""

    def __init__(self, model_path: str, *args: Any, probe: HProbe, **kwargs: Any) -> None:
        info = model_info(model_path)
        probe.check_model(info)
        nodes = ffn_nodes(info.architecture, llama_cpp.__version__)
        self.probe = probe
        self.capture = PythonCapture(probe, info.n_ff, info.n_embd, nodes.z, nodes.h)
        # A Monitor only for its logit_stats, the C call hnggml.Llama makes per token.
        self._stats = _monitor.Monitor(info.n_layer, info.n_ff, info.n_embd, nodes.z, nodes.h)
        self._recording = False
        self.tokens: list[int] = []
        self.rows: list[np.ndarray] = []
        self.entropy: list[float] = []
        self.logprob: list[float] = []
        self.last_score: dict[str, float] | None = None

        callback = self.capture.callback
        original = llama_cpp_lib.llama_context_default_params

        def params_with_callback():
            params = original()
            params.cb_eval = callback
            params.cb_eval_user_data = None
            return params

        with _PARAMS_PATCH_LOCK:
            llama_cpp_lib.llama_context_default_params = params_with_callback
            try:
                super().__init__(str(model_path), *args, **kwargs)
            finally:
                llama_cpp_lib.llama_context_default_params = original

    def sample(self, *args: Any, **kwargs: Any) -> int:
        token = super().sample(*args, **kwargs)
        if self._recording:
            self._record(int(token))
        return token

    def _record(self, token: int) -> None:
        if self.capture.error is not None:
            raise RuntimeError(f"the Python capture failed: {self.capture.error}")
        self.tokens.append(token)
        rows = self.probe.cett_rows(self.capture.z, self.capture.h_norm)
        self.rows.append(rows[-1])
        address = ctypes.cast(self._ctx.get_logits_ith(-1), ctypes.c_void_p).value
        _, entropy, logprob, _ = self._stats.logit_stats(address, self.n_vocab(), token)
        self.entropy.append(entropy)
        self.logprob.append(logprob)

    def _start(self) -> None:
        self._recording = True
        self.tokens, self.rows, self.entropy, self.logprob = [], [], [], []

    def _finish(self) -> dict[str, float]:
        self._recording = False
        signals = logit_signals(np.array(self.entropy), np.array(self.logprob))
        score = {"risk": float("nan"), **signals}
        if self.rows:
            features = aggregate(np.stack(self.rows), self.probe.aggregation)[None, :]
            columns = {name: np.array([value]) for name, value in signals.items()}
            score["h_logit"] = float(self.probe.h_logit(features)[0])
            score["risk"] = float(self.probe.predict_proba(features, columns)[0, 1])
        self.last_score = score
        return score

    def create_completion(self, prompt: Any, *args: Any, **kwargs: Any):
        if kwargs.get("stream", False):
            return self._stream(prompt, args, kwargs)
        self._start()
        result = super().create_completion(prompt, *args, **kwargs)
        result["reference"] = self._finish()
        return result

    def _stream(self, prompt: Any, args: tuple, kwargs: dict) -> Iterator[dict]:
        self._start()
        for chunk in super().create_completion(prompt, *args, **kwargs):
            if chunk["choices"][0].get("finish_reason") is not None:
                chunk["reference"] = self._finish()
            yield chunk
