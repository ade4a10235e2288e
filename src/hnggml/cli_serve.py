"""``hnggml serve``: run the OpenAI-compatible HTTP server of :mod:`hnggml.server`.

Importing this module registers the command on :data:`hnggml.cli.main`.
"""

from __future__ import annotations

import logging

import click

from .cli import _fail, main, model_option, probe_option
from .cli_common import padded_n_ctx

logger = logging.getLogger(__name__)


class ByteSize(click.ParamType):
    """A byte count with an optional unit: 65536, 64KiB, 1MiB, 2MB."""

    name = "SIZE"

    def convert(self, value, param, ctx) -> int:
        from .server import parse_byte_size

        try:
            return parse_byte_size(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@main.command()
@model_option
@probe_option
@click.option("--risk-threshold", type=click.FloatRange(0.0, 1.0), default=None,
              help="Risk in [0, 1] at or above which an answer is flagged; default: the probe's threshold.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. The default accepts connections from this machine only; "
              "another address exposes the server to the network, so set --api-key too.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="TCP port to listen on; 0 picks a free port and prints it.")
@click.option("--api-key", envvar="HNGGML_API_KEY", default=None, metavar="KEY",
              help="Require the header 'Authorization: Bearer KEY' on every request (env HNGGML_API_KEY); "
              "default: no key.")
@click.option("--n-ctx", type=click.IntRange(0, 1 << 20), default=2048, show_default=True, callback=padded_n_ctx,
              help="Context window in tokens, shared by prompt and answer and rounded up to a multiple of "
              "256; 0 uses the model's training context.")
@click.option("--threads", type=click.IntRange(1, 512), default=None,
              help="CPU threads for llama.cpp (prompt and generation); default: half the cores.")
@click.option("--max-tokens-cap", type=click.IntRange(1, 1 << 20), default=512, show_default=True,
              help="Largest max_tokens a request may ask for, in tokens. Requests without max_tokens "
              "(or with 0) get this value; larger ones are rejected with HTTP 400.")
@click.option("--max-body-size", type=ByteSize(), default="1MiB", show_default=True,
              help="Largest request body, in bytes or with a unit (KB, MB = powers of 1000; KiB, MiB = "
              "powers of 1024); larger bodies are rejected with HTTP 413.")
@click.option("--chat-format", default=None, metavar="NAME",
              help="llama-cpp-python chat format for /v1/chat/completions (e.g. chatml, gemma, alpaca); "
              "default: the model's own chat template.")
@click.option("--alias", default=None, metavar="ID",
              help="Model id listed by /v1/models and returned in responses; default: the ollama: "
              "reference or the model's file name without .gguf.")
def serve(model: str | None, probe: str | None, risk_threshold: float | None, host: str, port: int,
          api_key: str | None, n_ctx: int, threads: int | None, max_tokens_cap: int, max_body_size: int,
          chat_format: str | None, alias: str | None) -> None:
    """Serve the model over an OpenAI-compatible HTTP API.

    Routes: GET /v1/models, POST /v1/completions and POST /v1/chat/completions
    (with "stream": true as server-sent events). Every answer carries its
    hallucination risk under the key "hnggml" in the body; non-streaming
    answers also carry the headers X-Hnggml-Risk and X-Hnggml-Flagged, while a
    stream carries the report in its last chunk only. Requests queue for the
    one model in arrival order.
    """
    try:
        import uvicorn

        from .server import HnggmlModelSettings, bind_socket, create_app, is_loopback_host
    except ImportError as exc:
        raise click.ClickException(
            f"hnggml serve needs the server extra ({exc}); install it with `pip install 'hnggml[server]'`"
        ) from exc
    from .errors import HnggmlError

    loopback = is_loopback_host(host)
    if not loopback and api_key is None:
        logger.warning("listening on %s without an API key: anyone who can reach this address can use the model; "
                       "set --api-key", host)

    options = {"n_ctx": n_ctx, "chat_format": chat_format, "model_alias": alias}
    if threads is not None:
        options.update(n_threads=threads, n_threads_batch=threads)
    try:
        settings = HnggmlModelSettings(model=model, probe=probe, risk_threshold=risk_threshold, **options)
        app = create_app(settings, api_key=api_key, max_body_bytes=max_body_size,
                         max_tokens_cap=max_tokens_cap, loopback_only=loopback)
    except (HnggmlError, OSError, ValueError) as exc:
        _fail(exc)
    try:
        sock = bind_socket(host, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host} port {port}: {exc}") from exc

    bound_port = sock.getsockname()[1]
    url_host = f"[{host}]" if ":" in host else host
    click.echo(f"hnggml serve: {settings.model_alias} at http://{url_host}:{bound_port}/v1 "
               f"(API key {'required' if api_key else 'not required'}); press Ctrl+C to stop", err=True)
    log_level = "info" if logging.getLogger().isEnabledFor(logging.INFO) else "warning"
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=5))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        # uvicorn shuts down gracefully on SIGINT, then raises the signal again.
        click.echo("hnggml serve: stopped", err=True)
    finally:
        sock.close()
        app.state.hnggml.proxy.free()
        logger.info("hnggml serve stopped")
