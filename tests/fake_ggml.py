"""A fake ggml that drives the C monitor without llama.cpp, and a reference model of the monitor.

The monitor touches tensors only through the function pointers in
``hn_ggml_api``. :class:`FakeGGML` fills that struct with cffi callbacks over
Python :class:`FakeTensor` objects, so a test can build any graph (names, ops,
shapes, dtypes, missing nodes) and run the scheduler's two-phase protocol on
it with :meth:`FakeGGML.compute`. The callbacks check every
``ggml_backend_tensor_get``/``set`` range and record any violation in
``FakeGGML.errors``.

:class:`ReferenceMonitor` restates the contract of csrc/hnggml_monitor.h in
Python: what the monitor stores for each layer, its row and call counters,
its status codes and the scaling it writes into z. Tests feed the same
operations to both and compare.

The library is the one hnggml loads: $HNGGML_MONITOR_LIB, else the installed
copy. Nothing here imports llama_cpp.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from cffi import FFI

from hnggml import _monitor

OK, ERR_SHAPE, ERR_TYPE, ERR_CAPACITY, ERR_NO_INPUT, ERR_ARGUMENT = range(6)
ROWS_LAST, ROWS_ALL = 0, 1
MAX_CAPACITY = 1 << 24
DISCOVERY_MAX = 2048
NAME_MAX = 64
OP_MAX = 24
NON_COMPUTE_OPS = ("VIEW", "RESHAPE", "PERMUTE", "TRANSPOSE", "NONE", "CPY")


@dataclass(eq=False)
class FakeTensor:
    """A 2-D tensor as the monitor reads it: ``data`` contains one row per token.

    ``data`` has shape (n_rows, width), like a ggml tensor with ne0 = width
    and ne1 = n_rows. ``name`` None makes ggml_get_name return NULL and
    ``op`` None makes ggml_op_desc return NULL.
    """

    name: str | None
    op: str | None
    data: np.ndarray
    contiguous: bool = True
    _name_buf: object = field(default=None, repr=False)
    _op_buf: object = field(default=None, repr=False)
    _handle: object = field(default=None, repr=False)


class FakeGGML:
    """The ggml functions the monitor calls, implemented over FakeTensor objects."""

    def __init__(self, library: str | None = None) -> None:
        self.ffi = FFI()
        self.ffi.cdef(_monitor._cdef_text(_monitor._header_path()))
        self.lib = self.ffi.dlopen(str(library or _monitor._library_path()))
        self.errors: list[str] = []
        self._tensors: dict[int, FakeTensor] = {}
        self.api = self.ffi.new("hn_ggml_api *")
        field_types = dict(self.ffi.typeof("hn_ggml_api").fields)
        implementations = {
            "get_name": self._get_name,
            "op_desc": self._op_desc,
            "nelements": lambda t: int(self._tensor(t).data.size),
            "nrows": lambda t: int(self._tensor(t).data.shape[0]),
            "element_size": lambda t: int(self._tensor(t).data.itemsize),
            "is_contiguous": lambda t: bool(self._tensor(t).contiguous),
            "get_data": self._get_data,
            "tensor_get": self._tensor_get,
            "tensor_set": self._tensor_set,
        }
        # Each monitor copies the struct, so the callbacks must outlive every monitor.
        self._callbacks = []
        for name, function in implementations.items():
            callback = self.ffi.callback(field_types[name].type, function, onerror=self._on_error)
            self._callbacks.append(callback)
            setattr(self.api, name, callback)

    # Callbacks ----------------------------------------------------------------

    def _on_error(self, exc_type, exc_value, traceback) -> None:
        self.errors.append(f"{exc_type.__name__}: {exc_value}")

    def _tensor(self, t) -> FakeTensor:
        address = int(self.ffi.cast("uintptr_t", t))
        tensor = self._tensors.get(address)
        if tensor is None:
            raise KeyError(f"the monitor passed an unknown tensor pointer {address:#x}")
        return tensor

    def _get_name(self, t):
        tensor = self._tensor(t)
        return self.ffi.NULL if tensor._name_buf is None else tensor._name_buf

    def _op_desc(self, t):
        tensor = self._tensor(t)
        return self.ffi.NULL if tensor._op_buf is None else tensor._op_buf

    def _get_data(self, t):
        return self.ffi.cast("void *", self._tensor(t).data.ctypes.data)

    def _checked_range(self, tensor: FakeTensor, offset: int, size: int, what: str) -> bool:
        if offset < 0 or size < 0 or offset + size > tensor.data.nbytes:
            self.errors.append(
                f"{what} of {size} bytes at offset {offset} on {tensor.name!r} outside its "
                f"{tensor.data.nbytes} bytes"
            )
            return False
        return True

    def _tensor_get(self, t, dst, offset, size) -> None:
        tensor = self._tensor(t)
        if self._checked_range(tensor, offset, size, "tensor_get"):
            src = self.ffi.cast("char *", tensor.data.ctypes.data) + offset
            self.ffi.memmove(dst, src, size)

    def _tensor_set(self, t, src, offset, size) -> None:
        tensor = self._tensor(t)
        if self._checked_range(tensor, offset, size, "tensor_set"):
            dst = self.ffi.cast("char *", tensor.data.ctypes.data) + offset
            self.ffi.memmove(dst, src, size)

    # Tensors and graphs ---------------------------------------------------------

    def register(self, tensor: FakeTensor):
        """Return the ``struct ggml_tensor *`` handle of a tensor, creating it on first use."""
        if tensor._handle is None:
            if tensor.data.ndim != 2 or not tensor.data.flags.c_contiguous:
                raise ValueError("FakeTensor.data must be a C-contiguous 2-D array")
            if tensor.name is not None:
                tensor._name_buf = self.ffi.new("char[]", tensor.name.encode())
            if tensor.op is not None:
                tensor._op_buf = self.ffi.new("char[]", tensor.op.encode())
            tensor._handle = self.ffi.new("char[1]")
            handle = self.ffi.cast("struct ggml_tensor *", tensor._handle)
            self._tensors[int(self.ffi.cast("uintptr_t", handle))] = tensor
        return self.ffi.cast("struct ggml_tensor *", tensor._handle)

    def release(self) -> None:
        """Forget every registered tensor; call it only once no monitor can still point at one."""
        self._tensors.clear()

    def compute(self, monitor, graph: list[FakeTensor]) -> list[bool]:
        """Run the eval-callback protocol over a graph, in order.

        The scheduler first calls with ask = true for each node. For each
        node the callback requests, it calls again with ask = false, as if
        the node had just been computed. Returns the ask-phase results.
        """
        answers = []
        for tensor in graph:
            handle = self.register(tensor)
            requested = bool(self.lib.hn_monitor_callback(handle, True, monitor))
            answers.append(requested)
            if requested and not self.lib.hn_monitor_callback(handle, False, monitor):
                self.errors.append(f"the data phase of {tensor.name!r} returned false")
        return answers

    # Monitors ------------------------------------------------------------------

    def new_monitor(self, n_layer: int, n_ff: int, n_embd: int,
                    z_prefix: str = "ffn_geglu", h_prefix: str = "ffn_out"):
        """Return a monitor freed by the garbage collector, or None when hn_monitor_new rejects the sizes."""
        ptr = self.lib.hn_monitor_new(self.api, n_layer, n_ff, n_embd, z_prefix.encode(), h_prefix.encode())
        if ptr == self.ffi.NULL:
            return None
        return self.ffi.gc(ptr, self.lib.hn_monitor_free)

    def watch(self, monitor, layer: int, neurons) -> int:
        idx = self.ffi.new("int32_t[]", [int(x) for x in neurons] or [0])
        return int(self.lib.hn_monitor_watch(monitor, layer, idx, len(neurons)))

    def scale(self, monitor, layer: int, neurons, factor: float) -> int:
        idx = self.ffi.new("int32_t[]", [int(x) for x in neurons] or [0])
        return int(self.lib.hn_monitor_scale(monitor, layer, idx, len(neurons), factor))

    def z(self, monitor, layer: int, n_watch: int) -> np.ndarray:
        """Return a copy of the stored z rows of a layer, shape (rows, n_watch)."""
        rows = int(self.lib.hn_monitor_rows(monitor, layer))
        ptr = self.lib.hn_monitor_z(monitor, layer)
        if rows == 0 or n_watch == 0 or ptr == self.ffi.NULL:
            return np.zeros((0, n_watch), dtype=np.float32)
        buf = self.ffi.buffer(ptr, rows * n_watch * 4)
        return np.frombuffer(buf, dtype=np.float32).reshape(rows, n_watch).copy()

    def h_norm(self, monitor, layer: int) -> np.ndarray:
        rows = int(self.lib.hn_monitor_rows(monitor, layer))
        ptr = self.lib.hn_monitor_h_norm(monitor, layer)
        if rows == 0 or ptr == self.ffi.NULL:
            return np.zeros(0, dtype=np.float32)
        return np.frombuffer(self.ffi.buffer(ptr, rows * 4), dtype=np.float32).copy()

    def discovered(self, monitor) -> list[tuple[str, str]]:
        out = []
        for i in range(self.lib.hn_monitor_discovered(monitor)):
            name = self.ffi.string(self.lib.hn_monitor_discovered_name(monitor, i)).decode()
            op = self.ffi.string(self.lib.hn_monitor_discovered_op(monitor, i)).decode()
            out.append((name, op))
        return out


# The reference model -----------------------------------------------------------


def parse_layer(name: str, prefix: str) -> int:
    """Return the layer of "<prefix>-<1 to 6 digits>", else -1."""
    if not prefix or not name.startswith(prefix + "-"):
        return -1
    digits = name[len(prefix) + 1:]
    if not 1 <= len(digits) <= 6 or not all("0" <= c <= "9" for c in digits):
        return -1
    return int(digits)


@dataclass
class _Layer:
    watch: list[int] = field(default_factory=list)
    scale_idx: list[int] = field(default_factory=list)
    scale: np.float32 = np.float32(1.0)
    z: np.ndarray | None = None
    h_norm: np.ndarray | None = None
    rows: int = 0
    calls: int = 0
    z_node: FakeTensor | None = None

    def active(self) -> bool:
        return bool(self.watch) or self.scaled()

    def scaled(self) -> bool:
        return bool(self.scale_idx) and self.scale != np.float32(1.0)


class ReferenceMonitor:
    """The monitor's contract in Python, over private copies of the tensor data.

    ``data`` maps each FakeTensor to the model's own copy of its data, so the
    scaling the model applies can be compared with what the C monitor wrote.
    """

    def __init__(self, n_layer: int, n_ff: int, n_embd: int,
                 z_prefix: str = "ffn_geglu", h_prefix: str = "ffn_out") -> None:
        self.n_layer, self.n_ff, self.n_embd = n_layer, n_ff, n_embd
        self.z_prefix, self.h_prefix = z_prefix, h_prefix
        self.enabled = False
        self.discovery = False
        self.discovered: list[tuple[str, str]] = []
        self.mode = ROWS_LAST
        self.capacity = 0
        self.status = OK
        self.layers = [_Layer() for _ in range(n_layer)]
        self.data: dict[FakeTensor, np.ndarray] = {}
        self.scaled_rows = 0
        """Rows of z multiplied so far, for coverage counts."""
        self.status_events: Counter[int] = Counter()
        """Errors raised per status code, including those after the first, for coverage counts."""

    def _set_status(self, status: int) -> None:
        self.status_events[status] += 1
        if self.status == OK:
            self.status = status

    def _indices_ok(self, neurons) -> bool:
        return len(neurons) <= self.n_ff and all(0 <= k < self.n_ff for k in neurons)

    # Configuration ---------------------------------------------------------------

    def watch(self, layer: int, neurons) -> int:
        if not 0 <= layer < self.n_layer or not self._indices_ok(neurons):
            return ERR_ARGUMENT
        target = self.layers[layer]
        target.watch = list(neurons)
        target.z = target.h_norm = None
        target.rows = 0
        return OK

    def scale(self, layer: int, neurons, factor: float) -> int:
        with np.errstate(over="ignore"):
            value = np.float32(factor)
        if not 0 <= layer < self.n_layer or not math.isfinite(value) or not self._indices_ok(neurons):
            return ERR_ARGUMENT
        target = self.layers[layer]
        target.scale_idx = list(neurons)
        target.scale = value
        return OK

    def set_capture(self, mode: int, capacity: int) -> int:
        if mode not in (ROWS_LAST, ROWS_ALL):
            return ERR_ARGUMENT
        if mode == ROWS_LAST:
            capacity = 1
        if not 0 < capacity <= MAX_CAPACITY:
            return ERR_ARGUMENT
        self.mode, self.capacity = mode, capacity
        for layer in self.layers:
            layer.rows = 0
            layer.z = layer.h_norm = None
            if layer.watch:
                layer.z = np.zeros((capacity, len(layer.watch)), dtype=np.float32)
                layer.h_norm = np.zeros(capacity, dtype=np.float32)
        return OK

    def rewind(self) -> None:
        for layer in self.layers:
            layer.rows = 0
            layer.calls = 0
            layer.z_node = None
        self.status = OK

    def set_discovery(self, on: bool) -> None:
        self.discovery = on
        if on:
            self.discovered = []

    # The callback ------------------------------------------------------------------

    def compute(self, graph: list[FakeTensor]) -> list[bool]:
        """Apply the callback protocol to the model; call it before FakeGGML.compute
        on the same graph, because it copies each tensor's data on first sight."""
        answers = []
        for tensor in graph:
            if tensor not in self.data:
                self.data[tensor] = tensor.data.copy()
            requested = self._ask(tensor)
            answers.append(requested)
            if requested:
                self._observe(tensor)
        return answers

    def _compute_node(self, tensor: FakeTensor) -> bool:
        return tensor.op is not None and tensor.op not in NON_COMPUTE_OPS

    def _ask(self, tensor: FakeTensor) -> bool:
        if not self.enabled or tensor.name is None:
            return False
        name = tensor.name
        if self.discovery and len(self.discovered) < DISCOVERY_MAX:
            op = tensor.op or ""
            self.discovered.append((name[:NAME_MAX - 1], op[:OP_MAX - 1]))
        if not name.startswith("ffn_"):
            return False
        il = parse_layer(name, self.z_prefix)
        if il >= 0:
            if il >= self.n_layer or not self.layers[il].active() or not self._compute_node(tensor):
                return False
            self.layers[il].z_node = tensor
            return self.layers[il].scaled()
        il = parse_layer(name, self.h_prefix)
        return 0 <= il < self.n_layer and bool(self.layers[il].watch) and self._compute_node(tensor)

    def _row_width(self, tensor: FakeTensor) -> tuple[int, int] | None:
        if tensor.data.itemsize != 4 or not tensor.contiguous:
            return None
        rows = tensor.data.shape[0]
        return rows, (tensor.data.size // rows if rows > 0 else 0)

    def _observe(self, tensor: FakeTensor) -> None:
        il = parse_layer(tensor.name, self.z_prefix)
        if 0 <= il < self.n_layer:
            self._scale_z(self.layers[il], tensor)
            return
        il = parse_layer(tensor.name, self.h_prefix)
        if 0 <= il < self.n_layer:
            self._capture(self.layers[il], tensor)

    def _scale_z(self, layer: _Layer, tensor: FakeTensor) -> None:
        shape = self._row_width(tensor)
        if shape is None:
            self._set_status(ERR_TYPE)
            return
        rows, width = shape
        if rows > 0 and width != self.n_ff:
            self._set_status(ERR_SHAPE)
            return
        if rows == 0:
            return
        data = self.data[tensor]
        self.scaled_rows += rows
        for k in layer.scale_idx:  # a repeated index is scaled once per occurrence
            data[:, k] *= layer.scale

    def _capture(self, layer: _Layer, h_node: FakeTensor) -> None:
        z_node, layer.z_node = layer.z_node, None
        layer.calls += 1
        if z_node is None:
            self._set_status(ERR_NO_INPUT)
            return
        z_shape, h_shape = self._row_width(z_node), self._row_width(h_node)
        if z_shape is None or h_shape is None:
            self._set_status(ERR_TYPE)
            return
        (z_rows, z_width), (h_rows, h_width) = z_shape, h_shape
        if z_rows != h_rows or (h_rows > 0 and (z_width != self.n_ff or h_width != self.n_embd)):
            self._set_status(ERR_SHAPE)
            return
        if layer.z is None:
            self._set_status(ERR_CAPACITY)
            return
        first = max(h_rows - 1, 0) if self.mode == ROWS_LAST else 0
        z_data, h_data = self.data[z_node], self.data[h_node]
        for r in range(first, h_rows):
            slot = 0
            if self.mode == ROWS_ALL:
                if layer.rows >= self.capacity:
                    self._set_status(ERR_CAPACITY)
                    return
                slot = layer.rows
            layer.z[slot] = z_data[r, layer.watch]
            # The C code sums squares in double, one element after another.
            total = 0.0
            for value in h_data[r].tolist():
                total += value * value
            layer.h_norm[slot] = np.float32(math.sqrt(total))
            layer.rows = layer.rows + 1 if self.mode == ROWS_ALL else 1

    # Read-back ------------------------------------------------------------------------

    def stored_z(self, layer: int) -> np.ndarray:
        target = self.layers[layer]
        if target.z is None or target.rows == 0 or not target.watch:
            return np.zeros((0, len(target.watch)), dtype=np.float32)
        return target.z[: target.rows]

    def stored_h_norm(self, layer: int) -> np.ndarray:
        target = self.layers[layer]
        if target.h_norm is None or target.rows == 0:
            return np.zeros(0, dtype=np.float32)
        return target.h_norm[: target.rows]
