"""The RAG query API: ``POST /query`` -> the answer with its sources and scores.

API Gateway validates the body first, against the JSON Schema generated from the same
``genai_contracts.api_requests.QueryRequest`` this handler validates with, so a direct invocation
gets the same 400 with a message naming the field.

Every answer is JSON with a ``message`` when it is not a 200:

- 400: the body is not a query (the field and the fix named), or a filter names an unknown field or a
  value the field's type cannot hold (an OpenSearch index's mapping says the types); 413: the body is
  over the largest query (``QueryRequest.MAX_BODY_BYTES``);
- 502: a dependency failed (the embedding or model endpoint, the index): its error, named;
- 503 with ``Retry-After``: a dependency is throttled or unavailable (after botocore's own retries);
- 500: the function is misconfigured (its environment), or a bug; the logs have the details.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from langchain_core.embeddings import Embeddings

from genai_contracts import names
from genai_contracts.api_requests import QueryRequest, filter_type_problems
from genai_contracts.vector_index import METADATA_FIELD
from genai_runtime import aws
from genai_runtime.errors import DependencyError, UsageError
from genai_runtime.rag.chain import RagChain
from genai_runtime.rag.embeddings import embeddings_from_spec
from genai_runtime.rag.generate import GenerationError, GenerationSettings, generator_from_spec
from genai_runtime.rag.index import open_index

from ._config import ConfigurationError, int_setting, setting
from ._requests import (
    body_text,
    dependency_response,
    error_response,
    install_fallbacks,
    parse_json_body,
    proxy_error,
    proxy_event_problem,
    usage_response,
)

logger = Logger(service=names.RAG_QUERY_SERVICE)
app = APIGatewayRestResolver()
MAX_BODY_BYTES = QueryRequest.MAX_BODY_BYTES


class GuardedEmbeddings(Embeddings):
    """The query embeddings, whose every failure is a ``DependencyError`` (a bad endpoint answer is not a 400)."""

    def __init__(self, inner: Embeddings, spec: str) -> None:
        self.inner = inner
        self.spec = spec

    def _guard(self, call, *args):
        try:
            return call(*args)
        except DependencyError:
            raise
        except Exception as error:
            if aws.is_aws_error(error):
                raise aws.dependency_error(error, f"embeddings {self.spec}") from None
            if isinstance(error, (ValueError, TypeError, KeyError, IndexError)):  # an answer of the wrong shape
                raise DependencyError(f"embeddings {self.spec} answered unexpectedly: {error}"[:500]) from None
            raise

    def embed_query(self, text: str) -> list[float]:
        return self._guard(self.inner.embed_query, text)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._guard(self.inner.embed_documents, texts)


def _opensearch_error(error: BaseException) -> DependencyError | None:
    """An opensearch-py failure as a ``DependencyError``; None for anything else."""
    try:
        from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
        from opensearchpy.exceptions import TransportError
    except ImportError:  # pragma: no cover - opensearch-py ships in the image
        return None
    if isinstance(error, OpenSearchConnectionError):  # includes ConnectionTimeout and SSL errors
        return DependencyError(f"the index is unreachable: {error}"[:500], service="opensearch", retryable=True)
    if isinstance(error, TransportError):
        status = error.status_code if isinstance(error.status_code, int) else 0
        return DependencyError(
            f"the index refused the search: HTTP {status or '?'} {error.error}"[:500],
            service="opensearch",
            code=str(error.error),
            retryable=status in aws.RETRYABLE_STATUS,
        )
    return None


_FIELD_TYPES: dict[int, tuple[Any, dict[str, str] | None]] = {}


def field_types(index: Any) -> dict[str, str] | None:
    """The index's metadata field types (an OpenSearch index's mapping says them), read once per index;
    None for an index that declares none (FAISS)."""
    held = _FIELD_TYPES.get(id(index))
    if held is not None and held[0] is index:
        return held[1]
    declared = getattr(index, "metadata_types", None)
    client, name = getattr(index, "client", None), getattr(index, "index_name", None)
    if callable(declared):
        types: dict[str, str] | None = dict(declared())
    elif client is None or not name:
        types = None
    else:
        mapping = client.indices.get_mapping(index=name)
        properties = next(iter(mapping.values()))["mappings"]["properties"]
        fields = properties.get(METADATA_FIELD, {}).get("properties", {})
        types = {field: spec["type"] for field, spec in fields.items() if isinstance(spec, dict) and "type" in spec}
    if len(_FIELD_TYPES) >= 8:
        _FIELD_TYPES.clear()
    _FIELD_TYPES[id(index)] = (index, types)
    return types


field_types.cache_clear = _FIELD_TYPES.clear  # type: ignore[attr-defined]


@lru_cache(maxsize=1)
def chain() -> RagChain:
    spec = os.environ.get(names.GENERATOR)
    generator = generator_from_spec(spec, GenerationSettings(int_setting(names.MAX_NEW_TOKENS, 256))) if spec else None
    embeddings = setting(names.EMBEDDINGS)
    return RagChain(
        open_index(setting(names.INDEX_URL), embeddings),
        GuardedEmbeddings(embeddings_from_spec(embeddings), embeddings),
        generator,
    )


def parse(body: str | None) -> QueryRequest:
    request = parse_json_body(body, QueryRequest, MAX_BODY_BYTES, '{"question": "..."}')
    default = os.environ.get(names.DEFAULT_SEARCH_TYPE)  # the store's (RagApi sets it): Serverless has no hybrid
    if default and "search_type" not in request.model_fields_set:
        try:
            request = QueryRequest.model_validate({**request.model_dump(), "search_type": default})
        except ValueError:
            raise ConfigurationError(f"{names.DEFAULT_SEARCH_TYPE}={default!r} is not a search type") from None
    return request


def _answer(request: QueryRequest) -> dict:
    try:
        rag = chain()
    except Exception as problem:  # the function's environment (settings, region, credentials), not the request
        if not isinstance(problem, (ConfigurationError, UsageError)) and not aws.is_aws_error(problem):
            raise
        logger.exception("the function is misconfigured")
        raise ConfigurationError(f"the query function is misconfigured: {problem}") from None
    try:
        types = field_types(rag.index)
        if types is not None:
            problems = filter_type_problems(request.filter, types)
            if problems:
                raise UsageError("; ".join(problems))
        return rag(request.question, request.search_options(), generate=request.generate).to_json()
    except (UsageError, DependencyError, GenerationError):
        raise
    except Exception as problem:
        found = _opensearch_error(problem)
        if found is None and aws.is_aws_error(problem):
            found = aws.dependency_error(problem, "aws")
        if found is None:
            raise
        raise found from None


@app.post("/query")
def query() -> Response:
    try:
        request = parse(body_text(app.current_event.raw_event))
        answer = _answer(request)
    except ConfigurationError as problem:
        return error_response(500, str(problem))
    except DependencyError as problem:  # before UsageError: a model that refused our request is not the caller's 400
        logger.exception("a dependency failed")
        return dependency_response(problem)
    except UsageError as problem:
        return usage_response(problem)
    except GenerationError as problem:
        logger.exception("generation failed")
        return error_response(502, f"the model endpoint failed: {problem}")
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=json.dumps(answer))


install_fallbacks(app, logger, "POST /query")


@logger.inject_lambda_context
def handler(event: dict, context) -> dict:
    problem = proxy_event_problem(event)
    if problem:
        return proxy_error(400, problem)
    try:
        return app.resolve(event, context)
    except Exception:  # noqa: BLE001 - outside a route (the resolver itself): a 500 with a message, never a raise
        logger.exception("the resolver failed")
        return proxy_error(500, "internal error; see the function's logs")
