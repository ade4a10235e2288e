"""The H-neuron probe: a sparse logistic model over CETT features, in numpy.

A probe file is JSON (format described in docs/probe-format.md). It names the
model it was trained on, the (layer, neuron) pairs it reads, their ffn_down
column norms, the logistic coefficients, and an optional second stage that
combines the neuron score with cheap logit signals into the default risk.

Trap: a probe is only valid for the exact model it was trained on. Loading
it against another model raises ProbeMismatchError; the check compares a
hash of the model's ffn_down tensors, not the file name.
"""

from __future__ import annotations

import json
import math
import os
import reprlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ProbeFormatError, ProbeMismatchError
from .features import SIGNALS, cett

FORMAT = "hnggml-probe"
FORMAT_VERSION = 1
MAX_PROBE_BYTES = 64 * 1024 * 1024
MAX_NEURONS = 1_000_000


@dataclass
class Combiner:
    """Second stage: logistic regression on standardised [h_logit, signals...]."""

    inputs: list[str]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def logit(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        x = np.column_stack([np.asarray(columns[name], dtype=np.float64) for name in self.inputs])
        return ((x - self.mean) / self.scale) @ self.coef + self.intercept


@dataclass
class HProbe:
    """A trained H-neuron probe.

    ``neurons_`` is an (n, 2) int array of (layer, neuron) pairs, ``coef_``
    their logistic coefficients on raw CETT (mean over answer tokens) and
    ``w_norm_`` their ffn_down column norms. ``predict_proba`` returns the
    probability that a response is a hallucination.
    """

    model: dict[str, Any]
    neurons_: np.ndarray
    coef_: np.ndarray
    intercept_: float
    w_norm_: np.ndarray
    nodes: dict[str, str] = field(default_factory=dict)
    llama_cpp_version: str = ""
    aggregation: str = "mean"
    threshold: float = 0.5
    combiner: Combiner | None = None
    prompt: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    controls: list[dict[str, Any]] = field(default_factory=list)
    """Random-neuron control probes of the same size, trained the same way;
    each has "neurons", "coef" and "intercept". Only evaluation reads them."""

    def __post_init__(self) -> None:
        self.neurons_ = np.asarray(self.neurons_, dtype=np.int64).reshape(-1, 2)
        self.coef_ = np.asarray(self.coef_, dtype=np.float64).reshape(-1)
        with np.errstate(over="ignore"):
            self.w_norm_ = np.asarray(self.w_norm_, dtype=np.float32).reshape(-1)
        self.intercept_ = float(self.intercept_)
        self._validate()

    # Validation -----------------------------------------------------------

    def _validate(self) -> None:
        n = len(self.neurons_)
        if n > MAX_NEURONS:
            raise ProbeFormatError(f"probe has {n} neurons; the maximum is {MAX_NEURONS}")
        if len(self.coef_) != n or len(self.w_norm_) != n:
            raise ProbeFormatError(
                f"probe has {n} neurons but {len(self.coef_)} coefficients and "
                f"{len(self.w_norm_)} column norms; all three must match"
            )
        for key in ("n_layer", "n_ff"):
            value = self.model.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ProbeFormatError(f"probe model.{key} must be a positive integer, got {self.model.get(key)!r}")
        n_layer, n_ff = self.model["n_layer"], self.model["n_ff"]
        bad_layer = (self.neurons_[:, 0] < 0) | (self.neurons_[:, 0] >= n_layer)
        if bad_layer.any():
            pair = self.neurons_[np.argmax(bad_layer)].tolist()
            raise ProbeFormatError(
                f"probe neuron {pair} has layer {pair[0]} outside [0, {n_layer}) for the "
                f"{n_layer}-layer model it names; fix the pair or model.n_layer"
            )
        bad_neuron = (self.neurons_[:, 1] < 0) | (self.neurons_[:, 1] >= n_ff)
        if bad_neuron.any():
            pair = self.neurons_[np.argmax(bad_neuron)].tolist()
            raise ProbeFormatError(
                f"probe neuron {pair} has neuron index {pair[1]} outside [0, {n_ff}) for "
                f"model.n_ff={n_ff}; fix the pair or model.n_ff"
            )
        if n and len(np.unique(self.neurons_, axis=0)) != n:
            pairs, counts = np.unique(self.neurons_, axis=0, return_counts=True)
            raise ProbeFormatError(
                f"probe lists the (layer, neuron) pair {pairs[np.argmax(counts > 1)].tolist()} more "
                "than once; each pair may appear only once"
            )
        if not (np.all(np.isfinite(self.coef_)) and math.isfinite(self.intercept_)):
            raise ProbeFormatError("probe coefficients must be finite numbers (found NaN or infinity)")
        if not np.all(np.isfinite(self.w_norm_)) or np.any(self.w_norm_ < 0):
            raise ProbeFormatError("probe column norms must be finite and non-negative")
        if not (0.0 <= self.threshold <= 1.0):
            raise ProbeFormatError(f"probe threshold must lie in [0, 1], got {self.threshold}")
        if self.aggregation not in ("mean", "max"):
            raise ProbeFormatError(f"probe aggregation must be 'mean' or 'max', got {self.aggregation!r}")
        if self.combiner is not None:
            c = self.combiner
            allowed = {"h_logit", *SIGNALS}
            unknown = [name for name in c.inputs if name not in allowed]
            if unknown:
                raise ProbeFormatError(f"probe combiner reads unknown inputs {unknown}; allowed: {sorted(allowed)}")
            k = len(c.inputs)
            for label, arr in (("mean", c.mean), ("scale", c.scale), ("coef", c.coef)):
                if np.shape(arr) != (k,) or not np.all(np.isfinite(arr)):
                    raise ProbeFormatError(f"probe combiner.{label} must hold {k} finite numbers")
            if np.any(np.asarray(c.scale) <= 0) or not math.isfinite(c.intercept):
                raise ProbeFormatError("probe combiner.scale must be positive and its intercept finite")

    def check_model(self, info) -> None:
        """Raise ProbeMismatchError unless the probe was trained on this model."""
        mine = self.model.get("ffn_down_sha256")
        theirs = info.ffn_down_sha256
        shape_ok = (self.model.get("n_layer"), self.model.get("n_ff")) == (info.n_layer, info.n_ff)
        if mine != theirs or not shape_ok or self.model.get("architecture") != info.architecture:
            raise ProbeMismatchError(
                f"probe was trained on {self.model.get('name')!r} ({self.model.get('architecture')}, "
                f"{self.model.get('n_layer')} layers, n_ff {self.model.get('n_ff')}, ffn_down "
                f"{str(mine)[:12]}) but the loaded model is {info.name!r} ({info.architecture}, "
                f"{info.n_layer} layers, n_ff {info.n_ff}, ffn_down {theirs[:12]}); pass the probe "
                "trained for this model, or train one with `hnggml train`"
            )

    # Scoring ----------------------------------------------------------------

    @property
    def n_neurons(self) -> int:
        return len(self.neurons_)

    @property
    def needs_signals(self) -> bool:
        return self.combiner is not None and any(name != "h_logit" for name in self.combiner.inputs)

    def layer_neurons(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Map each layer to (neuron indices, positions of those neurons in neurons_)."""
        out = {}
        for layer in np.unique(self.neurons_[:, 0]):
            pos = np.flatnonzero(self.neurons_[:, 0] == layer)
            out[int(layer)] = (self.neurons_[pos, 1].astype(np.int32), pos)
        return out

    def cett_rows(self, z_by_layer: dict[int, np.ndarray], h_norm_by_layer: dict[int, np.ndarray]) -> np.ndarray:
        """Assemble (n_tokens, n_neurons) CETT rows from per-layer captures."""
        groups = self.layer_neurons()
        n_tokens = min(len(h) for h in h_norm_by_layer.values()) if h_norm_by_layer else 0
        out = np.zeros((n_tokens, self.n_neurons), dtype=np.float32)
        for layer, (_, pos) in groups.items():
            z = z_by_layer[layer][:n_tokens]
            out[:, pos] = cett(z, h_norm_by_layer[layer][:n_tokens], self.w_norm_[pos])
        return out

    def h_logit(self, X: np.ndarray) -> np.ndarray:
        """Return the neuron stage's logit for (n_samples, n_neurons) CETT features."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[None, :]
        if X.shape[1] != self.n_neurons:
            raise ValueError(f"X has {X.shape[1]} features; this probe reads {self.n_neurons} neurons")
        return X @ self.coef_ + self.intercept_

    def decision_function(self, X: np.ndarray, signals: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Return the risk logit: the neuron stage, then the combiner when present."""
        logit = self.h_logit(X)
        if self.combiner is None:
            return logit
        columns = {"h_logit": logit, **(signals or {})}
        missing = [name for name in self.combiner.inputs if name not in columns]
        if missing:
            raise ValueError(f"this probe's risk also needs the signals {missing}")
        return self.combiner.logit(columns)

    def predict_proba(self, X: np.ndarray, signals: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Return (n_samples, 2) probabilities of [faithful, hallucinated]."""
        p = _sigmoid(self.decision_function(X, signals))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: np.ndarray, signals: dict[str, np.ndarray] | None = None) -> np.ndarray:
        return (self.predict_proba(X, signals)[:, 1] >= self.threshold).astype(int)

    # Files --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model": self.model,
            "nodes": self.nodes,
            "llama_cpp_version": self.llama_cpp_version,
            "aggregation": self.aggregation,
            "threshold": self.threshold,
            "neurons": self.neurons_.tolist(),
            "coef": self.coef_.tolist(),
            "intercept": self.intercept_,
            "w_norm": self.w_norm_.astype(float).tolist(),
            "combiner": None,
            "prompt": self.prompt,
            "training": self.training,
            "metrics": self.metrics,
            "versions": self.versions,
            "controls": self.controls,
        }
        if self.combiner is not None:
            c = self.combiner
            out["combiner"] = {
                "inputs": list(c.inputs),
                "mean": np.asarray(c.mean).tolist(),
                "scale": np.asarray(c.scale).tolist(),
                "coef": np.asarray(c.coef).tolist(),
                "intercept": float(c.intercept),
            }
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Write the probe as JSON, atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(self.to_dict(), f, indent=1, allow_nan=False)
            os.chmod(tmp, 0o644)  # mkstemp creates the file readable by its owner only
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def from_dict(cls, data: Any, source: str = "probe") -> "HProbe":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ProbeFormatError(f"{source} is not an hnggml probe (missing \"format\": \"{FORMAT}\")")
        if data.get("format_version") != FORMAT_VERSION:
            raise ProbeFormatError(
                f"{source} has format_version {data.get('format_version')!r}; this hnggml reads "
                f"version {FORMAT_VERSION}"
            )
        try:
            combiner = None
            if data.get("combiner") is not None:
                c = _typed(data, "combiner", dict)
                combiner = Combiner(
                    inputs=[str(x) for x in _typed(c, "inputs", list)],
                    mean=_array(c, "mean"),
                    scale=_array(c, "scale"),
                    coef=_array(c, "coef"),
                    intercept=float(_typed(c, "intercept", (int, float))),
                )
            return cls(
                model=_typed(data, "model", dict),
                neurons_=_array(data, "neurons", np.int64),
                coef_=_array(data, "coef"),
                intercept_=float(_typed(data, "intercept", (int, float))),
                w_norm_=_array(data, "w_norm"),
                nodes=_object(data, "nodes"),
                llama_cpp_version=str(data.get("llama_cpp_version", "")),
                aggregation=str(data.get("aggregation", "mean")),
                threshold=float(_typed(data, "threshold", (int, float))),
                combiner=combiner,
                prompt=_object(data, "prompt"),
                training=_object(data, "training"),
                metrics=_object(data, "metrics"),
                versions=_object(data, "versions"),
                controls=_controls(data.get("controls") or []),
            )
        except ProbeFormatError as exc:
            raise ProbeFormatError(f"{source}: {exc}") from None
        except (TypeError, ValueError, OverflowError) as exc:
            raise ProbeFormatError(f"{source}: {exc}") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> "HProbe":
        """Read and validate a probe file."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"probe file not found: {path}")
        size = path.stat().st_size
        if size > MAX_PROBE_BYTES:
            raise ProbeFormatError(f"probe file {path} is {size} bytes; the maximum is {MAX_PROBE_BYTES}")
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ProbeFormatError(f"probe file {path} is not valid JSON: {exc}") from None
        except RecursionError:
            raise ProbeFormatError(f"probe file {path} nests JSON arrays or objects too deeply to read") from None
        except ValueError as exc:
            raise ProbeFormatError(f"probe file {path}: {exc}") from None
        return cls.from_dict(data, source=f"probe file {path}")


def _controls(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise ProbeFormatError("field 'controls' must be a list")
    out = []
    for control in value:
        if not isinstance(control, dict):
            raise ProbeFormatError("each control must be an object with neurons, coef and intercept")
        neurons = _array(control, "neurons", np.int64).reshape(-1, 2)
        coef = _array(control, "coef")
        if len(coef) != len(neurons) or not np.all(np.isfinite(coef)):
            raise ProbeFormatError("a control's coef must hold one finite number per neuron")
        out.append({"neurons": neurons.tolist(), "coef": coef.tolist(),
                    "intercept": float(_typed(control, "intercept", (int, float)))})
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a valid number in a probe")


def _typed(data: dict, key: str, kind):
    if key not in data:
        raise ProbeFormatError(f"missing field {key!r}")
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        expected = {list: "a list", dict: "a JSON object"}.get(kind, "a number")
        raise ProbeFormatError(f"field {key!r} must be {expected}, got {type(value).__name__}")
    return value


def _object(data: dict, key: str) -> dict:
    """Return an optional JSON object field; a missing or null field is an empty dict."""
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProbeFormatError(f"field {key!r} must be a JSON object, got {type(value).__name__}")
    return dict(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _array(data: dict, key: str, dtype=np.float64) -> np.ndarray:
    """Return a field as an array, checking every element.

    A float dtype expects a flat list of numbers; an integer dtype expects a
    list of [layer, neuron] pairs of integers. numpy alone would accept
    strings such as "1.5", booleans, and fractional indices (truncated).
    """
    value = _typed(data, key, list)
    integer = np.issubdtype(dtype, np.integer)
    for i, item in enumerate(value):
        if integer:
            ok = (isinstance(item, list) and len(item) == 2
                  and all(isinstance(x, int) and not isinstance(x, bool) for x in item))
            expected = "a [layer, neuron] pair of integers"
        else:
            ok = _is_number(item)
            expected = "a number"
        if not ok:
            raise ProbeFormatError(f"field {key!r} item {i} is {reprlib.repr(item)}; expected {expected}")
    try:
        return np.asarray(value, dtype=dtype)
    except OverflowError:
        raise ProbeFormatError(f"field {key!r} holds a number too large for {np.dtype(dtype).name}") from None
