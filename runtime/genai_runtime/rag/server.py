"""``genai rag serve``: an index, its embeddings and a generator kept warm behind a small HTTP API.

    GET  /ping     200 {"status": "ok", "chunks": N} once the index and the model are loaded
    POST /query    the body of the deployed query API (``genai_contracts.api_requests.QueryRequest``)
                   -> {"question", "answer", "sources": [...]}, as ``genai rag query --json`` prints

Bodies are decoded by ``inference.schema.decode_body`` (the one decoder every front uses) with the
query API's own byte limit; a client's mistake is a 4xx naming the field, a failing generator a
502. Retrieval runs in a worker thread, so ``/ping`` answers while a query works. Binds to
127.0.0.1 unless told otherwise: there is no authentication.
"""

from __future__ import annotations

import json

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from genai_contracts.api_requests import QueryRequest

from ..errors import UsageError
from ..inference.schema import RequestError, decode_body
from .chain import RagChain
from .generate import GenerationError

MAX_QUERY_BODY_BYTES = 64 * 1024


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status)


def build_app(chain: RagChain) -> Starlette:
    async def ping(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "chunks": len(chain.index)})  # type: ignore[arg-type]

    async def query(request: Request) -> JSONResponse:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_QUERY_BODY_BYTES:
            return _error(413, f"the request body is over {MAX_QUERY_BODY_BYTES} bytes")
        body = bytearray()
        async for piece in request.stream():
            body += piece
            if len(body) > MAX_QUERY_BODY_BYTES:
                return _error(413, f"the request body is over {MAX_QUERY_BODY_BYTES} bytes")
        try:
            payload = decode_body(bytes(body))
            if not isinstance(payload, dict):
                raise RequestError(400, 'the request body must be a JSON object: {"question": "..."}')
            parsed = QueryRequest.model_validate(payload)
        except RequestError as problem:
            return _error(problem.status, str(problem))
        except ValidationError as problem:
            detail = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in problem.errors())
            return _error(400, detail)
        try:
            answer = await run_in_threadpool(chain, parsed.question, parsed.search_options(), generate=parsed.generate)
        except UsageError as problem:
            return _error(400, str(problem))
        except GenerationError as problem:
            return _error(502, f"the model endpoint failed: {problem}")
        return JSONResponse(json.loads(json.dumps(answer.to_json(), ensure_ascii=False)))

    return Starlette(routes=[Route("/ping", ping, methods=["GET"]), Route("/query", query, methods=["POST"])])


def serve(chain: RagChain, host: str = "127.0.0.1", port: int = 8090) -> None:
    import uvicorn

    uvicorn.run(build_app(chain), host=host, port=port, log_level="info", timeout_keep_alive=5)
