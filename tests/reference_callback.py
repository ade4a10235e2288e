"""A slow pure-Python eval callback that copies whole FFN tensors.

It is an independent reference for the C monitor: it uses only ctypes and
the public ggml functions, asks for both FFN nodes of the chosen layers and
copies each tensor in full with ggml_backend_tensor_get.
"""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

import llama_cpp
import llama_cpp.llama_cpp as llama_cpp_lib
import numpy as np


def _ggml_base() -> ctypes.CDLL:
    lib_dir = Path(llama_cpp.__file__).resolve().parent / "lib"
    path = next(iter(sorted(lib_dir.glob("libggml-base.*"))))
    lib = ctypes.CDLL(str(path))
    lib.ggml_get_name.restype = ctypes.c_char_p
    lib.ggml_get_name.argtypes = [ctypes.c_void_p]
    lib.ggml_op_desc.restype = ctypes.c_char_p
    lib.ggml_op_desc.argtypes = [ctypes.c_void_p]
    lib.ggml_nelements.restype = ctypes.c_int64
    lib.ggml_nelements.argtypes = [ctypes.c_void_p]
    lib.ggml_nrows.restype = ctypes.c_int64
    lib.ggml_nrows.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_tensor_get.restype = None
    lib.ggml_backend_tensor_get.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]
    return lib


class ReferenceCapture:
    """Copy every row of ``<z_prefix>-L`` and ``<h_prefix>-L`` for the given layers."""

    def __init__(self, layers, z_prefix: str = "ffn_geglu", h_prefix: str = "ffn_out") -> None:
        self.lib = _ggml_base()
        pattern = f"^({re.escape(z_prefix)}|{re.escape(h_prefix)})-(\\d+)$"
        self.pattern = re.compile(pattern)
        self.layers = set(layers)
        self.z_prefix = z_prefix
        self.tensors: list[tuple[str, int, np.ndarray]] = []
        self.callback = llama_cpp_lib.ggml_backend_sched_eval_callback(self._callback)

    def _match(self, t) -> tuple[str, int] | None:
        name = self.lib.ggml_get_name(t)
        if not name:
            return None
        found = self.pattern.match(name.decode())
        if not found or int(found.group(2)) not in self.layers:
            return None
        op = self.lib.ggml_op_desc(t).decode()
        if op in ("VIEW", "RESHAPE", "PERMUTE", "TRANSPOSE", "CPY", "NONE"):
            return None
        kind = "z" if found.group(1) == self.z_prefix else "h"
        return kind, int(found.group(2))

    def _callback(self, t, ask, user_data):
        matched = self._match(t)
        if ask:
            return matched is not None
        if matched is not None:
            n = self.lib.ggml_nelements(t)
            rows = self.lib.ggml_nrows(t)
            data = np.empty(n, dtype=np.float32)
            self.lib.ggml_backend_tensor_get(t, data.ctypes.data, 0, n * 4)
            self.tensors.append((matched[0], matched[1], data.reshape(rows, -1) if rows else data.reshape(0, 0)))
        return True

    def install(self):
        """Return a context manager that builds llama_cpp.Llama instances with this callback."""
        original = llama_cpp_lib.llama_context_default_params
        callback = self.callback

        class _Patch:
            def __enter__(self_inner):
                def params():
                    p = original()
                    p.cb_eval = callback
                    p.cb_eval_user_data = None
                    return p

                llama_cpp_lib.llama_context_default_params = params

            def __exit__(self_inner, *exc):
                llama_cpp_lib.llama_context_default_params = original

        return _Patch()
