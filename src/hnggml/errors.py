"""Exceptions raised by hnggml."""


class HnggmlError(Exception):
    """Base class of hnggml's own errors."""


class MonitorError(HnggmlError, RuntimeError):
    """The C monitor failed to load, to configure or to capture."""


class UnsupportedModelError(HnggmlError, ValueError):
    """The model's architecture or graph is not one hnggml can watch."""


class ProbeMismatchError(HnggmlError, ValueError):
    """A probe was trained for another model than the one loaded."""


class ProbeFormatError(HnggmlError, ValueError):
    """A probe file is malformed."""
