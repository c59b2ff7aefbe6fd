"""``lambdas.rag_query`` under fuzzed API Gateway events and injected dependency failures.

The chain is the real one (``RagChain``, the handler's ``GuardedEmbeddings`` over ``SageMakerEmbeddings``,
``BedrockGenerator``) on botocore clients answered at the ``before-call`` level, over an OpenSearch-like
index with a typed mapping. Client garbage must get a 4xx with a message, a dependency's failure a 502
or 503 (with ``Retry-After``), and nothing may escape the handler.
"""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genai_contracts.api_requests import MAX_QUESTION_CHARS, QueryRequest
from genai_runtime.rag.search import Retrieved
from tests.lambda_events import CONTEXT, api_gateway_post

from . import tally
from .events import (
    CONNECTION_ERRORS,
    aws_client,
    client_error,
    client_failures,
    proxy_events,
    stop_answering,
)
from .events import answer_with as answer
from .strategies import anything, huge_text, json_text, mutated

FIELDS = {"source": "keyword", "year": "integer", "draft": "boolean", "score": "float", "team": "keyword"}
SETTINGS = settings(deadline=None, suppress_health_check=list(HealthCheck), database=None)


class FuzzIndex:
    """An OpenSearch-like index: a typed mapping, two hits, or the failure it is told to raise."""

    embedding_model = "sagemaker:embedder"
    index_name = "documents"

    def __init__(self, failure: BaseException | None = None, mapping_failure: BaseException | None = None):
        self.failure = failure
        outer = self

        class Indices:
            def get_mapping(self, index):
                if mapping_failure is not None:
                    raise mapping_failure
                properties = {name: {"type": kind} for name, kind in FIELDS.items()}
                return {index: {"mappings": {"properties": {"metadata": {"properties": properties}}}}}

        class Client:
            indices = Indices()

        self.client = Client()
        self._outer = outer

    def metadata_fields(self) -> set[str]:
        return set(FIELDS)

    def search(self, question, vector, options):
        if self.failure is not None:
            raise self.failure
        hits = [Retrieved(f"doc-{n}", f"passage {n}", 1.0 / (n + 1), {"source": f"s3://docs/{n}.md"}) for n in range(2)]
        return hits[: options.k]


class Dependencies:
    def __init__(self) -> None:
        from genai_runtime.rag.embeddings import SageMakerEmbeddings
        from genai_runtime.rag.generate import BedrockGenerator
        from lambdas.rag_query import GuardedEmbeddings

        self.sagemaker = aws_client("sagemaker-runtime")
        self.bedrock = aws_client("bedrock-runtime")
        self.embeddings = GuardedEmbeddings(
            SageMakerEmbeddings("embedder", client=self.sagemaker), "sagemaker:embedder"
        )
        self.generator = BedrockGenerator("anthropic.claude-3-haiku-20240307-v1:0", client=self.bedrock)
        self.index = FuzzIndex()

    def healthy(self) -> None:
        self.answer_embeddings(lambda: (200, {"Body": io.BytesIO(json.dumps([[0.6, 0.8]]).encode())}))
        self.answer_generation(
            (
                200,
                {
                    "output": {"message": {"role": "assistant", "content": [{"text": "An answer."}]}},
                    "stopReason": "end_turn",
                    "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
                    "metrics": {"latencyMs": 1},
                },
            )
        )

    def answer_embeddings(self, reply) -> None:
        stop_answering(self.sagemaker, "InvokeEndpoint")
        answer(self.sagemaker, "InvokeEndpoint", reply)

    def answer_generation(self, reply) -> None:
        stop_answering(self.bedrock, "Converse")
        answer(self.bedrock, "Converse", reply)


@pytest.fixture
def query(monkeypatch):
    from genai_runtime.rag.chain import RagChain
    from lambdas import rag_query

    deps = Dependencies()
    deps.healthy()
    deps.chain = RagChain(deps.index, deps.embeddings, deps.generator)
    monkeypatch.setattr(rag_query, "chain", lambda: deps.chain)
    rag_query.field_types.cache_clear()
    yield rag_query, deps
    rag_query.field_types.cache_clear()


def call(module, event) -> dict:
    response = tally.run("rag_query", module.handler, event, CONTEXT)
    assert isinstance(response, dict) and isinstance(response["statusCode"], int), response
    body = json.loads(response["body"])
    if response["statusCode"] != 200:
        assert isinstance(body.get("message"), str) and body["message"], response
    return response


def retry_after(response: dict) -> str | None:
    values = (response.get("multiValueHeaders") or {}).get("Retry-After") or []
    return values[0] if values else (response.get("headers") or {}).get("Retry-After")


filter_values = (
    st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.booleans()
    | st.text(max_size=30)
    | st.sampled_from(["2021", "true", "1e400", "s3://docs/0.md", 2021, 12345678901234567890, 2**31, 2**53])
    | anything
)
filters = st.dictionaries(
    st.sampled_from([*FIELDS, "colour", "year\n", "", "x" * 70]) | st.text(max_size=10), filter_values, max_size=9
)
valid_query = st.fixed_dictionaries(
    {"question": st.text(min_size=1, max_size=40).filter(lambda q: q.strip() and q[0] not in " \t\n\r\x0b\x0c")},
    optional={
        "k": st.integers(1, 20),
        "search_type": st.sampled_from(["similarity", "mmr", "hybrid"]),
        "generate": st.booleans(),
        "filter": st.fixed_dictionaries({}, optional={"year": st.integers(1990, 2030), "draft": st.booleans()}),
    },
)


@st.composite
def garbage_events(draw):
    base = draw(valid_query)
    body = draw(
        st.one_of(
            mutated(base, keys=["question", "k", "fetch_k", "search_type", "lambda_mult", "filter", "generate"]),
            valid_query.map(lambda q: {**q, "filter": None}).flatmap(
                lambda q: filters.map(lambda f: {**q, "filter": f})
            ),
            anything,
            huge_text,
        )
    )
    text = json_text(draw, body) if draw(st.integers(0, 4)) else draw(st.text(max_size=50))
    if draw(st.integers(0, 3)):
        return api_gateway_post("/query", text)
    return draw(proxy_events("/query", text))


@settings(SETTINGS, max_examples=800)
@given(event=garbage_events())
def test_client_garbage_gets_a_4xx_with_a_message_never_an_exception(query, event):
    module, _ = query
    response = call(module, event)
    assert response["statusCode"] in (200, 400, 404, 413), response
    if response["statusCode"] == 200 and not event.get("isBase64Encoded"):
        QueryRequest.model_validate(json.loads(event["body"]))  # it answered only what the contract accepts


failures = st.one_of(
    st.tuples(st.just("embeddings"), client_failures),
    st.tuples(st.just("generation"), client_failures),
    st.tuples(st.just("embeddings"), st.sampled_from(CONNECTION_ERRORS).map(lambda e: (e, None, 503))),
    st.tuples(st.just("generation"), st.sampled_from(CONNECTION_ERRORS).map(lambda e: (e, None, 503))),
    st.tuples(
        st.just("embeddings-shape"),
        st.sampled_from([{"x": 1}, [], [[1.0], [2.0]], "text", None]).map(lambda p: (p, None, 502)),
    ),
    st.tuples(st.just("generation-shape"), st.sampled_from([{}, {"output": None}]).map(lambda p: (p, None, 502))),
    st.tuples(st.just("index"), st.sampled_from(["timeout", "429", "403", "500", "400"]).map(lambda s: (s, None, 0))),
    st.tuples(st.just("mapping"), st.sampled_from(["timeout", "503"]).map(lambda s: (s, None, 503))),
)


def opensearch_failure(kind: str) -> tuple[BaseException, int]:
    from opensearchpy.exceptions import AuthorizationException, ConnectionTimeout, TransportError

    return {
        "timeout": (ConnectionTimeout("TIMEOUT", "timed out", None), 503),
        "429": (TransportError(429, "too_many_requests", {}), 503),
        "503": (TransportError(503, "unavailable", {}), 503),
        "403": (AuthorizationException(403, "security_exception", {}), 502),
        "500": (TransportError(500, "internal", {}), 502),
        "400": (TransportError(400, "search_phase_execution_exception", {}), 502),
    }[kind]


@settings(SETTINGS, max_examples=500)
@given(body=valid_query, failure=failures, data=st.data())
def test_dependency_failures_are_a_502_or_503_with_a_message(query, body, failure, data):
    from genai_runtime.rag.chain import RagChain

    module, deps = query
    where, (what, http, status) = failure
    deps.healthy()
    deps.chain = RagChain(deps.index, deps.embeddings, deps.generator)
    if where == "embeddings":
        deps.answer_embeddings(what if isinstance(what, BaseException) else client_error(what, http))
    elif where == "generation":
        body = {**body, "generate": True}
        deps.answer_generation(what if isinstance(what, BaseException) else client_error(what, http))
    elif where == "embeddings-shape":
        deps.answer_embeddings(lambda: (200, {"Body": io.BytesIO(json.dumps(what).encode())}))
    elif where == "generation-shape":
        body = {**body, "generate": True}
        deps.answer_generation((200, what))
    elif where == "index":
        error, status = opensearch_failure(what)
        deps.chain = RagChain(FuzzIndex(failure=error), deps.embeddings, deps.generator)
    else:
        error, status = opensearch_failure(what)
        deps.chain = RagChain(FuzzIndex(mapping_failure=error), deps.embeddings, deps.generator)
    response = call(module, api_gateway_post("/query", json_text(data.draw, body)))
    if response["statusCode"] == 400:  # a NaN spelling of the body: the caller's fault, caught first
        assert "not a JSON number" in json.loads(response["body"])["message"]
        return
    assert response["statusCode"] == status, (failure, response)
    assert (retry_after(response) is not None) == (status == 503), response


@settings(SETTINGS, max_examples=60)
@given(
    length=st.integers(MAX_QUESTION_CHARS - 3, MAX_QUESTION_CHARS + 3),
    char=st.sampled_from(["😀", "𝕏", "中", "é", "a", '"', "\\", "\x01"]),
    ascii_only=st.booleans(),
)
def test_questions_at_the_character_limit_are_never_refused_for_their_bytes(query, length, char, ascii_only):
    module, _ = query
    body = json.dumps({"question": "Q" + char * (length - 1), "generate": False}, ensure_ascii=ascii_only)
    assert len(body.encode()) <= QueryRequest.MAX_BODY_BYTES
    response = call(module, api_gateway_post("/query", body))
    if length <= MAX_QUESTION_CHARS:
        assert response["statusCode"] == 200, response
    else:
        assert response["statusCode"] == 400
        assert f"at most {MAX_QUESTION_CHARS} characters" in json.loads(response["body"])["message"]
