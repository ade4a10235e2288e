"""Load the C monitor with cffi and connect it to llama.cpp's ggml library.

This module owns every call into ``libhnggml_monitor``: the rest of the
package goes through :class:`Monitor`.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading
from pathlib import Path

import numpy as np
from cffi import FFI

from .errors import MonitorError

logger = logging.getLogger(__name__)

ROWS_LAST = 0
ROWS_ALL = 1

_STATUS_MESSAGES = {
    1: "a watched FFN node has an unexpected width",
    2: "a watched FFN node is not a contiguous float32 tensor",
    3: "more token rows than the capture buffer holds",
    4: "the ffn_down output was computed without its input node",
    5: "invalid argument",
}

# ggml functions the monitor calls, in the field order of hn_ggml_api.
_GGML_FUNCTIONS = (
    ("get_name", "ggml_get_name"),
    ("op_desc", "ggml_op_desc"),
    ("nelements", "ggml_nelements"),
    ("nrows", "ggml_nrows"),
    ("element_size", "ggml_element_size"),
    ("is_contiguous", "ggml_is_contiguous"),
    ("get_data", "ggml_get_data"),
    ("tensor_get", "ggml_backend_tensor_get"),
    ("tensor_set", "ggml_backend_tensor_set"),
)

_lock = threading.Lock()
_loaded: tuple[FFI, object, object] | None = None


def _package_dir() -> Path:
    return Path(__file__).resolve().parent


def _header_path() -> Path:
    installed = _package_dir() / "hnggml_monitor.h"
    if installed.exists():
        return installed
    return _package_dir().parents[1] / "csrc" / "hnggml_monitor.h"


def _library_path() -> Path:
    override = os.environ.get("HNGGML_MONITOR_LIB")
    if override:
        return Path(override)
    names = {
        "darwin": ("libhnggml_monitor.dylib",),
        "win32": ("hnggml_monitor.dll", "libhnggml_monitor.dll"),
    }.get(sys.platform, ("libhnggml_monitor.so",))
    for name in names:
        candidate = _package_dir() / name
        if candidate.exists():
            return candidate
    raise MonitorError(
        f"the C monitor library {names[0]} is missing from {_package_dir()}; "
        "reinstall hnggml with `pip install .` so that CMake builds it"
    )


def _cdef_text(header: Path) -> str:
    text = header.read_text()
    start = text.index("/* cdef-begin")
    start = text.index("*/", start) + 2
    end = text.index("/* cdef-end */")
    return text[start:end]


def _ggml_base_library() -> ctypes.CDLL:
    """Return the ggml-base library that llama_cpp has already loaded."""
    import llama_cpp

    lib_dir = Path(llama_cpp.__file__).resolve().parent / "lib"
    patterns = {
        "darwin": ("libggml-base.dylib",),
        "win32": ("ggml-base.dll",),
    }.get(sys.platform, ("libggml-base.so",))
    for pattern in patterns:
        for candidate in sorted(lib_dir.glob(pattern + "*")):
            # Opening a library that is already loaded returns the same handle,
            # so these are the very functions llama.cpp calls.
            return ctypes.CDLL(str(candidate))
    raise MonitorError(
        f"ggml-base library not found in {lib_dir}; reinstall llama-cpp-python"
    )


def load() -> tuple[FFI, object, object]:
    """Return (ffi, monitor library, hn_ggml_api struct), loading them once."""
    global _loaded
    with _lock:
        if _loaded is None:
            ffi = FFI()
            ffi.cdef(_cdef_text(_header_path()))
            lib = ffi.dlopen(str(_library_path()))
            ggml = _ggml_base_library()
            api = ffi.new("hn_ggml_api *")
            field_types = dict(ffi.typeof("hn_ggml_api").fields)
            for field, symbol in _GGML_FUNCTIONS:
                try:
                    address = ctypes.cast(getattr(ggml, symbol), ctypes.c_void_p).value
                except AttributeError:
                    raise MonitorError(
                        f"{symbol} is missing from {ggml._name}; this llama-cpp-python "
                        "build is not supported"
                    ) from None
                setattr(api, field, ffi.cast(field_types[field].type, address))
            _loaded = (ffi, lib, api)
        return _loaded


class Monitor:
    """One C monitor, tied to one llama.cpp context.

    The monitor and its buffers must outlive the context that calls it:
    keep the Monitor referenced for as long as the context exists.
    """

    def __init__(self, n_layer: int, n_ff: int, n_embd: int, z_prefix: str, h_prefix: str):
        self._ffi, self._lib, api = load()
        ptr = self._lib.hn_monitor_new(
            api, n_layer, n_ff, n_embd, z_prefix.encode(), h_prefix.encode()
        )
        if ptr == self._ffi.NULL:
            raise MonitorError(
                f"failed to create the monitor for n_layer={n_layer}, n_ff={n_ff}, "
                f"n_embd={n_embd}, nodes {z_prefix!r}/{h_prefix!r}"
            )
        self._ptr = self._ffi.gc(ptr, self._lib.hn_monitor_free)
        self.n_layer = n_layer
        self.n_ff = n_ff
        self.n_embd = n_embd
        self._watched: dict[int, np.ndarray] = {}
        self._stats_out = self._ffi.new("float[4]")

    # The callback crosses from cffi into ctypes here: llama_cpp declares
    # cb_eval as a ctypes CFUNCTYPE, so the C function's address from cffi
    # becomes a ctypes function pointer, and the monitor's address becomes
    # the c_void_p user data. Neither side calls back into Python.
    def ctypes_callback(self, prototype):
        address = int(self._ffi.cast("uintptr_t", self._lib.hn_monitor_callback))
        return prototype(address)

    def ctypes_user_data(self) -> ctypes.c_void_p:
        return ctypes.c_void_p(int(self._ffi.cast("uintptr_t", self._ptr)))

    def _check(self, rc: int, what: str) -> None:
        if rc != 0:
            raise MonitorError(f"failed to {what}: {_STATUS_MESSAGES.get(rc, rc)}")

    def watch(self, layer: int, neurons: np.ndarray) -> None:
        idx = np.ascontiguousarray(neurons, dtype=np.int32)
        buf = self._ffi.cast("int32_t *", idx.ctypes.data)
        self._check(self._lib.hn_monitor_watch(self._ptr, layer, buf, len(idx)), f"watch layer {layer}")
        if len(idx):
            self._watched[layer] = idx.copy()
        else:
            self._watched.pop(layer, None)

    def scale(self, layer: int, neurons: np.ndarray, factor: float) -> None:
        idx = np.ascontiguousarray(neurons, dtype=np.int32)
        buf = self._ffi.cast("int32_t *", idx.ctypes.data)
        rc = self._lib.hn_monitor_scale(self._ptr, layer, buf, len(idx), float(factor))
        self._check(rc, f"scale layer {layer}")

    def set_host_memory(self, host: bool) -> None:
        self._check(self._lib.hn_monitor_set_host_memory(self._ptr, host), "set the memory mode")

    def set_capture(self, mode: int, capacity: int = 1) -> None:
        rc = self._lib.hn_monitor_set_capture(self._ptr, mode, capacity)
        self._check(rc, f"allocate capture buffers for {capacity} rows")

    def set_enabled(self, enabled: bool) -> None:
        self._lib.hn_monitor_set_enabled(self._ptr, enabled)

    def rewind(self) -> None:
        self._lib.hn_monitor_rewind(self._ptr)

    def raise_for_status(self) -> None:
        status = self._lib.hn_monitor_status(self._ptr)
        if status != 0:
            self._lib.hn_monitor_rewind(self._ptr)
            raise MonitorError(f"the monitor stopped capturing: {_STATUS_MESSAGES.get(status, status)}")

    @property
    def watched(self) -> dict[int, np.ndarray]:
        return self._watched

    def rows(self, layer: int) -> int:
        return int(self._lib.hn_monitor_rows(self._ptr, layer))

    def calls(self, layer: int) -> int:
        return int(self._lib.hn_monitor_calls(self._ptr, layer))

    def z(self, layer: int) -> np.ndarray:
        """Return the captured z rows of a layer as a (rows, n_watched) view."""
        n = len(self._watched.get(layer, ()))
        rows = self.rows(layer)
        if n == 0 or rows == 0:
            return np.zeros((0, n), dtype=np.float32)
        ptr = self._lib.hn_monitor_z(self._ptr, layer)
        buf = self._ffi.buffer(ptr, rows * n * 4)
        return np.frombuffer(buf, dtype=np.float32).reshape(rows, n)

    def h_norm(self, layer: int) -> np.ndarray:
        rows = self.rows(layer)
        if rows == 0:
            return np.zeros(0, dtype=np.float32)
        ptr = self._lib.hn_monitor_h_norm(self._ptr, layer)
        return np.frombuffer(self._ffi.buffer(ptr, rows * 4), dtype=np.float32)

    def set_discovery(self, on: bool) -> None:
        self._lib.hn_monitor_set_discovery(self._ptr, on)

    def discovered(self) -> list[tuple[str, str]]:
        out = []
        for i in range(self._lib.hn_monitor_discovered(self._ptr)):
            name = self._ffi.string(self._lib.hn_monitor_discovered_name(self._ptr, i)).decode()
            op = self._ffi.string(self._lib.hn_monitor_discovered_op(self._ptr, i)).decode()
            out.append((name, op))
        return out

    def logit_stats(self, logits_address: int, n_vocab: int, token: int) -> tuple[float, float, float, float]:
        """Return (log-sum-exp, entropy, log p(token), max log p) of one logits row."""
        ptr = self._ffi.cast("float *", logits_address)
        self._lib.hn_logit_stats(ptr, n_vocab, token, self._stats_out)
        out = self._stats_out
        return float(out[0]), float(out[1]), float(out[2]), float(out[3])


def logit_stats(logits: np.ndarray, token: int) -> tuple[float, float, float, float]:
    """Compute :meth:`Monitor.logit_stats` for a numpy row, without a monitor."""
    ffi, lib, _ = load()
    row = np.ascontiguousarray(logits, dtype=np.float32)
    out = ffi.new("float[4]")
    lib.hn_logit_stats(ffi.cast("float *", row.ctypes.data), len(row), token, out)
    return float(out[0]), float(out[1]), float(out[2]), float(out[3])
