"""Shared fixtures: the real default model and a probe for it.

HNGGML_TEST_MODEL overrides the model path and HNGGML_TEST_PROBE the probe;
by default the tests use the embedded Gemma 3 270M and its shipped probe.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def model_path() -> Path:
    override = os.environ.get("HNGGML_TEST_MODEL")
    if override:
        return Path(override)
    from hnggml.models import default_model_path

    return default_model_path()


@pytest.fixture(scope="session")
def probe_path(model_path: Path) -> Path:
    override = os.environ.get("HNGGML_TEST_PROBE")
    if override:
        return Path(override)
    from hnggml.llama import find_bundled_probe
    from hnggml.weights import model_info

    found = find_bundled_probe(model_info(model_path))
    if found is None:
        pytest.fail(f"no shipped probe matches {model_path}; set HNGGML_TEST_PROBE")
    return found


@pytest.fixture(scope="session")
def llm(model_path: Path, probe_path: Path):
    """One monitored instance shared by tests that only read from it."""
    from hnggml import Llama

    instance = Llama(model_path, probe=probe_path, n_ctx=512, n_threads=2, seed=0, verbose=False)
    yield instance
    instance.close()
