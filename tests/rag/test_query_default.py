"""The query API's default search type is one the store can run: staging's minimal request on Serverless.

The documented minimal request is ``{"question": "What is LoRA?"}``. The contract's default search type is
hybrid, which a Serverless collection cannot run (no search pipelines); ``RagApi`` sets the function's
``DEFAULT_SEARCH_TYPE`` from the store's kind and the handler reads it where the request names none.
"""

from __future__ import annotations

import json

import pytest

from genai_contracts import names
from genai_runtime.rag.chain import RagChain
from tests.lambda_events import CONTEXT, api_gateway_post

from .test_ingest_lambda import CONTENT, World


@pytest.fixture(params=[True, False], ids=["serverless", "managed"])
def deployed(request, monkeypatch):
    from lambdas import rag_query

    with World(request.param) as world:
        assert not world.deliver([world.put("lora.md", CONTENT["put1"])])
        world.settle()
        monkeypatch.setattr(rag_query, "chain", lambda: RagChain(world.index, world.embeddings))
        rag_query.field_types.cache_clear()
        yield world, rag_query


def ask(module, body) -> tuple[int, dict]:
    response = module.handler(api_gateway_post("/query", body), CONTEXT)
    return response["statusCode"], json.loads(response["body"])


def test_the_minimal_request_is_answered_with_the_deployment_default(deployed, monkeypatch):
    world, module = deployed
    monkeypatch.setenv(names.DEFAULT_SEARCH_TYPE, "similarity" if world.serverless else "hybrid")
    status, body = ask(module, {"question": "What is LoRA?", "generate": False})
    assert status == 200, body
    assert body["sources"] and body["sources"][0]["source"] == "s3://docs/lora.md"
    status, body = ask(module, {"question": "What is LoRA?", "generate": False, "search_type": "hybrid"})
    if world.serverless:  # what a request asks for explicitly is not replaced
        assert status == 400 and "hybrid needs a managed OpenSearch domain" in body["message"]
    else:
        assert status == 200


def test_without_the_deployment_default_serverless_refuses_the_minimal_request(deployed, monkeypatch):
    world, module = deployed
    monkeypatch.delenv(names.DEFAULT_SEARCH_TYPE, raising=False)
    status, body = ask(module, {"question": "What is LoRA?", "generate": False})
    assert (status == 400) is world.serverless  # the reviewer's finding, had the construct not set the variable


def test_a_default_that_is_not_a_search_type_is_a_misconfiguration(deployed, monkeypatch):
    _, module = deployed
    monkeypatch.setenv(names.DEFAULT_SEARCH_TYPE, "keyword")
    status, body = ask(module, {"question": "What is LoRA?", "generate": False})
    assert status == 500 and "is not a search type" in body["message"]
