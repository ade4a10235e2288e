"""hnggml: hallucination risk from H-neurons for llama.cpp models.

``from hnggml import Llama`` replaces ``from llama_cpp import Llama``; every
answer then carries a risk under the key "hnggml".
"""

from .errors import (
    HnggmlError,
    MonitorError,
    ProbeFormatError,
    ProbeMismatchError,
    UnsupportedModelError,
)
from .llama import Llama
from .probe import HProbe

__version__ = "0.1.0"

__all__ = [
    "HProbe",
    "HnggmlError",
    "Llama",
    "MonitorError",
    "ProbeFormatError",
    "ProbeMismatchError",
    "UnsupportedModelError",
    "__version__",
]
