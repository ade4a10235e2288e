"""Names of the llama.cpp graph nodes that hnggml watches.

This module is the one place that knows them. For each architecture it
gives the node that feeds ``ffn_down`` (z, the FFN neurons) and the
``ffn_down`` output (h, the FFN output before any post-FFN norm), without
the ``-<layer>`` suffix that llama.cpp appends. The names are checked at
load against the nodes the model's graph really has.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import UnsupportedModelError


@dataclass(frozen=True)
class FFNNodes:
    """Node-name prefixes of one FFN layer."""

    z: str
    """Input of ffn_down: the neuron activations, shape [n_ff, n_tokens]."""
    h: str
    """Output of ffn_down, shape [n_embd, n_tokens]."""


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


# llama.cpp replaced the gate MUL node (ffn_gate_par) by one fused GLU node
# in June 2025; llama-cpp-python 0.3.10 is the first release built after it.
_GLU_SINCE = (0, 3, 10)

_GEGLU = ("gemma", "gemma2", "gemma3")
_SWIGLU = ("llama", "mistral3", "qwen2", "qwen3", "phi3", "granite", "olmo2", "smollm3")

# (architecture, first llama-cpp-python version, nodes), newest first.
NODE_TABLE: tuple[tuple[str, tuple[int, ...], FFNNodes], ...] = (
    *((arch, _GLU_SINCE, FFNNodes("ffn_geglu", "ffn_out")) for arch in _GEGLU),
    *((arch, _GLU_SINCE, FFNNodes("ffn_swiglu", "ffn_out")) for arch in _SWIGLU),
    *((arch, (0, 0, 0), FFNNodes("ffn_gate_par", "ffn_out")) for arch in _GEGLU + _SWIGLU),
)


def supported_architectures() -> list[str]:
    return sorted({arch for arch, _, _ in NODE_TABLE})


def ffn_nodes(architecture: str, llama_cpp_version: str) -> FFNNodes:
    """Return the node names for an architecture and a llama-cpp-python version."""
    version = _version(llama_cpp_version)
    for arch, since, nodes in NODE_TABLE:
        if arch == architecture and version >= since:
            return nodes
    raise UnsupportedModelError(
        f"architecture {architecture!r} is not in hnggml's node table; supported: "
        f"{', '.join(supported_architectures())}"
    )


def check_graph(architecture: str, nodes: FFNNodes, n_layer: int, seen: list[tuple[str, str]]) -> None:
    """Raise UnsupportedModelError unless every layer has both watched nodes.

    ``seen`` holds the (name, op) pairs of one decode's graph.
    """
    names = {name for name, _ in seen}
    missing = [
        f"{prefix}-{il}"
        for il in range(n_layer)
        for prefix in (nodes.z, nodes.h)
        if f"{prefix}-{il}" not in names
    ]
    if missing:
        ffn = sorted({re.sub(r"-\d+$", "-N", n) for n in names if n.startswith("ffn")})
        raise UnsupportedModelError(
            f"the graph of this {architecture!r} model lacks the FFN nodes hnggml watches "
            f"(first missing: {', '.join(missing[:4])}); FFN nodes seen: "
            f"{', '.join(ffn) or 'none'}. Add the right names for {architecture!r} to "
            "hnggml.names.NODE_TABLE"
        )
