"""A Bedrock runtime client: InvokeModel (and streaming), Converse, embeddings, images.

Throttling and transient service errors are retried with exponential backoff and full jitter, a
bounded number of times; every failure surfaces as one of the typed errors below, naming the model.
"""

from __future__ import annotations

import base64
import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from ..errors import UsageError
from . import bodies
from .bodies import TextParams

RETRYABLE = frozenset(
    {
        "ThrottlingException",
        "ServiceUnavailableException",
        "ModelNotReadyException",
        "InternalServerException",
        "ModelTimeoutException",
        "TooManyRequestsException",
    }
)


class BedrockError(RuntimeError):
    """A Bedrock call failed; ``code`` is the service's error code."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class ThrottledError(BedrockError):
    """Still throttled (or unavailable) after every retry."""


class AccessDeniedError(BedrockError):
    """No permission, or the model is not enabled in this account and region."""


class ModelRequestError(BedrockError, UsageError):
    """The request was refused as invalid (e.g. a parameter the model does not take)."""


def _translate(error: ClientError, model_id: str) -> BedrockError:
    code = error.response.get("Error", {}).get("Code", "")
    message = error.response.get("Error", {}).get("Message", str(error))
    text = f"{model_id}: {code}: {message}"
    if code in RETRYABLE:
        return ThrottledError(text, code)
    if code in ("AccessDeniedException", "ResourceNotFoundException"):
        return AccessDeniedError(text + " (is the model enabled for this account and region?)", code)
    if code == "ValidationException":
        return ModelRequestError(text, code)
    return BedrockError(text, code)


@dataclass
class BedrockClient:
    client: object = None  # boto3 bedrock-runtime
    max_attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 20.0
    sleep: Callable[[float], None] = time.sleep
    random: Callable[[], float] = field(default=random.random)

    def __post_init__(self) -> None:
        if self.client is None:
            import boto3

            self.client = boto3.client("bedrock-runtime")

    def _call(self, operation: str, model_id: str, **request):
        for attempt in range(1, self.max_attempts + 1):
            try:
                return getattr(self.client, operation)(**request)
            except ClientError as error:
                translated = _translate(error, model_id)
                if not isinstance(translated, ThrottledError) or attempt == self.max_attempts:
                    if isinstance(translated, ThrottledError):
                        translated.args = (f"{translated} (after {attempt} attempts)",)
                    raise translated from None
            except (EndpointConnectionError, ReadTimeoutError) as error:
                if attempt == self.max_attempts:
                    raise ThrottledError(f"{model_id}: {error} (after {attempt} attempts)") from None
            # Full jitter: a random wait up to the exponential cap, so throttled clients spread out.
            self.sleep(self.random() * min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1)))
        raise AssertionError("unreachable")

    def _invoke(self, model_id: str, body: dict) -> dict:
        response = self._call(
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
        response = self._call(
            "invoke_model_with_response_stream",
            model_id,
            modelId=model_id,
            body=json.dumps(body),
            contentType="application/json",
            accept="application/json",
        )
        for event in response["body"]:
            if "chunk" in event:
                text = bodies.stream_text(model_id, json.loads(event["chunk"]["bytes"]))
                if text:
                    yield text
            else:  # modelStreamErrorException, throttlingException... arrive as events mid-stream
                name, detail = next(iter(event.items()))
                raise BedrockError(f"{model_id}: {name}: {detail.get('message', detail)}", name)

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
        response = self._call("converse", model_id, **request)
        return "".join(part.get("text", "") for part in response["output"]["message"]["content"])

    def embed(self, model_id: str, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for body in bodies.embedding_request(model_id, texts):
            vectors.extend(bodies.embedding_response(model_id, self._invoke(model_id, body)))
        return vectors

    def image(self, model_id: str, prompt: str, **options) -> bytes:
        body = self._invoke(model_id, bodies.image_request(model_id, prompt, **options))
        return base64.b64decode(bodies.image_response(body))
