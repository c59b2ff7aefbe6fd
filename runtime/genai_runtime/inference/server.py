"""A local server with the SageMaker container contract: ``GET /ping``, ``POST /invocations``.

Streaming (``"stream": true`` or ``Accept: application/jsonlines``) sends one JSON line per
generated piece, ``{"token": {"text": ...}}``, then ``{"generated_text": ...}``, as LMI does.
Built on Starlette and served by uvicorn, which drains in-flight requests on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .engine import InferenceEngine
from .schema import RequestError, parse_request

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 1 << 20
STREAM_TYPES = ("application/jsonlines", "application/x-ndjson", "text/event-stream")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "code": status}, status_code=status)


def create_app(engine: InferenceEngine) -> Starlette:
    async def ping(_: Request) -> Response:
        if engine.ready:
            return JSONResponse({"status": "healthy", "adapters": engine.adapters})
        return _error(503, "the model is not ready")

    async def invocations(request: Request) -> Response:
        content_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
        if content_type not in ("application/json", ""):
            return _error(415, f"content-type {content_type!r}: send application/json")
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _error(413, f"body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}")
        try:
            payload = json.loads(body or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            return _error(400, f"body is not valid JSON: {error}")
        try:
            parsed = parse_request(payload)
            streaming = parsed.stream or request.headers.get("accept", "").split(";")[0] in STREAM_TYPES
            if streaming:
                pieces = engine.stream(parsed)
                return StreamingResponse(_json_lines(pieces), media_type="application/jsonlines")
            result = await asyncio.wrap_future(engine.submit(parsed))
        except RequestError as error:
            return _error(error.status, error.message)
        except Exception:  # a model failure is a 500 with a short reason, never a traceback
            log.exception("inference failed")
            return _error(500, "inference failed; see the server log")
        return JSONResponse(result)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette):
        yield
        await asyncio.get_running_loop().run_in_executor(None, engine.close)

    return Starlette(routes=[Route("/ping", ping, methods=["GET"]),
                             Route("/invocations", invocations, methods=["POST"])], lifespan=lifespan)


def _json_lines(pieces: Iterator[str]) -> Iterator[bytes]:
    generated = []
    try:
        for piece in pieces:
            generated.append(piece)
            yield (json.dumps({"token": {"text": piece}}) + "\n").encode()
    except Exception as error:  # headers are gone: report the failure in-band, as LMI does
        log.exception("streaming failed")
        yield (json.dumps({"error": str(error) or "inference failed", "code": 500}) + "\n").encode()
        return
    yield (json.dumps({"generated_text": "".join(generated)}) + "\n").encode()


def serve(engine: InferenceEngine, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve until SIGINT/SIGTERM; in-flight requests finish, then the engine stops."""
    import uvicorn

    uvicorn.run(create_app(engine), host=host, port=port, log_level="info", timeout_graceful_shutdown=30)
