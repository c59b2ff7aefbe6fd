"""A Bedrock runtime client: InvokeModel (and streaming), Converse, embeddings, images.

The boto3 client comes from ``genai_runtime.aws.client`` (adaptive retries in botocore, bounded by
``aws.MAX_ATTEMPTS`` calls, and timeouts): nothing here retries again. Every failure surfaces as one of
the typed errors below, naming the model; each is a ``DependencyError`` (``retryable``: 503,
otherwise 502) and ``ModelRequestError`` is also a ``UsageError`` (the model refused the request).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .. import aws
from ..errors import DependencyError, UsageError
from . import bodies
from .bodies import TextParams


class BedrockError(DependencyError):
    """A Bedrock call failed; ``code`` is the service's error code."""

    def __init__(self, message: str, code: str = "", *, retryable: bool = False, retry_after_s: int | None = None):
        super().__init__(message, service="bedrock", code=code, retryable=retryable, retry_after_s=retry_after_s)


class ThrottledError(BedrockError):
    """Still throttled (or unavailable, or timed out) after botocore's retries."""

    def __init__(self, message: str, code: str = "", *, retry_after_s: int | None = None) -> None:
        super().__init__(message, code, retryable=True, retry_after_s=retry_after_s)


class AccessDeniedError(BedrockError):
    """No permission, or the model is not enabled in this account and region."""


class ModelRequestError(BedrockError, UsageError):
    """The request was refused as invalid (e.g. a parameter the model does not take)."""


def _translate(error: BaseException, model_id: str) -> BedrockError:
    """What botocore raised (a ``ClientError``, a timeout, a connection failure) as a typed error."""
    if isinstance(error, BedrockError):
        return error
    found = aws.dependency_error(error, model_id)
    text, code = str(found), found.code
    if found.retryable:
        return ThrottledError(text, code, retry_after_s=found.retry_after_s)
    if code in ("AccessDeniedException", "ResourceNotFoundException", "accessDeniedException"):
        return AccessDeniedError(text + " (is the model enabled for this account and region?)", code)
    if code.lower() == "validationexception":
        return ModelRequestError(text, code)
    return BedrockError(text, code)


@dataclass
class BedrockClient:
    client: Any = None  # boto3 bedrock-runtime; default ``genai_runtime.aws.client("bedrock-runtime")``

    def __post_init__(self) -> None:
        if self.client is None:
            self.client = aws.client("bedrock-runtime")

    def call(self, operation: str, model_id: str, **request) -> Any:
        """``operation`` (a boto3 method name) with ``request``; botocore's failures as typed errors."""
        try:
            return getattr(self.client, operation)(**request)
        except Exception as error:
            if aws.is_aws_error(error):
                raise _translate(error, model_id) from None
            raise

    def _invoke(self, model_id: str, body: dict) -> dict:
        response = self.call(
            "invoke_model",
            model_id,
            modelId=model_id,
            body=json.dumps(body),
            contentType="application/json",
            accept="application/json",
        )
        return json.loads(response["body"].read())

    def complete(self, model_id: str, prompt: str, params: TextParams | None = None) -> str:
        params = params or TextParams()
        return bodies.text_response(model_id, self._invoke(model_id, bodies.text_request(model_id, prompt, params)))

    def stream(self, model_id: str, prompt: str, params: TextParams | None = None) -> Iterator[str]:
        params = params or TextParams()
        body = bodies.text_request(model_id, prompt, params)
        response = self.call(
            "invoke_model_with_response_stream",
            model_id,
            modelId=model_id,
            body=json.dumps(body),
            contentType="application/json",
            accept="application/json",
        )
        events = iter(response["body"])
        while True:
            try:
                event = next(events)
            except StopIteration:
                return
            except Exception as error:  # botocore raises a stream's error events as EventStreamError
                if aws.is_aws_error(error):
                    raise _translate(error, model_id) from None
                raise
            if "chunk" in event:
                text = bodies.stream_text(model_id, json.loads(event["chunk"]["bytes"]))
                if text:
                    yield text
            else:  # modelStreamErrorException, throttlingException... arrive as events mid-stream
                name, detail = next(iter(event.items()))
                message = f"{model_id}: {name}: {detail.get('message', detail) if isinstance(detail, dict) else detail}"
                lowered = name.lower()
                if lowered in aws.THROTTLED_CODES or lowered in aws.UNAVAILABLE_CODES:
                    raise ThrottledError(message, name)
                raise BedrockError(message, name)

    def converse(
        self, model_id: str, messages: list[dict], *, system: str | None = None, params: TextParams | None = None
    ) -> str:
        """The Converse API: one request shape for every text model."""
        params = params or TextParams()
        request: dict[str, Any] = {
            "modelId": model_id,
            "messages": messages,
            "inferenceConfig": {
                "maxTokens": params.max_tokens,
                "temperature": params.temperature,
                "topP": params.top_p,
            },
        }
        if params.stop:
            request["inferenceConfig"]["stopSequences"] = list(params.stop)
        if system:
            request["system"] = [{"text": system}]
        response = self.call("converse", model_id, **request)
        return "".join(part.get("text", "") for part in response["output"]["message"]["content"])

    def embed(self, model_id: str, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for body in bodies.embedding_request(model_id, texts):
            vectors.extend(bodies.embedding_response(model_id, self._invoke(model_id, body)))
        return vectors

    def image(self, model_id: str, prompt: str, **options) -> bytes:
        body = self._invoke(model_id, bodies.image_request(model_id, prompt, **options))
        return base64.b64decode(bodies.image_response(body))
