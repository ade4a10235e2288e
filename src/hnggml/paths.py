"""Locations of hnggml's cache, shipped data and shipped probes."""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def cache_dir() -> Path:
    """Return the user cache folder ($HNGGML_CACHE, else $XDG_CACHE_HOME/hnggml)."""
    root = os.environ.get("HNGGML_CACHE")
    if root:
        path = Path(root)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        path = Path(base) / "hnggml"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _shipped(name: str) -> Path:
    installed = _PACKAGE / name
    if installed.is_dir():
        return installed
    return _PACKAGE.parents[1] / name


def data_dir() -> Path:
    """Return the shipped data folder: the installed copy, else the checkout's data/."""
    return _shipped("data")


def probes_dir() -> Path:
    """Return the shipped probes folder: the installed copy, else the checkout's probes/."""
    return _shipped("probes")
