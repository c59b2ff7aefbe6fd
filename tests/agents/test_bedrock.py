"""The Bedrock client: bodies per model family, botocore's retries (one policy), typed errors, streaming, Converse."""

from __future__ import annotations

import base64
import io
import json

import boto3
import pytest
from botocore.stub import Stubber

from genai_runtime.bedrock import bodies
from genai_runtime.bedrock.bodies import TextParams
from genai_runtime.bedrock.client import (
    AccessDeniedError,
    BedrockClient,
    BedrockError,
    ModelRequestError,
    ThrottledError,
)
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


class _Raw(io.BytesIO):
    """An HTTP body as botocore's AWSResponse reads it (``stream()``) and a StreamingBody reads it (``read()``)."""

    def stream(self, **_):
        yield self.getvalue()


@pytest.fixture
def no_backoff(monkeypatch):
    """botocore's retries without their waits (exponential backoff, the adaptive mode's token bucket)."""
    monkeypatch.setattr("botocore.retries.standard.ExponentialBackoff.delay_amount", lambda self, context: 0)
    monkeypatch.setattr("botocore.retries.bucket.TokenBucket._sleep_amount", lambda self, amount: 0)


def factory_client(monkeypatch, answers: list):
    """``genai_runtime.aws.client("bedrock-runtime")``, whose HTTP sends get ``answers`` in turn."""
    from botocore.awsrequest import AWSResponse

    from genai_runtime import aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    aws.clear_cache()
    client = aws.client("bedrock-runtime", "us-east-1")
    sends = []

    def send(request, **_):
        sends.append(request.url)
        status, payload = answers[min(len(sends), len(answers)) - 1]
        headers = {"Content-Type": "application/json"}
        if status != 200:
            headers["x-amzn-ErrorType"] = payload["code"]
        return AWSResponse(request.url, status, headers, _Raw(json.dumps(payload).encode()))

    client.meta.events.register("before-send.bedrock-runtime.InvokeModel", send)
    return client, sends


def test_one_client_factory_configures_adaptive_bounded_retries_and_timeouts():
    from genai_runtime import aws

    config = aws.config()
    assert config.retries == {"mode": "adaptive", "total_max_attempts": aws.MAX_ATTEMPTS}
    assert (config.connect_timeout, config.read_timeout) == (aws.CONNECT_TIMEOUT_S, aws.READ_TIMEOUT_S)
    aws.clear_cache()
    assert aws.client("bedrock-runtime", "us-east-1") is aws.client("bedrock-runtime", "us-east-1")
    assert aws.client("bedrock-runtime", "us-east-1") is not aws.client("bedrock-runtime", "eu-west-1")
    assert aws.client("sagemaker-runtime", "us-east-1").meta.config.retries["mode"] == "adaptive"


def test_throttling_is_retried_by_botocore_alone_then_succeeds(monkeypatch, no_backoff):
    throttled = (429, {"code": "ThrottlingException", "message": "slow down"})
    client, sends = factory_client(monkeypatch, [throttled, throttled, (200, {"results": [{"outputText": "ok"}]})])
    assert BedrockClient(client).complete("amazon.titan-text-express-v1", "x") == "ok"
    assert len(sends) == 3


def test_persistent_throttling_costs_max_attempts_calls_in_all_and_is_a_503(monkeypatch, no_backoff):
    from genai_runtime import aws

    client, sends = factory_client(monkeypatch, [(429, {"code": "ThrottlingException", "message": "slow down"})])
    with pytest.raises(ThrottledError, match=f"after {aws.MAX_ATTEMPTS} attempts") as raised:
        BedrockClient(client).complete("amazon.titan-text-express-v1", "x")
    assert len(sends) == aws.MAX_ATTEMPTS  # one retry policy: botocore's, not another loop on top of it
    assert raised.value.retryable and raised.value.status == 503 and raised.value.retry_after_s


def test_other_errors_are_typed_and_not_retried():
    client = runtime_client()
    with Stubber(client) as stub:
        stub.add_client_error("invoke_model", service_error_code="AccessDeniedException", http_status_code=403)
        stub.add_client_error("invoke_model", service_error_code="ValidationException", service_message="bad topP")
        stub.add_client_error("invoke_model", service_error_code="ModelErrorException", http_status_code=424)
        bedrock = BedrockClient(client)
        with pytest.raises(AccessDeniedError, match="is the model enabled") as denied:
            bedrock.complete("amazon.titan-text-express-v1", "x")
        with pytest.raises(ModelRequestError, match="bad topP"):
            bedrock.complete("amazon.titan-text-express-v1", "x")
        with pytest.raises(BedrockError, match="ModelErrorException") as failed:
            bedrock.complete("amazon.titan-text-express-v1", "x")
    assert denied.value.status == failed.value.status == 502 and not failed.value.retryable


def test_connection_failures_are_retryable_dependency_errors():
    from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

    for error in (EndpointConnectionError(endpoint_url="https://bedrock"), ReadTimeoutError(endpoint_url="https://b")):

        class Down:
            def invoke_model(self, _error=error, **_):
                raise _error

        with pytest.raises(ThrottledError, match="unavailable") as raised:
            BedrockClient(Down()).complete("amazon.titan-text-express-v1", "x")
        assert raised.value.status == 503


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
