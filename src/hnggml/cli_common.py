"""Option helpers shared by the command modules cli_chat and cli_serve."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)

# llama.cpp (as bundled with llama-cpp-python 0.3.36) rounds the context size
# up to a multiple of 256, while llama-cpp-python sizes its token buffer with
# the value it was given. A prompt longer than the requested size but shorter
# than the rounded one then fails with a numpy broadcast error instead of the
# usual "exceed context window" message, so the CLI requests the rounded size.
N_CTX_PADDING = 256


def padded_n_ctx(ctx, param, value: int | None) -> int | None:
    """Round a --n-ctx value up to a multiple of N_CTX_PADDING (0 and None pass through)."""
    if not value:
        return value
    padded = -(-value // N_CTX_PADDING) * N_CTX_PADDING
    if padded != value:
        logger.info("rounded --n-ctx %d up to %d, a multiple of %d", value, padded, N_CTX_PADDING)
    return padded
