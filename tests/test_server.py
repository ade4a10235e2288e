"""hnggml.server: the OpenAI-compatible HTTP server, tested over real HTTP.

One server (uvicorn in a background thread, on a free loopback port) runs the
real test model for the whole module. Clients are the official ``openai``
package and plain httpx. The server is configured with an API key, a 16 KiB
body limit and a max_tokens cap of 48.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import openai
import pytest

pytest.importorskip("llama_cpp.server")
uvicorn = pytest.importorskip("uvicorn")

from hnggml.server import (  # noqa: E402
    FLAGGED_HEADER,
    RISK_HEADER,
    HnggmlModelSettings,
    bind_socket,
    create_app,
    default_alias,
    is_loopback_host,
    parse_byte_size,
)

API_KEY = "test-key-123"
CAP = 48
BODY_LIMIT = 16 * 1024
PROMPT = "Q: What is the capital of France?\nA:"
COUNTING_PROMPT = "1, 2, 3, 4, 5, 6,"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@dataclass
class RunningServer:
    base_url: str
    app: object
    alias: str

    @property
    def llm(self):
        return self.app.state.hnggml.llama

    def http(self, **kwargs) -> httpx.Client:
        # trust_env=False keeps proxy variables from routing loopback traffic elsewhere.
        return httpx.Client(base_url=self.base_url, trust_env=False, timeout=60, **kwargs)

    def openai(self, api_key: str = API_KEY) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.base_url}/v1", api_key=api_key, max_retries=0, timeout=60,
                             http_client=httpx.Client(trust_env=False))


@pytest.fixture(scope="module")
def server(model_path, probe_path):
    settings = HnggmlModelSettings(model=str(model_path), probe=str(probe_path), n_ctx=512, n_threads=1,
                                   n_threads_batch=1, seed=0)
    app = create_app(settings, api_key=API_KEY, max_body_bytes=BODY_LIMIT, max_tokens_cap=CAP)
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    uvicorn_server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uvicorn_server.started:
        assert thread.is_alive(), "uvicorn stopped during startup"
        assert time.monotonic() < deadline, "uvicorn did not start within 30 s"
        time.sleep(0.02)
    yield RunningServer(f"http://127.0.0.1:{port}", app, settings.model_alias)
    uvicorn_server.should_exit = True
    thread.join(timeout=30)
    sock.close()
    app.state.hnggml.proxy.free()


def check_report(report: dict) -> None:
    assert 0.0 <= report["risk"] <= 1.0
    assert isinstance(report["flagged"], bool)
    assert report["flagged"] == (report["risk"] >= report["threshold"])


def sse_events(response: httpx.Response) -> list[str]:
    return [line[len("data: "):] for line in response.iter_lines() if line.startswith("data: ")]


# Pure helpers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("512", 512), ("64KiB", 65536), ("1MiB", 1048576), ("2MB", 2_000_000), ("1.5 kb", 1500), (4096, 4096)],
)
def test_parse_byte_size_units(text, expected):
    assert parse_byte_size(text) == expected


@pytest.mark.parametrize("text", ["", "1XB", "-5", "MiB", "0"])
def test_parse_byte_size_invalid(text):
    with pytest.raises(ValueError, match="byte size"):
        parse_byte_size(text)


@pytest.mark.parametrize(
    ("host", "expected"),
    [("127.0.0.1", True), ("127.3.2.1", True), ("localhost", True), ("::1", True), ("[::1]", True),
     ("0.0.0.0", False), ("192.168.1.5", False), ("example.com", False)],
)
def test_is_loopback_host_cases(host, expected):
    assert is_loopback_host(host) is expected


def test_default_alias_forms():
    assert default_alias("/models/gemma-3-270m-q4_k_m.gguf") == "gemma-3-270m-q4_k_m"
    assert default_alias("ollama:gemma3:270m") == "ollama:gemma3:270m"
    assert default_alias(None) == "gemma-3-270m-q4_k_m"


def test_model_settings_ignore_environment(monkeypatch):
    monkeypatch.setenv("N_CTX", "7")
    monkeypatch.setenv("MODEL", "/elsewhere.gguf")

    settings = HnggmlModelSettings()

    assert settings.n_ctx == 2048
    assert settings.model is None


def test_create_app_rejects_unsupported_setting(model_path):
    settings = HnggmlModelSettings(model=str(model_path), probe=False, embedding=True)

    with pytest.raises(ValueError, match="does not support the model settings \\['embedding'\\]"):
        create_app(settings)


# OpenAI client ------------------------------------------------------------------------


def test_server_models_list(server):
    models = server.openai().models.list()

    assert [model.id for model in models.data] == [server.alias]
    assert models.data[0].model_extra["hnggml"]["probe"] is True


def test_server_completion_openai_client(server):
    raw = server.openai().completions.with_raw_response.create(
        model=server.alias, prompt=PROMPT, max_tokens=8, temperature=0)
    completion = raw.parse()

    report = completion.model_extra["hnggml"]
    check_report(report)
    assert completion.model == server.alias
    assert completion.choices[0].text.strip()
    assert raw.headers[RISK_HEADER] == f"{report['risk']:.6f}"
    assert raw.headers[FLAGGED_HEADER] == str(report["flagged"]).lower()


def test_server_chat_openai_client(server):
    raw = server.openai().chat.completions.with_raw_response.create(
        model=server.alias, messages=[{"role": "user", "content": "Name a colour."}], max_tokens=8,
        temperature=0)
    chat = raw.parse()

    report = chat.model_extra["hnggml"]
    check_report(report)
    assert chat.choices[0].message.role == "assistant"
    assert raw.headers[RISK_HEADER] == f"{report['risk']:.6f}"


def test_server_completion_stream_openai_client(server):
    chunks = list(server.openai().completions.create(
        model=server.alias, prompt=COUNTING_PROMPT, max_tokens=8, temperature=0, stream=True))

    assert len(chunks) > 1
    assert all("hnggml" not in (chunk.model_extra or {}) for chunk in chunks[:-1])
    assert chunks[-1].choices[0].finish_reason is not None
    check_report(chunks[-1].model_extra["hnggml"])
    assert "".join(chunk.choices[0].text for chunk in chunks).strip()


def test_server_chat_stream_openai_client(server):
    chunks = list(server.openai().chat.completions.create(
        model=server.alias, messages=[{"role": "user", "content": "Count to five."}], max_tokens=8,
        temperature=0, stream=True))

    assert chunks[-1].choices[0].finish_reason is not None
    check_report(chunks[-1].model_extra["hnggml"])


def test_server_wrong_key_openai_client(server):
    with pytest.raises(openai.AuthenticationError):
        server.openai(api_key="wrong").models.list()


def test_server_over_cap_openai_client(server):
    with pytest.raises(openai.BadRequestError, match="max_tokens_exceeded|exceeds this server's limit"):
        server.openai().completions.create(model=server.alias, prompt=PROMPT, max_tokens=CAP + 1)


# Plain HTTP -------------------------------------------------------------------------------


def test_server_http_completion_header_matches_body(server):
    with server.http(headers=AUTH) as client:
        response = client.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 6, "temperature": 0})

    assert response.status_code == 200
    report = response.json()["hnggml"]
    check_report(report)
    assert response.headers[RISK_HEADER] == f"{report['risk']:.6f}"
    assert response.headers[FLAGGED_HEADER] == ("true" if report["flagged"] else "false")


def test_server_http_stream_report_in_last_event(server):
    body = {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 6, "stream": True}
    with server.http(headers=AUTH) as client, client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert RISK_HEADER.lower() not in response.headers
        events = sse_events(response)

    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    check_report(chunks[-1]["hnggml"])
    assert all("hnggml" not in chunk for chunk in chunks[:-1])


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/models"), ("POST", "/v1/completions"), ("POST", "/v1/chat/completions"),
     ("GET", "/openapi.json"), ("GET", "/no/such/route")],
)
def test_server_missing_key_rejected(server, method, path):
    with server.http() as client:
        response = client.request(method, path, json={"prompt": "x"} if method == "POST" else None)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("authorization", [f"Bearer {API_KEY}x", f"Basic {API_KEY}", API_KEY, "Bearer"])
def test_server_invalid_key_rejected(server, authorization):
    with server.http(headers={"Authorization": authorization}) as client:
        response = client.get("/v1/models")

    assert response.status_code == 401


def test_server_oversize_body_rejected(server):
    prompt = "word " * (BODY_LIMIT // 5 + 10)
    with server.http(headers=AUTH) as client:
        response = client.post("/v1/completions", json={"prompt": prompt, "max_tokens": 1})

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_server_oversize_chunked_body_rejected(server):
    def chunks():
        for _ in range(BODY_LIMIT // 1024 + 2):
            yield b" " * 1024

    with server.http(headers={**AUTH, "Content-Type": "application/json"}) as client:
        response = client.post("/v1/completions", content=chunks())

    assert response.status_code == 413


def test_server_max_tokens_over_cap_rejected(server):
    with server.http(headers=AUTH) as client:
        response = client.post("/v1/chat/completions", json={
            "messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": CAP + 1})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "max_tokens_exceeded"
    assert error["param"] == "max_tokens"


def test_server_missing_max_tokens_capped(server):
    with server.http(headers=AUTH) as client:
        response = client.post("/v1/completions", json={"prompt": COUNTING_PROMPT, "max_tokens": 0,
                                                         "temperature": 0})

    assert response.status_code == 200
    assert 0 < response.json()["usage"]["completion_tokens"] <= CAP


@pytest.mark.parametrize(
    ("path", "extra", "param"),
    [("/v1/completions", {"n": 2}, "n"), ("/v1/completions", {"logprobs": 2}, "logprobs"),
     ("/v1/chat/completions", {"logprobs": True}, "logprobs"), ("/v1/completions", {"prompt": ["a", "b"]}, "prompt")],
)
def test_server_unsupported_parameters_rejected(server, path, extra, param):
    body = {"prompt": "x"} if path == "/v1/completions" else {"messages": [{"role": "user", "content": "x"}]}
    with server.http(headers=AUTH) as client:
        response = client.post(path, json={**body, **extra, "max_tokens": 2})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_server_foreign_host_header_rejected(server):
    with server.http(headers={**AUTH, "Host": "attacker.example:8000"}) as client:
        response = client.get("/v1/models")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_host"


def test_server_context_overflow_is_openai_error(server):
    with server.http(headers=AUTH) as client:
        response = client.post("/v1/completions", json={"prompt": "word " * 600, "max_tokens": 2})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "context_length_exceeded"


def test_server_stream_error_sent_as_event(server):
    body = {"prompt": "word " * 600, "max_tokens": 2, "stream": True}
    with server.http(headers=AUTH) as client, client.stream("POST", "/v1/completions", json=body) as response:
        assert response.status_code == 200
        events = sse_events(response)

    assert len(events) == 1
    assert json.loads(events[0])["error"]["code"] == "context_length_exceeded"


def test_server_stream_error_raised_by_openai_client(server):
    with pytest.raises(openai.APIError, match="maximum context length"):
        list(server.openai().completions.create(model=server.alias, prompt="word " * 600, max_tokens=2,
                                                stream=True))


# Queueing and disconnects ------------------------------------------------------------------


def test_server_disconnect_mid_stream_frees_model(server, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="hnggml.server")
    llm = server.llm
    sampled: list[object] = []
    original_sample = llm.sample

    def recording_sample(*args, **kwargs):
        sampled.append(llm._request)
        return original_sample(*args, **kwargs)

    monkeypatch.setattr(llm, "sample", recording_sample)
    body = {"prompt": COUNTING_PROMPT, "max_tokens": CAP, "temperature": 0, "stream": True}
    with server.http(headers=AUTH) as client:
        with client.stream("POST", "/v1/completions", json=body) as response:
            first = next(line for line in response.iter_lines() if line.startswith("data: "))
        # Leaving the block closes the connection after one chunk.
        assert "hnggml" not in json.loads(first[len("data: "):])
        follow_up = client.post("/v1/completions", json={"prompt": PROMPT, "max_tokens": 4, "temperature": 0})

    assert follow_up.status_code == 200
    check_report(follow_up.json()["hnggml"])
    assert any("disconnected mid-stream" in record.getMessage() for record in caplog.records)
    # The counting prompt runs to max_tokens unless the disconnect stops it.
    stream_request = sampled[0]
    n_stream_tokens = sum(1 for request in sampled if request is stream_request)
    assert n_stream_tokens < CAP


def test_server_concurrent_clients_all_scored(server, monkeypatch):
    llm = server.llm
    order: list[object] = []
    original_sample = llm.sample

    def recording_sample(*args, **kwargs):
        order.append(llm._request)
        return original_sample(*args, **kwargs)

    monkeypatch.setattr(llm, "sample", recording_sample)

    def one_client(index: int) -> dict:
        client = server.openai()
        prompt = f"Q: What is {index} plus {index}?\nA:"
        if index % 2:
            chunks = list(client.completions.create(model=server.alias, prompt=prompt, max_tokens=4,
                                                    temperature=0, stream=True))
            return chunks[-1].model_extra["hnggml"]
        completion = client.completions.create(model=server.alias, prompt=prompt, max_tokens=4, temperature=0)
        assert completion.usage.completion_tokens <= 4
        return completion.model_extra["hnggml"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        reports = list(pool.map(one_client, range(8)))

    assert len(reports) == 8
    for report in reports:
        check_report(report)
        assert report["n_tokens"] <= 4
    # Each request's sampled tokens form one unbroken run: no generation interleaved with another.
    runs = [request for position, request in enumerate(order) if position == 0 or order[position - 1] is not request]
    assert len(runs) == len({id(request) for request in runs}) == 8
