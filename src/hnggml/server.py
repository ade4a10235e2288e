"""OpenAI-compatible HTTP server for ``hnggml.Llama``, built on ``llama_cpp.server``.

Routes: ``GET /v1/models``, ``POST /v1/completions`` and
``POST /v1/chat/completions``, the last two with ``"stream": true`` sent as
server-sent events. Every answer carries the hnggml report under the key
``"hnggml"`` (risk, flagged, threshold, signals). Non-streaming responses also
carry the headers ``X-Hnggml-Risk`` (absent when the server runs without a
probe) and ``X-Hnggml-Flagged``. A streaming response sends its headers before
the first token, so there the report is only in the last chunk (the one with a
``finish_reason``).

What is reused from llama-cpp-python 0.3.36: the request models
(``llama_cpp.server.types``), ``ModelSettings`` and ``LlamaProxy`` for loading
the model, ``prepare_request_resources`` for logit bias, grammar and
min_tokens, ``RouteErrorHandler`` for OpenAI-style errors, and sse-starlette's
``EventSourceResponse``. The route functions themselves are hnggml's because
llama_cpp's versions drop the report or mishandle hnggml's generators:

- They declare ``response_model``, and FastAPI's serialisation through that
  TypedDict removes the ``"hnggml"`` key.
- The streaming chat route calls ``llama_cpp.Llama.create_chat_completion``
  on the base class, which bypasses hnggml's override that adds the report.
- A stream is advanced by ``iterate_in_threadpool``, so successive chunks may
  come from different worker threads. hnggml's generators hold a
  ``threading.RLock``, which must be released by the thread that took it.
  Here one worker thread runs each generation from start to end.
- With ``interrupt_requests`` (llama_cpp's default), a new request cancels the
  stream in progress. Here requests queue in arrival order instead.

Concurrency: one model per process and one ``anyio.Lock`` (first in, first
out) around each generation, held until a stream has sent its last chunk or
its client has gone. A client that disconnects mid-stream stops generation at
the next token, which frees the lock for the next request.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
import logging
import math
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Optional, Union

import anyio
import anyio.from_thread
import anyio.to_thread
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from llama_cpp.server.app import prepare_request_resources
from llama_cpp.server.errors import RouteErrorHandler
from llama_cpp.server.model import LlamaProxy
from llama_cpp.server.settings import ModelSettings
from llama_cpp.server.types import CreateChatCompletionRequest, CreateCompletionRequest
from pydantic import Field
from sse_starlette.sse import EventSourceResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_N_CTX = 2048
DEFAULT_MAX_TOKENS_CAP = 512
DEFAULT_MAX_BODY_BYTES = 1024 * 1024

RISK_HEADER = "X-Hnggml-Risk"
FLAGGED_HEADER = "X-Hnggml-Flagged"

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "127.0.0.1", "::1"})

# Fields of a request that llama_cpp's route handlers also drop before calling
# the model: the model ignores them or prepare_request_resources consumes them.
_COMPLETION_EXCLUDE = {"n", "best_of", "logit_bias_type", "user", "min_tokens"}
_CHAT_EXCLUDE = {"n", "logit_bias_type", "user", "min_tokens", "max_completion_tokens"}

# ModelSettings fields that hnggml passes on to Llama. The other fields
# (multimodal projectors, draft models, LoRA, Hugging Face downloads, prompt
# caches, embeddings) must keep their defaults, see _check_supported.
_FORWARDED_SETTINGS = (
    "n_gpu_layers",
    "split_mode",
    "main_gpu",
    "tensor_split",
    "use_mmap",
    "use_mlock",
    "seed",
    "n_ctx",
    "n_batch",
    "n_ubatch",
    "n_threads",
    "n_threads_batch",
    "offload_kqv",
    "flash_attn",
    "last_n_tokens_size",
    "chat_format",
    "type_k",
    "type_v",
    "verbose",
)
# Settings that load_llama_from_model_settings reads itself, or ignores:
# logits_all stays False because llama.cpp would then keep n_ctx x n_vocab
# logits (2 GiB for Gemma 3 at n_ctx=2048).
_HANDLED_SETTINGS = ("model", "model_alias", "probe", "risk_threshold", "logits_all")


# Byte sizes ------------------------------------------------------------------

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_SIZE_PATTERN = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")


def parse_byte_size(text: str | int) -> int:
    """Parse a byte count such as ``65536``, ``64KiB``, ``1MiB`` or ``2MB``.

    KB, MB and GB are powers of 1000 and KiB, MiB and GiB powers of 1024.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        value, unit = float(text), ""
    else:
        match = _SIZE_PATTERN.fullmatch(str(text))
        if match is None or match.group(2).lower() not in _SIZE_UNITS:
            raise ValueError(
                f"invalid byte size {text!r}; use a number of bytes, optionally followed by "
                "KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024), e.g. 1MiB"
            )
        value, unit = float(match.group(1)), match.group(2).lower()
    size = int(value * _SIZE_UNITS[unit])
    if size < 1:
        raise ValueError(f"byte size must be at least 1 byte, got {text!r}")
    return size


# Model loading -----------------------------------------------------------------


class HnggmlModelSettings(ModelSettings):
    """llama_cpp's ModelSettings plus the hnggml arguments of ``hnggml.Llama``.

    ``model`` may also be ``"ollama:NAME[:TAG]"``. Only the arguments given to
    the constructor count: unlike ModelSettings, this class reads no
    environment variables, so a stray ``MODEL`` or ``N_CTX`` variable in the
    server's environment changes nothing.
    """

    model: Optional[str] = Field(
        default=None,
        description="GGUF path or ollama:NAME[:TAG]; None loads the default Gemma 3 270M.",
    )
    probe: Optional[Union[bool, str]] = Field(
        default=None,
        description="Probe file; None picks the shipped probe for the model, False runs without a risk.",
    )
    risk_threshold: Optional[float] = Field(
        default=None, ge=0.0, le=1.0, description="Risk at or above which an answer is flagged."
    )
    verbose: bool = Field(default=False, description="Print llama.cpp's log messages to stderr.")
    # llama_cpp's ModelSettings locks the model in RAM by default, which pages
    # the whole file in before the first answer; llama_cpp.Llama does not.
    use_mlock: bool = Field(default=False, description="Lock the model in RAM (mlock).")

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, **other_sources):
        return (init_settings,)


def _check_supported(settings: ModelSettings) -> None:
    defaults = HnggmlModelSettings(model=settings.model)
    changed = [
        name
        for name in type(settings).model_fields
        if name not in _FORWARDED_SETTINGS
        and name not in _HANDLED_SETTINGS
        and getattr(settings, name) != getattr(defaults, name)
    ]
    if changed:
        raise ValueError(
            f"hnggml serve does not support the model settings {changed}; "
            f"leave them at their defaults (supported: {', '.join(_FORWARDED_SETTINGS)})"
        )


class HnggmlLlamaProxy(LlamaProxy):
    """llama_cpp's LlamaProxy that constructs ``hnggml.Llama`` models."""

    @staticmethod
    def load_llama_from_model_settings(settings: ModelSettings):
        from .llama import Llama

        _check_supported(settings)
        kwargs = {name: getattr(settings, name) for name in _FORWARDED_SETTINGS}
        return Llama(
            settings.model,
            probe=getattr(settings, "probe", None),
            risk_threshold=getattr(settings, "risk_threshold", None),
            **kwargs,
        )


# Request guard -------------------------------------------------------------------


def is_loopback_host(host: str) -> bool:
    """Return True when ``host`` names only this machine (localhost, 127.0.0.0/8, ::1)."""
    name = host.strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _error_body(message: str, error_type: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def error_response(status: int, message: str, error_type: str = "invalid_request_error",
                   param: str | None = None, code: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """Build an error response in OpenAI's format: ``{"error": {"message", "type", "param", "code"}}``."""
    return JSONResponse(_error_body(message, error_type, param, code), status_code=status, headers=headers)


class RequestGuard:
    """ASGI middleware that checks the Host header, the API key and the body size.

    It runs before routing, so every path (including unknown ones and
    /openapi.json) needs the key. It reads the whole body, up to
    ``max_body_bytes``, and replays it to the application. A larger body is
    rejected with 413 as soon as the limit is passed.
    """

    def __init__(self, app: ASGIApp, *, api_key: str | None, max_body_bytes: int,
                 loopback_only: bool) -> None:
        self.app = app
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        rejection = self._check_headers(headers, scope)
        if rejection is not None:
            await rejection(scope, receive, send)
            return

        body = bytearray()
        more_body = True
        while more_body:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more_body = message.get("more_body", False)
            if len(body) > self.max_body_bytes:
                logger.info("rejected %s %s: body exceeds %d bytes", scope["method"], scope["path"],
                            self.max_body_bytes)
                await self._too_large()(scope, receive, send)
                return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _check_headers(self, headers: Headers, scope: Scope) -> Response | None:
        if self.loopback_only:
            host = headers.get("host", "")
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if not is_loopback_host(name):
                # A browser page that rebinds its own domain name to 127.0.0.1
                # sends its domain here, so only loopback names are accepted.
                logger.info("rejected %s %s: Host header %r is not a loopback name",
                            scope["method"], scope["path"], host)
                return error_response(
                    400, f"invalid Host header {host!r}: this server listens on loopback only, "
                    "so use http://127.0.0.1:PORT or http://localhost:PORT", code="invalid_host")

        if self.api_key is not None and not self._key_matches(headers.get("authorization")):
            logger.info("rejected %s %s: missing or invalid API key", scope["method"], scope["path"])
            return error_response(
                401, "missing or invalid API key; send the header 'Authorization: Bearer KEY' "
                "with the key given to `hnggml serve --api-key`", code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"})

        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return error_response(400, f"invalid Content-Length header {length!r}")
            if int(length) > self.max_body_bytes:
                logger.info("rejected %s %s: Content-Length %s exceeds %d bytes", scope["method"],
                            scope["path"], length, self.max_body_bytes)
                return self._too_large()
        return None

    def _key_matches(self, authorization: str | None) -> bool:
        if not authorization:
            return False
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(credentials.strip().encode("utf-8"), self.api_key.encode("utf-8"))

    def _too_large(self) -> Response:
        return error_response(
            413, f"request body is larger than {self.max_body_bytes} bytes; shorten the prompt "
            "or start the server with a larger --max-body-size", code="request_too_large")


# Application state -------------------------------------------------------------------


@dataclass
class ServerState:
    """The one model of this server and the lock that serialises its use."""

    proxy: LlamaProxy
    alias: str
    max_tokens_cap: int
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def llama(self):
        return self.proxy()


def _state(request: Request) -> ServerState:
    return request.app.state.hnggml


class ChatCompletionRequest(CreateChatCompletionRequest):
    """llama_cpp's chat request plus OpenAI's newer name for max_tokens."""

    max_completion_tokens: Optional[int] = Field(
        default=None, description="Alias of max_tokens sent by newer OpenAI clients; max_tokens wins when both are set."
    )


def _resolve_max_tokens(requested: int | None, cap: int) -> int | JSONResponse:
    """Apply the server's cap: None and 0 get the cap, larger requests are rejected."""
    if requested is None or requested == 0:
        return cap
    if requested < 0:
        return error_response(400, f"max_tokens must be a positive integer, got {requested}", param="max_tokens")
    if requested > cap:
        return error_response(
            400, f"max_tokens {requested} exceeds this server's limit of {cap} tokens; request at most "
            f"{cap}, or restart `hnggml serve` with a larger --max-tokens-cap",
            param="max_tokens", code="max_tokens_exceeded")
    return requested


def _risk_headers(report: dict[str, Any] | None) -> dict[str, str]:
    report = report or {}
    headers = {FLAGGED_HEADER: "true" if report.get("flagged") else "false"}
    if report.get("risk") is not None:
        headers[RISK_HEADER] = f"{report['risk']:.6f}"
    return headers


# Routes -----------------------------------------------------------------------------

router = APIRouter(route_class=RouteErrorHandler)


@router.get("/v1/models", summary="Models")
async def list_models(request: Request) -> JSONResponse:
    """List the one model this server runs."""
    state = _state(request)
    llama = state.llama
    probe = llama.probe
    threshold = llama.risk_threshold
    if threshold is None and probe is not None:
        threshold = probe.threshold
    entry = {
        "id": state.alias,
        "object": "model",
        "created": state.created,
        "owned_by": "hnggml",
        "hnggml": {
            "architecture": llama.model_info.architecture,
            "probe": probe is not None,
            "risk_threshold": threshold,
        },
    }
    return JSONResponse({"object": "list", "data": [entry]})


@router.post("/v1/completions", summary="Completion")
async def create_completion(request: Request, body: CreateCompletionRequest) -> Response:
    """Generate a text completion; the response carries the hnggml report."""
    state = _state(request)
    if isinstance(body.prompt, list):
        if len(body.prompt) > 1:
            return error_response(400, f"this server completes one prompt per request, got {len(body.prompt)}",
                                  param="prompt")
        body.prompt = body.prompt[0] if body.prompt else ""
    rejection = _check_common(body)
    if rejection is not None:
        return rejection
    max_tokens = _resolve_max_tokens(body.max_tokens, state.max_tokens_cap)
    if isinstance(max_tokens, JSONResponse):
        return max_tokens
    if body.logprobs is not None:
        return _logprobs_unsupported()

    kwargs = body.model_dump(exclude=_COMPLETION_EXCLUDE)
    kwargs.update(max_tokens=max_tokens, model=state.alias)
    return await _respond(request, state, body, kwargs, lambda llama, **kw: llama.create_completion(**kw))


@router.post("/v1/chat/completions", summary="Chat")
async def create_chat_completion(request: Request, body: ChatCompletionRequest) -> Response:
    """Generate a chat completion; the response carries the hnggml report."""
    state = _state(request)
    rejection = _check_common(body)
    if rejection is not None:
        return rejection
    requested = body.max_tokens if body.max_tokens is not None else body.max_completion_tokens
    max_tokens = _resolve_max_tokens(requested, state.max_tokens_cap)
    if isinstance(max_tokens, JSONResponse):
        return max_tokens
    if body.logprobs or body.top_logprobs:
        return _logprobs_unsupported()

    kwargs = body.model_dump(exclude=_CHAT_EXCLUDE)
    kwargs.update(max_tokens=max_tokens, model=state.alias)
    return await _respond(request, state, body, kwargs, lambda llama, **kw: llama.create_chat_completion(**kw))


def _check_common(body: CreateCompletionRequest | CreateChatCompletionRequest) -> JSONResponse | None:
    if body.n is not None and body.n != 1:
        return error_response(400, f"n must be 1 (one answer per request), got {body.n}", param="n")
    return None


def _logprobs_unsupported() -> JSONResponse:
    # llama.cpp returns logprobs only with logits_all=True; see _HANDLED_SETTINGS.
    return error_response(400, "logprobs are not supported by hnggml serve; remove logprobs/top_logprobs",
                          param="logprobs")


async def _respond(request: Request, state: ServerState, body, kwargs: dict[str, Any],
                   call: Callable[..., Any]) -> Response:
    if kwargs.get("stream", False):
        send_chan, recv_chan = anyio.create_memory_object_stream(math.inf)
        return EventSourceResponse(
            recv_chan,
            data_sender_callable=partial(_publish, request, state, body, kwargs, call, send_chan),
            sep="\n",
        )

    async with state.lock:
        if await request.is_disconnected():
            logger.info("client %s disconnected while queued; skipped its request", request.client)
            return error_response(400, "client closed the request")
        llama = prepare_request_resources(body, state.proxy, body.model, kwargs)
        result = await anyio.to_thread.run_sync(partial(call, llama, **kwargs))
    return JSONResponse(result, headers=_risk_headers(result.get("hnggml")))


async def _publish(request: Request, state: ServerState, body, kwargs: dict[str, Any],
                   call: Callable[..., Iterator[dict]], send_chan) -> None:
    """Send the chunks of one streamed answer as SSE events, then ``[DONE]``."""
    async with send_chan:
        try:
            async with state.lock:
                llama = prepare_request_resources(body, state.proxy, body.model, kwargs)
                await anyio.to_thread.run_sync(_drain, partial(call, llama, **kwargs), send_chan)
            await send_chan.send({"data": "[DONE]"})
        except anyio.get_cancelled_exc_class():
            logger.info("client %s disconnected mid-stream; stopped or skipped its generation", request.client)
            raise
        except anyio.BrokenResourceError:
            logger.info("client %s stopped reading mid-stream; stopped its generation", request.client)
        except Exception as exc:  # the status line is already sent, so the error goes out as an event
            status, error = _stream_error(exc, body)
            if status >= 500:
                logger.exception("stream for client %s failed", request.client)
            else:
                logger.info("rejected stream for client %s: %s", request.client, error["message"])
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await send_chan.send({"data": json.dumps({"error": error})})


def _stream_error(exc: Exception, body) -> tuple[int, dict[str, Any]]:
    """Format an exception like llama_cpp's RouteErrorHandler does for non-streaming requests."""
    for pattern, formatter in RouteErrorHandler.pattern_and_formatters.items():
        match = pattern.search(str(exc))
        if match is not None:
            status, error = formatter(body, match)
            return status, dict(error)
    return 500, _error_body(str(exc), "internal_server_error")["error"]


def _drain(start: Callable[[], Iterator[dict]], send_chan) -> None:
    """Run one generation in this worker thread and forward its chunks.

    The generator is created, advanced and closed in this one thread, because
    hnggml.Llama holds a thread-owned lock while it streams. The host task's
    cancellation (a disconnected client) is checked after every chunk.
    """
    iterator = start()
    try:
        for chunk in iterator:
            anyio.from_thread.check_cancelled()
            anyio.from_thread.run_sync(send_chan.send_nowait, {"data": json.dumps(chunk)})
    finally:
        iterator.close()


# Application ----------------------------------------------------------------------------


def create_app(
    model_settings: HnggmlModelSettings,
    *,
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_tokens_cap: int = DEFAULT_MAX_TOKENS_CAP,
    loopback_only: bool = True,
) -> FastAPI:
    """Load the model and build the FastAPI application that serves it.

    ``loopback_only`` rejects requests whose Host header is not a loopback
    name; set it to False when the server listens on another interface.
    """
    if max_tokens_cap < 1:
        raise ValueError(f"max_tokens_cap must be at least 1 token, got {max_tokens_cap}")
    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be at least 1 byte, got {max_body_bytes}")
    if api_key is not None and not api_key.strip():
        raise ValueError("the API key is empty; pass a non-empty key, or none to turn authentication off")

    if not model_settings.model_alias:
        model_settings.model_alias = default_alias(model_settings.model)
    proxy = HnggmlLlamaProxy(models=[model_settings])
    from . import __version__

    app = FastAPI(title="hnggml", version=__version__)
    app.state.hnggml = ServerState(proxy=proxy, alias=model_settings.model_alias, max_tokens_cap=max_tokens_cap)
    app.include_router(router)
    app.add_middleware(RequestGuard, api_key=api_key, max_body_bytes=max_body_bytes, loopback_only=loopback_only)
    logger.info("serving %s as %r (max_tokens cap %d, body limit %d bytes, API key %s)", model_settings.model,
                model_settings.model_alias, max_tokens_cap, max_body_bytes, "required" if api_key else "off")
    return app


def default_alias(model: str | None) -> str:
    """Return the model id listed by /v1/models: the ollama: reference or the file name without .gguf."""
    if not model:
        from .models import DEFAULT_MODEL

        model = DEFAULT_MODEL
    if model.startswith("ollama:"):
        return model
    name = model.replace("\\", "/").rsplit("/", 1)[-1]
    return name[: -len(".gguf")] if name.lower().endswith(".gguf") else name


def bind_socket(host: str, port: int) -> socket.socket:
    """Open a listening TCP socket on host:port (port 0 picks a free port)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    if not infos:
        raise OSError(f"cannot resolve the listen address {host!r}")
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock
