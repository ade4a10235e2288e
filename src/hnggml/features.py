"""CETT, the feature every probe reads, and its aggregation over answer tokens.

CETT_{j,t} = |z_{j,t}| * ||W_down[:, j]||_2 / ||h_t||_2, where z_t is the input
of ffn_down at token t and h_t = W_down z_t its output before any post-FFN
norm. Training and inference both compute it with :func:`cett`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

EPS = 1e-8
"""Added to ||h_t|| so a zero FFN output does not divide by zero."""

Aggregation = Literal["mean", "max"]


def cett(z: np.ndarray, h_norm: np.ndarray, w_norm: np.ndarray) -> np.ndarray:
    """Return CETT for token rows of watched neurons.

    z has shape (n_tokens, n_neurons), h_norm (n_tokens,) and w_norm
    (n_neurons,); the result has the shape of z, in float32.
    """
    z = np.asarray(z, dtype=np.float32)
    h_norm = np.asarray(h_norm, dtype=np.float32)
    w_norm = np.asarray(w_norm, dtype=np.float32)
    return np.abs(z) * w_norm / (h_norm[:, None] + np.float32(EPS))


def aggregate(rows: np.ndarray, how: Aggregation = "mean") -> np.ndarray:
    """Reduce (n_tokens, n_features) rows to one feature vector."""
    rows = np.asarray(rows, dtype=np.float32)
    if rows.ndim != 2 or rows.shape[0] == 0:
        return np.zeros(rows.shape[-1] if rows.ndim == 2 else 0, dtype=np.float32)
    if how == "mean":
        return rows.mean(axis=0)
    if how == "max":
        return rows.max(axis=0)
    raise ValueError(f"invalid aggregation {how!r}; use 'mean' or 'max'")


SIGNALS = ("entropy", "neg_logprob", "one_minus_min_prob", "n_tokens")
"""Per-response signals computed from the logits, in the order probes store them."""


def logit_signals(entropy: np.ndarray, logprob: np.ndarray) -> dict[str, float]:
    """Aggregate per-token entropies and log-probabilities of one response.

    Returns mean entropy (nats), mean negative log-probability, 1 - min token
    probability and the number of tokens.
    """
    entropy = np.asarray(entropy, dtype=np.float64)
    logprob = np.asarray(logprob, dtype=np.float64)
    if len(logprob) == 0:
        return {"entropy": 0.0, "neg_logprob": 0.0, "one_minus_min_prob": 0.0, "n_tokens": 0.0}
    return {
        "entropy": float(entropy.mean()),
        "neg_logprob": float(-logprob.mean()),
        "one_minus_min_prob": float(1.0 - np.exp(logprob.min())),
        "n_tokens": float(len(logprob)),
    }
