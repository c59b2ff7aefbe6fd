"""A local server with the SageMaker container contract: ``GET /ping``, ``POST /invocations``.

Streaming (``"stream": true`` or ``Accept: application/jsonlines``) sends one JSON line per
generated piece, ``{"token": {"text": ...}}``, then ``{"generated_text": ...}``, as LMI does.
Built on Starlette and served by uvicorn (h11).

Limits that keep a slow or hostile client from tying the server up, each answered with a 4xx:

- a body over ``schema.MAX_BODY_BYTES`` is refused from its ``content-length`` before any of it
  is read, and a chunked one as soon as its running total passes the limit (413);
- the request headers must be complete within ``header_timeout`` seconds of the connection
  opening or of the previous response (else 408 and the connection is closed: slowloris);
- the body must arrive within ``body_timeout`` seconds (408);
- on SIGTERM/SIGINT in-flight and queued requests get ``drain_timeout`` seconds to finish;
  whatever is still queued or running then is answered 503, then the engine stops.

Decoding, validation and tokenization run in a thread, so ``/ping`` answers while they work.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Iterator
from concurrent.futures import Future

import h11
import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..errors import UsageError
from .engine import InferenceEngine
from .schema import MAX_BODY_BYTES, RequestError, decode_body, parse_request

log = logging.getLogger(__name__)
STREAM_TYPES = ("application/jsonlines", "application/x-ndjson", "text/event-stream")
HEADER_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 30.0
DRAIN_TIMEOUT_S = 30.0
# After the grace: time for the 503s to go out before uvicorn cancels whatever is left.
_HARD_STOP_AFTER_S = 2.0
_SHUTTING_DOWN = "the server is shutting down: its drain grace ended before this request finished; retry it"
# Sent on a connection whose headers never completed; h11 has no request to answer at that point.
_HEADER_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s"
)


def check_seconds(name: str, value: object) -> float:
    """``value`` as a timeout in seconds, or a ``UsageError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not (math.isfinite(value) and value > 0):
        raise UsageError(f"{name}={value!r}: give a finite number of seconds above 0")
    return float(value)


def _error(status: int, message: str, *, close: bool = False) -> JSONResponse:
    # close: the body may be partly unread, so the connection cannot carry another request
    headers = {"connection": "close"} if close else None
    return JSONResponse({"error": message, "code": status}, status_code=status, headers=headers)


def create_app(engine: InferenceEngine, *, body_timeout: float = BODY_TIMEOUT_S) -> Starlette:
    body_timeout = check_seconds("body_timeout", body_timeout)

    async def ping(_: Request) -> Response:
        if engine.ready:
            return JSONResponse({"status": "healthy", "adapters": engine.adapters})
        return _error(503, "the model is not ready")

    async def invocations(request: Request) -> Response:
        content_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
        if content_type not in ("application/json", ""):
            return _error(415, f"content-type {content_type!r}: send application/json", close=True)
        try:
            body = await asyncio.wait_for(_read_body(request), body_timeout)
        except RequestError as error:
            return _error(error.status, error.message, close=True)
        except asyncio.TimeoutError:  # noqa: UP041 (on Python 3.10 wait_for raises this, not the builtin)
            return _error(
                408, f"the body did not arrive within {body_timeout:g} s; send it faster or in one piece", close=True
            )
        except ClientDisconnect:  # nobody is left to answer
            return Response(status_code=400)
        accept = request.headers.get("accept", "").split(";")[0].strip()
        try:
            # Off the event loop: tokenizing a long input must not stall /ping or other clients.
            work = await asyncio.to_thread(_accept, engine, body, accept)
            if not isinstance(work, Future):
                return StreamingResponse(_json_lines(work), media_type="application/jsonlines")
            result = await asyncio.wrap_future(work)
        except RequestError as error:
            return _error(error.status, error.message)
        except Exception:  # a model failure is a 500 with a short reason, never a traceback
            log.exception("inference failed")
            return _error(500, "inference failed; see the server log")
        return JSONResponse(result)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette):
        yield
        # Requests still queued here belong to clients uvicorn already gave up on: a short wait.
        await asyncio.get_running_loop().run_in_executor(None, engine.close, 5.0)

    return Starlette(
        routes=[Route("/ping", ping, methods=["GET"]), Route("/invocations", invocations, methods=["POST"])],
        lifespan=lifespan,
    )


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise RequestError(
            413,
            f"body is {int(declared)} bytes (content-length); the limit is {MAX_BODY_BYTES} "
            "bytes: send a smaller request",
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:  # chunked: stop reading at the limit, not at the end
            raise RequestError(413, f"body is over {MAX_BODY_BYTES} bytes, the limit: send a smaller request")
    return bytes(body)


def _accept(engine: InferenceEngine, body: bytes, accept: str) -> Future | Iterator[str]:
    """Decode, validate and queue one request: a future of its result, or its stream of pieces."""
    parsed = parse_request(decode_body(body))
    if parsed.stream or accept in STREAM_TYPES:
        return engine.stream(parsed)
    return engine.submit(parsed)


def _json_lines(pieces: Iterator[str]) -> Iterator[bytes]:
    generated = []
    try:
        for piece in pieces:
            generated.append(piece)
            yield (json.dumps({"token": {"text": piece}}) + "\n").encode()
    except RequestError as error:  # e.g. a 503 at the end of the drain grace: headers are gone, report in-band
        yield (json.dumps({"error": error.message, "code": error.status}) + "\n").encode()
        return
    except Exception as error:  # headers are gone: report the failure in-band, as LMI does
        log.exception("streaming failed")
        yield (json.dumps({"error": str(error) or "inference failed", "code": 500}) + "\n").encode()
        return
    yield (json.dumps({"generated_text": "".join(generated)}) + "\n").encode()


def header_timeout_protocol(header_timeout: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol plus a deadline for each request's headers.

    uvicorn's ``timeout_keep_alive`` restarts on every byte received and is not armed on a new
    connection at all, so a client that sends its headers a byte at a time stays connected forever.
    Here the deadline runs from the connection opening, or from the previous response, until the
    next request's headers are complete; a client still trickling a body nobody reads after its
    response (a 413, a 415) gets the same deadline.
    """
    header_timeout = check_seconds("header_timeout", header_timeout)

    class HeaderTimeoutProtocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm_header_timer()

        def data_received(self, data: bytes) -> None:
            cycle = self.cycle
            super().data_received(data)
            if self.cycle is not cycle:  # a new request's headers are complete: the body timeout takes over
                self._cancel_header_timer()

        def on_response_complete(self) -> None:
            cycle = self.cycle
            super().on_response_complete()
            if not self.transport.is_closing() and self.cycle is cycle:  # no pipelined request started
                self._arm_header_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_header_timer()
            super().connection_lost(exc)

        def _arm_header_timer(self) -> None:
            self._cancel_header_timer()
            self._header_timer = self.loop.call_later(header_timeout, self._headers_timed_out)

        def _cancel_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_timed_out(self) -> None:
            self._header_timer = None
            if self.transport.is_closing():
                return
            if self.conn.their_state is h11.IDLE and self.conn.trailing_data[0]:  # a request begun: say why
                message = f"request headers did not arrive within {header_timeout:g} s".encode()
                self.transport.write(_HEADER_TIMEOUT_RESPONSE % (len(message), message))
            self.transport.close()

    return HeaderTimeoutProtocol


class DrainingServer(uvicorn.Server):
    """uvicorn's server, but when the drain grace ends every request still queued or running gets a 503.

    uvicorn itself cancels the tasks left at the end of ``timeout_graceful_shutdown`` and answers
    them 500; here the grace ends ``_HARD_STOP_AFTER_S`` earlier, with the engine's clean 503.
    """

    def __init__(self, config: uvicorn.Config, engine: InferenceEngine, drain_timeout: float) -> None:
        super().__init__(config)
        self.engine = engine
        self.drain_timeout = drain_timeout

    async def shutdown(self, sockets=None) -> None:
        timer = asyncio.get_running_loop().call_later(self.drain_timeout, self._end_grace)
        try:
            await super().shutdown(sockets)
        finally:
            timer.cancel()

    def _end_grace(self) -> None:
        answered = self.engine.abort(_SHUTTING_DOWN)
        if answered:
            log.warning(
                "drain grace of %g s ended: %d queued or running request(s) answered 503", self.drain_timeout, answered
            )


def build_server(
    engine: InferenceEngine,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    header_timeout: float = HEADER_TIMEOUT_S,
    body_timeout: float = BODY_TIMEOUT_S,
    drain_timeout: float = DRAIN_TIMEOUT_S,
    log_level: str = "info",
) -> DrainingServer:
    """The uvicorn server ``genai serve`` runs (``.run()``; pass ``sockets=`` to serve a bound socket)."""
    drain_timeout = check_seconds("drain_timeout", drain_timeout)
    app = create_app(engine, body_timeout=body_timeout)
    # A body still arriving at the end of the grace gets its 408 (or, complete, a 503) before the hard stop.
    hard_stop = max(drain_timeout, body_timeout) + _HARD_STOP_AFTER_S
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        http=header_timeout_protocol(header_timeout),
        timeout_graceful_shutdown=hard_stop,  # type: ignore[arg-type]  # uvicorn says int; it takes seconds as a float
        ws="none",
    )  # no WebSocket routes: refuse upgrades
    return DrainingServer(config, engine, drain_timeout)


def serve(
    engine: InferenceEngine,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    header_timeout: float = HEADER_TIMEOUT_S,
    body_timeout: float = BODY_TIMEOUT_S,
    drain_timeout: float = DRAIN_TIMEOUT_S,
) -> None:
    """Serve until SIGINT/SIGTERM; in-flight requests get ``drain_timeout`` s to finish, then the engine stops."""
    build_server(
        engine, host, port, header_timeout=header_timeout, body_timeout=body_timeout, drain_timeout=drain_timeout
    ).run()
