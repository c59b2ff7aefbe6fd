"""``genai rag serve``'s HTTP API: the query API's contract, client mistakes as 4xx, model failures as 502."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from genai_runtime.rag.chain import RagChain
from genai_runtime.rag.generate import GenerationError
from genai_runtime.rag.server import MAX_QUERY_BODY_BYTES, build_app


@pytest.fixture(scope="module")
def client(corpus_index, embeddings):
    return TestClient(build_app(RagChain(corpus_index, embeddings)))


def test_ping_reports_the_index(client, corpus_index):
    response = client.get("/ping")
    assert response.status_code == 200 and response.json() == {"status": "ok", "chunks": len(corpus_index)}


def test_a_query_returns_the_passages_the_cli_would(client, corpus_index, embeddings):
    response = client.post("/query", json={"question": "What is LoRA?", "k": 2, "search_type": "similarity"})
    assert response.status_code == 200
    body = response.json()
    expected = RagChain(corpus_index, embeddings).retrieve("What is LoRA?", _options(k=2, search_type="similarity"))
    assert [s["id"] for s in body["sources"]] == [e.id for e in expected]
    assert body["answer"] is None and body["question"] == "What is LoRA?"


def _options(**fields):
    from genai_runtime.rag.search import SearchOptions

    return SearchOptions(**fields)


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"", 400, "body"),
        (b"[1, 2]", 400, "JSON object"),
        (b'{"question": "x", "k": 0}', 400, "k"),
        (b'{"question": "x", "k": 1e999}', 400, ""),
        (b'{"question": "x", "filter": {"nope": 1}}', 400, "unknown metadata field"),
        (b'{"question": "\\ud800"}', 400, "surrogate"),
        (b'{"question": "x"', 400, "JSON"),
        (b"\xff\xfe", 400, "UTF-8"),
    ],
)
def test_client_mistakes_are_4xx_naming_the_problem(client, body, status, needle):
    response = client.post("/query", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert needle.lower() in response.json()["message"].lower()


def test_an_oversized_body_is_refused_before_it_is_read(client):
    response = client.post("/query", content=b"x" * (MAX_QUERY_BODY_BYTES + 1))
    assert response.status_code == 413


def test_a_failing_generator_is_a_502_with_its_reason(corpus_index, embeddings):
    def broken(prompt: str) -> str:
        raise GenerationError("endpoint answered 500")

    client = TestClient(build_app(RagChain(corpus_index, embeddings, broken)))
    response = client.post("/query", content=json.dumps({"question": "What is LoRA?"}))
    assert response.status_code == 502 and "endpoint answered 500" in response.json()["message"]
