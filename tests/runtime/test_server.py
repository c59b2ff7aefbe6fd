"""The local server over real HTTP on localhost: the SageMaker contract, streaming, adapters,
concurrency, bad input, hostile clients (huge, slow or malformed requests) and a clean shutdown."""

from __future__ import annotations

import contextlib
import json
import logging
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

PROMPTS = [
    "Summarize the following conversation.",
    "#Person1#: Hi",
    "The quick brown fox",
    "Fine-tuning with LoRA",
    "Dialogue: the manager asks",
]


class RunningServer:
    """The server `genai serve` runs (``build_server``), on a free port, in a thread."""

    def __init__(self, engine, **timeouts) -> None:
        from genai_runtime.inference.server import build_server

        self.engine = engine
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP.
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.socket.bind(("127.0.0.1", 0))
        self.address = self.socket.getsockname()
        self.url = f"http://127.0.0.1:{self.address[1]}"
        self.server = build_server(engine, log_level="warning", **timeouts)
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
    with httpx.stream(
        "POST", f"{server.url}/invocations", json=body, timeout=60, headers={"Accept": "application/jsonlines"}
    ) as response:
        assert sum(1 for line in response.iter_lines() if line) == len(lines)


def test_adapter_per_request(server):
    body = {"inputs": PROMPTS[0], "parameters": {"max_new_tokens": 8}}
    texts = {
        name: _invoke(server.url, {**body, "adapter": name} if name else body).json()[0]["generated_text"]
        for name in (None, "tenant-a", "tenant-b")
    }
    assert len(set(texts.values())) == 3


def test_ten_concurrent_clients_each_get_their_own_answer(server):
    expected = {p: _invoke(server.url, {"inputs": p, "parameters": {"max_new_tokens": 6}}).json() for p in PROMPTS}
    prompts = PROMPTS * 2

    def call(prompt):
        with httpx.Client(timeout=60) as client:  # ten separate clients
            return client.post(
                f"{server.url}/invocations", json={"inputs": prompt, "parameters": {"max_new_tokens": 6}}
            ).json()

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
    with ThreadPoolExecutor(max_workers=3) as pool:
        # One in flight, two queued behind it (other parameters: no batching): all finish within the grace.
        pending = [
            pool.submit(_invoke, running.url, {"inputs": PROMPTS[0], "parameters": {"max_new_tokens": n}})
            for n in (150, 20, 21)
        ]
        time.sleep(0.3)
        running.stop()
        assert [future.result().status_code for future in pending] == [200, 200, 200]
    assert not running.thread.is_alive()
    assert not running.engine.ready


def test_genai_serve_command_serves_and_exits_cleanly_on_sigterm(tiny_model):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "genai_runtime.cli", "serve", "--model", str(tiny_model), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
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


# ---- hostile and slow clients -----------------------------------------------------------------


def _connect(running) -> socket.socket:
    return socket.create_connection(running.address, timeout=10)


def _read_until_closed(sock: socket.socket, deadline_s: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection (fails after ``deadline_s``)."""
    received = b""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:  # closed with our unread bytes still in its buffer
            return received
        if not chunk:
            return received
        received += chunk
    raise AssertionError(f"the server kept the connection open; it sent {received[:200]!r}")


def _status_and_error(raw: bytes) -> tuple[int, str]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)["error"] if body.startswith(b"{") else body.decode()


@pytest.fixture(scope="module")
def strict_server(tiny_model):
    """Short header and body timeouts, so that slow clients are cut off within a test's time."""
    from genai_runtime.inference.engine import InferenceEngine

    running = RunningServer(InferenceEngine(tiny_model), header_timeout=0.5, body_timeout=0.5)
    yield running
    running.stop()


def test_a_body_over_the_limit_is_refused_from_its_content_length_before_it_is_sent(server):
    from genai_runtime.inference.schema import MAX_BODY_BYTES

    declared = 256 << 20
    with _connect(server) as sock:
        # Only the headers and a few bytes of the announced 256 MB: a 413 can only come from the header.
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: t\r\ncontent-type: application/json\r\n"
            b'content-length: %d\r\n\r\n{"inputs": ' % declared
        )
        status, error = _status_and_error(_read_until_closed(sock))
    assert status == 413
    assert f"body is {declared} bytes (content-length); the limit is {MAX_BODY_BYTES}" in error


def test_a_chunked_body_is_cut_off_as_soon_as_it_passes_the_limit(server):
    from genai_runtime.inference.schema import MAX_BODY_BYTES

    chunk = b" " * 65536
    with _connect(server) as sock:
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: t\r\ncontent-type: application/json\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        for _ in range(MAX_BODY_BYTES // len(chunk) + 1):  # just past the limit, and never the final chunk
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        status, error = _status_and_error(_read_until_closed(sock))
    assert status == 413
    assert f"over {MAX_BODY_BYTES} bytes" in error


def test_a_client_that_sends_its_headers_slowly_is_disconnected_after_the_header_timeout(strict_server):
    import select

    with _connect(strict_server) as sock:
        sock.sendall(b"POST /invocations HTTP/1.1\r\n")
        started = time.monotonic()
        for byte in b"Host: t\r\nX-Slow: " + b"a" * 1000:  # one byte per 50 ms: 50 s for the lot
            readable, _, _ = select.select([sock], [], [], 0.05)
            if readable:  # the server answered or closed
                break
            sock.sendall(bytes([byte]))
        raw = _read_until_closed(sock)
        elapsed = time.monotonic() - started
    assert elapsed < 5
    status, error = _status_and_error(raw)
    assert status == 408 and "request headers did not arrive within 0.5 s" in error


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(strict_server):
    with _connect(strict_server) as sock:
        assert _read_until_closed(sock, deadline_s=5) == b""  # closed without a word: there was no request


def test_a_body_nobody_reads_cannot_hold_the_connection_after_its_response(strict_server):
    with _connect(strict_server) as sock:  # /ping never reads a body; the client trickles one anyway
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: t\r\ncontent-length: 1000\r\n\r\n")
        started = time.monotonic()
        raw = b""
        while b"healthy" not in raw:
            raw += sock.recv(4096)
        with contextlib.suppress(OSError):
            for _ in range(100):  # 5 s of trickling at most
                sock.sendall(b"x")
                time.sleep(0.05)
        _read_until_closed(sock)
    assert raw.startswith(b"HTTP/1.1 200") and time.monotonic() - started < 4


def test_a_keep_alive_connection_still_serves_requests_before_the_header_timeout(strict_server):
    with httpx.Client(base_url=strict_server.url) as client:
        for _ in range(3):
            assert client.get("/ping").status_code == 200
            time.sleep(0.1)


@pytest.mark.parametrize("framing", [b"content-length: 100\r\n", b"transfer-encoding: chunked\r\n"])
def test_a_body_that_arrives_too_slowly_gets_408(strict_server, framing):
    with _connect(strict_server) as sock:
        start = b'{"inputs": '  # and nothing more
        sock.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: t\r\ncontent-type: application/json\r\n"
            + framing
            + b"\r\n"
            + (b"%x\r\n%s\r\n" % (len(start), start) if b"chunked" in framing else start)
        )
        status, error = _status_and_error(_read_until_closed(sock))
    assert status == 408
    assert "the body did not arrive within 0.5 s" in error


@pytest.mark.parametrize("stream", [False, True])
def test_ping_answers_while_a_request_is_being_tokenized(server, monkeypatch, stream):
    """Validation and tokenization run in a thread: the event loop stays free for /ping."""
    entered, release = threading.Event(), threading.Event()
    tokenize = server.engine._job

    def slow_job(request):  # stands in for tokenizing a very long input
        entered.set()
        assert release.wait(30)
        return tokenize(request)

    monkeypatch.setattr(server.engine, "_job", slow_job)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(
            _invoke, server.url, {"inputs": PROMPTS[0], "parameters": {"max_new_tokens": 3}, "stream": stream}
        )
        try:
            assert entered.wait(30), "the request never reached the engine"
            ping = httpx.get(f"{server.url}/ping", timeout=5)  # tokenization on the loop would block this
            assert ping.status_code == 200
        finally:
            release.set()
        assert pending.result().status_code == 200


def test_a_huge_input_is_refused_with_413_and_ping_keeps_answering(server):
    from genai_runtime.inference.schema import MAX_BODY_BYTES

    body = {"inputs": "word " * ((MAX_BODY_BYTES - 100) // 5), "parameters": {"max_new_tokens": 3}}
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(_invoke, server.url, body)
        assert httpx.get(f"{server.url}/ping", timeout=10).status_code == 200
        response = pending.result()
    assert response.status_code == 413 and "context of 256 tokens" in response.json()["error"]


HOSTILE = [
    (b'{"inputs": "\\ud800"}', 400, "inputs: contains a lone surrogate"),
    (b'{"inputs": ["ok", "\\udfff x"]}', 400, "inputs[1]: contains a lone surrogate"),
    (b'{"inputs": "\xff\xfe"}', 400, "not valid UTF-8"),
    (b'{"inputs": "x", "parameters": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5001, 400, "nested deeper than 16"),
    (b"[" * 200_000 + b"]" * 200_000, 400, "nested deeper than 16"),
    (b'{"inputs": "x", "parameters": {"temperature": NaN}}', 400, "parameters.temperature: nan is not a finite"),
    (b'{"inputs": "x", "parameters": {"top_p": -Infinity}}', 400, "parameters.top_p: -inf is not a finite"),
    (b'{"inputs": "x", "parameters": {"temperature": 1e999}}', 400, "parameters.temperature: inf is not a finite"),
    (b'{"inputs": "x", "parameters": {"max_new_tokens": 1000000000}}', 400, "parameters.max_new_tokens"),
    (b'{"inputs": "x", "parameters": {"max_new_tokens": 4096}}', 413, "lower max_new_tokens"),
    (b'{"inputs": "x", "parameters": {"max_new_tokens": ' + b"9" * 5000 + b"}}", 400, "4300 digits"),
    (b'{"inputs": "x", "parameters": {"seed": -1}}', 400, "parameters.seed"),
    (b'{"inputs": {"text": "x"}}', 400, "inputs"),
    (b'"just a string"', 400, "must be a JSON object"),
    (b"", 400, "must be a JSON object"),
    (b'{"inputs": "x"', 400, "not valid JSON"),
]


@pytest.mark.parametrize(("body", "status", "message"), HOSTILE, ids=lambda value: None)
def test_hostile_bodies_get_a_4xx_that_names_the_problem(server, body, status, message):
    response = httpx.post(
        f"{server.url}/invocations", content=body, timeout=60, headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    assert message in response.json()["error"]


def _json_ish():
    from hypothesis import strategies as st

    keys = st.sampled_from(
        [
            "inputs",
            "parameters",
            "adapter",
            "stream",
            "max_new_tokens",
            "temperature",
            "top_p",
            "top_k",
            "do_sample",
            "repetition_penalty",
            "stop",
            "seed",
        ]
    ) | st.text(max_size=8)
    small = st.integers(-3, 12) | st.sampled_from([0, 2**31, 2**64, 4096, 10**30])  # generation stays short
    leaves = (
        st.none()
        | st.booleans()
        | small
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.text(max_size=20)
        | st.sampled_from(["\ud800", "\udfff", "tenant-a", "x" * 300])
    )
    values = st.recursive(
        leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4), max_leaves=12
    )
    requests = st.fixed_dictionaries(
        {"inputs": st.text(min_size=1, max_size=30) | values},
        optional={"parameters": st.dictionaries(keys, values, max_size=4), "adapter": values, "stream": values},
    )
    # ensure_ascii=False writes a lone surrogate as raw (invalid UTF-8) bytes, True as a \ud800 escape.
    documents = st.builds(
        lambda value, escape: json.dumps(value, allow_nan=True, ensure_ascii=escape).encode("utf-8", "surrogatepass"),
        requests | values,
        st.booleans(),
    )

    def mangle(data: bytes, cut: int, insert: bytes) -> bytes:  # truncate or splice in stray bytes
        cut %= len(data) + 1
        return data[:cut] + insert + data[cut:]

    mangled = st.builds(mangle, documents, st.integers(0, 10**6), st.binary(max_size=4))
    return documents | mangled | st.binary(max_size=64) | st.sampled_from([body for body, _, _ in HOSTILE])


def test_no_body_yields_a_5xx(server):
    """Random JSON-ish bytes, valid or mangled, in-process through the same app: always a 2xx or 4xx."""
    from hypothesis import HealthCheck, given, settings
    from starlette.testclient import TestClient

    from genai_runtime.inference.server import create_app

    client = TestClient(create_app(server.engine), raise_server_exceptions=False)  # no lifespan: the engine stays

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
    @given(body=_json_ish())
    def check(body):
        response = client.post("/invocations", content=body, headers={"content-type": "application/json"})
        assert response.status_code < 500, (body[:200], response.text[:300])
        if response.status_code == 200 and response.headers["content-type"].startswith("application/jsonlines"):
            assert '"code": 5' not in response.text, (body[:200], response.text[:300])

    check()


# ---- shutdown ---------------------------------------------------------------------------------


def test_requests_still_queued_when_the_drain_grace_ends_get_a_clean_503(tiny_model, monkeypatch, caplog):
    from genai_runtime.inference.engine import InferenceEngine

    engine = InferenceEngine(tiny_model, max_batch_size=1)
    running = RunningServer(engine, drain_timeout=0.5)
    thread_errors = []
    monkeypatch.setattr(threading, "excepthook", thread_errors.append)
    in_generate, release = threading.Event(), threading.Event()
    generate = engine._generate

    def held_generate(*args):  # the in-flight request outlasts the grace
        in_generate.set()
        release.wait(30)
        return generate(*args)

    monkeypatch.setattr(engine, "_generate", held_generate)

    def stream(body):
        with httpx.stream("POST", f"{running.url}/invocations", json={**body, "stream": True}, timeout=60) as response:
            return response.status_code, [json.loads(line) for line in response.iter_lines() if line]

    body = {"inputs": PROMPTS[0], "parameters": {"max_new_tokens": 5}}
    with ThreadPoolExecutor(max_workers=4) as pool:
        in_flight = pool.submit(_invoke, running.url, body)
        assert in_generate.wait(30)
        queued = [pool.submit(_invoke, running.url, body) for _ in range(2)] + [pool.submit(stream, body)]
        deadline = time.monotonic() + 10
        while len(engine._unsettled) < 4:  # all three have reached the queue
            assert time.monotonic() < deadline, "the requests did not queue"
            time.sleep(0.01)
        with caplog.at_level(logging.WARNING):
            stopper = threading.Thread(target=running.stop)
            stopper.start()
            try:
                responses = [future.result(timeout=30) for future in [in_flight, *queued[:2]]]
                streamed = queued[2].result(timeout=30)
            finally:
                release.set()
                stopper.join(30)
    for response in responses:
        assert response.status_code == 503
        assert "the server is shutting down" in response.json()["error"]
    assert streamed[0] == 200 and streamed[1][-1]["code"] == 503  # its headers went out while it queued
    assert "4 queued or running request(s) answered 503" in caplog.text
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR], caplog.text
    assert thread_errors == []
    assert not running.thread.is_alive() and not engine._worker.is_alive() and not engine.ready


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--header-timeout", "0"], "0.0 must be above 0"),
        (["--body-timeout", "soon"], "'soon' is not a number"),
        (["--drain-timeout", "inf"], "'inf': give a finite number of seconds"),
    ],
)
def test_serve_timeouts_are_validated(tiny_model, capsys, flags, message):
    from genai_runtime.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["serve", "--model", str(tiny_model), *flags])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_serve_defaults_are_the_servers(tiny_model):
    from genai_runtime.cli import build_parser
    from genai_runtime.inference import server

    args = build_parser().parse_args(["serve", "--model", str(tiny_model)])
    assert (args.header_timeout, args.body_timeout, args.drain_timeout) == (
        server.HEADER_TIMEOUT_S,
        server.BODY_TIMEOUT_S,
        server.DRAIN_TIMEOUT_S,
    )


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), "5", True])
def test_build_server_refuses_a_bad_timeout(engine, value):
    from genai_runtime.errors import UsageError
    from genai_runtime.inference.server import build_server

    for name in ("header_timeout", "body_timeout", "drain_timeout"):
        with pytest.raises(UsageError, match=f"{name}="):
            build_server(engine, **{name: value})
