"""The RAG query API: ``POST /query`` -> the answer with its sources and scores.

API Gateway validates the body first, against the JSON Schema generated from the same
``genai_contracts.api_requests.QueryRequest`` this handler validates with, so a direct invocation
gets the same 400 with a message naming the field.
"""

from __future__ import annotations

import json
from functools import lru_cache

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types

from genai_contracts import names
from genai_contracts.api_requests import QueryRequest
from genai_runtime.errors import UsageError
from genai_runtime.rag.chain import RagChain
from genai_runtime.rag.embeddings import embeddings_from_spec
from genai_runtime.rag.generate import GenerationError, GenerationSettings, generator_from_spec
from genai_runtime.rag.index import open_index

from ._config import int_setting, setting
from ._requests import parse_json_body

logger = Logger(service=names.RAG_QUERY_SERVICE)
app = APIGatewayRestResolver()
MAX_BODY_BYTES = 16 * 1024


@lru_cache(maxsize=1)
def chain() -> RagChain:
    import os

    spec = os.environ.get(names.GENERATOR)
    generator = generator_from_spec(spec, GenerationSettings(int_setting(names.MAX_NEW_TOKENS, 256))) if spec else None
    embeddings = setting(names.EMBEDDINGS)
    return RagChain(open_index(setting(names.INDEX_URL), embeddings), embeddings_from_spec(embeddings), generator)


def error(status: int, message: str) -> Response:
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps({"message": message})
    )


def parse(body: str | None) -> QueryRequest:
    return parse_json_body(body, QueryRequest, MAX_BODY_BYTES, '{"question": "..."}')


@app.post("/query")
def query() -> Response:
    try:
        request = parse(app.current_event.body)
        answer = chain()(request.question, request.search_options(), generate=request.generate)
    except UsageError as problem:
        return error(400, str(problem))
    except GenerationError as problem:
        logger.exception("generation failed")
        return error(502, f"the model endpoint failed: {problem}")
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=json.dumps(answer.to_json()))


@logger.inject_lambda_context
def handler(event: dict, context) -> dict:
    return app.resolve(event, context)
