"""The Bedrock client: bodies per model family, retries, typed errors, streaming, Converse; custom jobs."""

from __future__ import annotations

import base64
import io
import json

import boto3
import pytest
from botocore.stub import Stubber

from genai_runtime.bedrock import bodies
from genai_runtime.bedrock.bodies import TextParams
from genai_runtime.bedrock.client import AccessDeniedError, BedrockClient, ModelRequestError, ThrottledError
from genai_runtime.errors import UsageError

from .conftest import stub_operation


def runtime_client():
    return boto3.client("bedrock-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def body(payload: dict) -> dict:
    from botocore.response import StreamingBody

    data = json.dumps(payload).encode()
    return {"body": StreamingBody(io.BytesIO(data), len(data)), "contentType": "application/json"}


@pytest.mark.parametrize(
    ("model_id", "request_keys", "response", "text"),
    [
        (
            "amazon.titan-text-express-v1",
            {"inputText", "textGenerationConfig"},
            {"results": [{"outputText": "titan says"}]},
            "titan says",
        ),
        (
            "anthropic.claude-3-haiku-20240307-v1:0",
            {"anthropic_version", "max_tokens", "messages", "temperature", "top_p"},
            {"content": [{"type": "text", "text": "claude says"}]},
            "claude says",
        ),
        (
            "us.meta.llama3-1-8b-instruct-v1:0",
            {"prompt", "max_gen_len", "temperature", "top_p"},
            {"generation": "llama says"},
            "llama says",
        ),
        (
            "cohere.command-r-v1:0",
            {"message", "max_tokens", "temperature", "p"},
            {"text": "cohere says"},
            "cohere says",
        ),
    ],
)
def test_text_bodies_per_model_family(model_id, request_keys, response, text):
    request = bodies.text_request(model_id, "Hello", TextParams(max_tokens=64))
    assert set(request) == request_keys
    assert bodies.text_response(model_id, response) == text
    client = runtime_client()
    with Stubber(client) as stub:
        stub.add_response(
            "invoke_model",
            body(response),
            {
                "modelId": model_id,
                "body": json.dumps(request),
                "contentType": "application/json",
                "accept": "application/json",
            },
        )
        assert BedrockClient(client).complete(model_id, "Hello", TextParams(max_tokens=64)) == text


def test_titan_request_body_is_the_books():
    assert bodies.text_request("amazon.titan-text-express-v1", "Hi", TextParams(512, 0.5, 0.9, ("User:",))) == {
        "inputText": "Hi",
        "textGenerationConfig": {"maxTokenCount": 512, "temperature": 0.5, "topP": 0.9, "stopSequences": ["User:"]},
    }


def test_throttling_is_retried_with_backoff_then_succeeds():
    client, waits = runtime_client(), []
    with Stubber(client) as stub:
        for _ in range(2):
            stub.add_client_error("invoke_model", service_error_code="ThrottlingException", http_status_code=429)
        stub.add_response("invoke_model", body({"results": [{"outputText": "ok"}]}))
        bedrock = BedrockClient(client, sleep=waits.append, random=lambda: 1.0, base_delay_s=0.5)
        assert bedrock.complete("amazon.titan-text-express-v1", "x") == "ok"
    assert waits == [0.5, 1.0]


def test_persistent_throttling_and_other_errors_are_typed():
    client = runtime_client()
    with Stubber(client) as stub:
        for _ in range(3):
            stub.add_client_error("invoke_model", service_error_code="ThrottlingException", http_status_code=429)
        stub.add_client_error("invoke_model", service_error_code="AccessDeniedException", http_status_code=403)
        stub.add_client_error("invoke_model", service_error_code="ValidationException", service_message="bad topP")
        bedrock = BedrockClient(client, max_attempts=3, sleep=lambda s: None)
        with pytest.raises(ThrottledError, match="after 3 attempts"):
            bedrock.complete("amazon.titan-text-express-v1", "x")
        with pytest.raises(AccessDeniedError, match="is the model enabled"):
            bedrock.complete("amazon.titan-text-express-v1", "x")
        with pytest.raises(ModelRequestError, match="bad topP"):
            bedrock.complete("amazon.titan-text-express-v1", "x")


def test_streaming_assembles_chunks_and_surfaces_stream_errors():
    client, requests = runtime_client(), []
    events = [
        {"chunk": {"bytes": json.dumps({"type": "message_start"}).encode()}},
        {"chunk": {"bytes": json.dumps({"type": "content_block_delta", "delta": {"text": "Hel"}}).encode()}},
        {"chunk": {"bytes": json.dumps({"type": "content_block_delta", "delta": {"text": "lo"}}).encode()}},
    ]
    stub_operation(client, "InvokeModelWithResponseStream", {"body": events}, requests)
    model = "anthropic.claude-3-haiku-20240307-v1:0"
    assert list(BedrockClient(client).stream(model, "Hi")) == ["Hel", "lo"]
    assert json.loads(requests[0]["body"])["messages"][0]["content"][0]["text"] == "Hi"

    failing = runtime_client()
    stub_operation(
        failing,
        "InvokeModelWithResponseStream",
        {"body": [events[1], {"modelStreamErrorException": {"message": "boom"}}]},
        [],
    )
    stream = BedrockClient(failing).stream(model, "Hi")
    assert next(stream) == "Hel"
    with pytest.raises(Exception, match="modelStreamErrorException: boom"):
        next(stream)


def test_converse_embeddings_and_images():
    client = runtime_client()
    png = base64.b64encode(b"\x89PNG fake").decode()
    with Stubber(client) as stub:
        stub.add_response(
            "converse",
            {
                "output": {"message": {"role": "assistant", "content": [{"text": "conversed"}]}},
                "stopReason": "end_turn",
                "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
                "metrics": {"latencyMs": 1},
            },
            {
                "modelId": "meta.llama3-8b-instruct-v1:0",
                "messages": [{"role": "user", "content": [{"text": "hi"}]}],
                "system": [{"text": "be brief"}],
                "inferenceConfig": {"maxTokens": 512, "temperature": 0.5, "topP": 0.9},
            },
        )
        for vector in ([1.0, 0.0], [0.0, 1.0]):
            stub.add_response("invoke_model", body({"embedding": vector, "inputTextTokenCount": 2}))
        stub.add_response("invoke_model", body({"artifacts": [{"base64": png, "finishReason": "SUCCESS", "seed": 0}]}))
        bedrock = BedrockClient(client)
        assert (
            bedrock.converse(
                "meta.llama3-8b-instruct-v1:0", [{"role": "user", "content": [{"text": "hi"}]}], system="be brief"
            )
            == "conversed"
        )
        assert bedrock.embed("amazon.titan-embed-text-v2:0", ["a", "b"]) == [[1.0, 0.0], [0.0, 1.0]]
        assert bedrock.image("stability.stable-diffusion-xl-v1", "a cat") == b"\x89PNG fake"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: bodies.family("gpt-4"), "expected PROVIDER.MODEL"),
        (lambda: bodies.family("mistral.mistral-7b"), "use the Converse API"),
        (lambda: bodies.text_request("amazon.titan-embed-text-v2:0", "x", TextParams()), "not a text model"),
        (lambda: bodies.text_request("amazon.titan-text-express-v1", "", TextParams()), "prompt is empty"),
        (lambda: TextParams(temperature=2.0), "temperature=2.0 is invalid"),
        (lambda: bodies.image_request("stability.stable-diffusion-xl-v1", "x", width=1000), "multiples of 64"),
    ],
)
def test_bad_requests_are_refused_before_any_call(call, message):
    with pytest.raises(UsageError, match=message):
        call()
