"""The local server over real HTTP on localhost: the SageMaker contract, streaming, adapters,
concurrency, bad input and a clean shutdown."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

PROMPTS = ["Summarize the following conversation.", "#Person1#: Hi", "The quick brown fox", "Fine-tuning with LoRA",
           "Dialogue: the manager asks"]


class RunningServer:
    def __init__(self, engine) -> None:
        import uvicorn

        from genai_runtime.inference.server import create_app

        self.engine = engine
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP.
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(engine), log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture(scope="module")
def server(tiny_model, tiny_adapters):
    from genai_runtime.inference.engine import InferenceEngine

    running = RunningServer(InferenceEngine(tiny_model, tiny_adapters, batch_window_ms=20))
    yield running
    running.stop()


def _invoke(url, body, **kwargs):
    return httpx.post(f"{url}/invocations", json=body, timeout=60, **kwargs)


def test_ping(server):
    response = httpx.get(f"{server.url}/ping")
    assert response.status_code == 200
    assert response.json() == {"status": "healthy", "adapters": ["tenant-a", "tenant-b"]}


def test_invocations_returns_generated_text(server):
    response = _invoke(server.url, {"inputs": PROMPTS[0], "parameters": {"max_new_tokens": 5}})
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body, list) and len(body) == 1 and body[0]["generated_text"]


def test_streaming_sends_json_lines_as_tokens_are_generated(server):
    body = {"inputs": PROMPTS[2], "parameters": {"max_new_tokens": 8}}
    with httpx.stream("POST", f"{server.url}/invocations", json={**body, "stream": True}, timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/jsonlines")
        lines = [json.loads(line) for line in response.iter_lines() if line]
    tokens = [line["token"]["text"] for line in lines[:-1]]
    assert len(tokens) > 1
    assert lines[-1] == {"generated_text": "".join(tokens)}
    assert lines[-1]["generated_text"] == _invoke(server.url, body).json()[0]["generated_text"]
    with httpx.stream("POST", f"{server.url}/invocations", json=body, timeout=60,
                      headers={"Accept": "application/jsonlines"}) as response:
        assert sum(1 for line in response.iter_lines() if line) == len(lines)


def test_adapter_per_request(server):
    body = {"inputs": PROMPTS[0], "parameters": {"max_new_tokens": 8}}
    texts = {name: _invoke(server.url, {**body, "adapter": name} if name else body).json()[0]["generated_text"]
             for name in (None, "tenant-a", "tenant-b")}
    assert len(set(texts.values())) == 3


def test_ten_concurrent_clients_each_get_their_own_answer(server):
    expected = {p: _invoke(server.url, {"inputs": p, "parameters": {"max_new_tokens": 6}}).json() for p in PROMPTS}
    prompts = PROMPTS * 2

    def call(prompt):
        with httpx.Client(timeout=60) as client:  # ten separate clients
            return client.post(f"{server.url}/invocations",
                               json={"inputs": prompt, "parameters": {"max_new_tokens": 6}}).json()

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(call, prompts))
    assert answers == [expected[p] for p in prompts]


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
        ({"json": {"inputs": "x", "parameters": {"top_k": -1}}}, 400, "parameters.top_k"),
        ({"json": {"inputs": "x", "parameters": {"bogus": 1}}}, 400, "parameters.bogus: unknown field"),
        ({"json": {"inputs": "word " * 400}}, 413, "context of 256 tokens"),
        ({"json": {"inputs": "x", "adapter": "nobody"}}, 400, "'nobody' is not loaded"),
        ({"content": b"inputs=x", "headers": {"content-type": "text/plain"}}, 415, "send application/json"),
        ({"content": b"{" + b" " * (1 << 20) + b"}", "headers": {"content-type": "application/json"}}, 413, "limit"),
    ],
)
def test_bad_input_gets_a_clear_status_and_message(server, kwargs, status, message):
    response = httpx.post(f"{server.url}/invocations", timeout=60, **kwargs)
    assert response.status_code == status
    assert message in response.json()["error"]


def test_unknown_route_and_method(server):
    assert httpx.get(f"{server.url}/invocations").status_code == 405
    assert httpx.get(f"{server.url}/nope").status_code == 404


def test_shutdown_finishes_in_flight_requests_then_stops_the_engine(tiny_model):
    from genai_runtime.inference.engine import InferenceEngine

    running = RunningServer(InferenceEngine(tiny_model))
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(_invoke, running.url, {"inputs": PROMPTS[0], "parameters": {"max_new_tokens": 150}})
        time.sleep(0.3)
        running.stop()
        assert pending.result().status_code == 200
    assert not running.thread.is_alive()
    assert not running.engine.ready


def test_genai_serve_command_serves_and_exits_cleanly_on_sigterm(tiny_model):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "genai_runtime.cli", "serve", "--model", str(tiny_model),
                                "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, process.stdout.read()
            try:
                if httpx.get(f"{url}/ping", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "genai serve did not become ready"
            time.sleep(0.2)
        assert _invoke(url, {"inputs": "Hi", "parameters": {"max_new_tokens": 3}}).status_code == 200
        process.send_signal(signal.SIGTERM)
        # uvicorn drains, runs the lifespan shutdown (which stops the engine), then re-raises SIGTERM.
        assert process.wait(30) in (0, -signal.SIGTERM)
        log = process.stdout.read()
        assert "Application shutdown complete" in log and "Traceback" not in log
    finally:
        if process.poll() is None:
            process.kill()
