"""Generators: text in, text out, over the deployments this toolkit makes.

http(s)://HOST[:PORT]   a ``genai serve`` server (POST /invocations, the LMI contract)
sagemaker:ENDPOINT      a SageMaker LMI endpoint (the same contract)
bedrock:MODEL_ID        a Bedrock model through the Converse API

The SageMaker and Bedrock generators call through ``genai_runtime.aws.client`` (botocore's adaptive
retries, bounded, and timeouts; nothing retries again here). A failed call raises a
``DependencyError`` (``retryable``: throttled or unavailable, 503; otherwise 502); an answer in an
unexpected shape, or a server that cannot be reached, a ``GenerationError``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import aws
from ..errors import UsageError

Generator = Callable[[str], str]
BEDROCK_MODEL_ID = re.compile(r"^(us\.|eu\.|apac\.|global\.)?[a-z0-9-]+\.[A-Za-z0-9.:_-]+$")


class GenerationError(RuntimeError):
    """The model endpoint failed or answered in an unexpected shape."""


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 256
    temperature: float = 0.1

    def lmi_parameters(self) -> dict:
        return {
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "do_sample": self.temperature > 0.1,
        }


def _generated_text(payload, origin: str) -> str:
    if isinstance(payload, list) and payload:
        payload = payload[0]
    if isinstance(payload, dict) and isinstance(payload.get("generated_text"), str):
        return payload["generated_text"]
    raise GenerationError(f'{origin} answered {str(payload)[:200]!r}; expected [{{"generated_text": ...}}]')


@dataclass
class ServeGenerator:
    url: str
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    timeout_s: float = 120.0

    def __call__(self, prompt: str) -> str:
        import urllib.error
        import urllib.request

        body = json.dumps({"inputs": prompt, "parameters": self.settings.lmi_parameters()}).encode()
        request = urllib.request.Request(
            self.url.rstrip("/") + "/invocations", data=body, headers={"Content-Type": "application/json"}
        )
        import http.client

        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310 - http(s) only
                raw = response.read()
        except urllib.error.HTTPError as error:
            raise GenerationError(
                f"{self.url}: HTTP {error.code}: {error.read()[:300].decode(errors='replace')}"
            ) from None
        except (OSError, http.client.HTTPException) as error:  # URLError, timeouts, resets, bad status lines
            raise GenerationError(f"{self.url}: cannot reach the model server: {error}") from None
        try:
            payload = json.loads(raw)
        except ValueError:
            raise GenerationError(f"{self.url} answered {raw[:200]!r}, which is not JSON") from None
        return _generated_text(payload, self.url)


@dataclass
class SageMakerGenerator:
    endpoint_name: str
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    client: Any = None  # a boto3 client (boto3 has no type stubs here)

    def __call__(self, prompt: str) -> str:
        if self.client is None:
            self.client = aws.client("sagemaker-runtime")
        origin = f"sagemaker:{self.endpoint_name}"
        try:
            response = self.client.invoke_endpoint(
                EndpointName=self.endpoint_name,
                ContentType="application/json",
                Accept="application/json",
                Body=json.dumps({"inputs": prompt, "parameters": self.settings.lmi_parameters()}),
            )
            raw = response["Body"].read()
        except Exception as error:
            if aws.is_aws_error(error):  # ModelError (the container failed), throttling, timeouts...
                raise aws.dependency_error(error, origin) from None
            raise
        try:
            payload = json.loads(raw)
        except (ValueError, TypeError):
            raise GenerationError(f"{origin} answered {raw[:200]!r}, which is not JSON") from None
        return _generated_text(payload, origin)


@dataclass
class BedrockGenerator:
    model_id: str
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    client: Any = None  # a boto3 client (boto3 has no type stubs here)

    def __call__(self, prompt: str) -> str:
        from ..bedrock.client import BedrockClient

        # The one Bedrock call path: BedrockClient's typed errors (ThrottledError, ...: DependencyErrors).
        response = BedrockClient(self.client).call(
            "converse",
            self.model_id,
            modelId=self.model_id,
            messages=[{"role": "user", "content": [{"text": prompt}]}],
            inferenceConfig={"maxTokens": self.settings.max_new_tokens, "temperature": self.settings.temperature},
        )
        try:
            return "".join(part.get("text", "") for part in response["output"]["message"]["content"])
        except (KeyError, TypeError, AttributeError):
            raise GenerationError(f"bedrock:{self.model_id} answered without output.message.content") from None


def generator_from_spec(spec: str, settings: GenerationSettings | None = None) -> Generator:
    settings = settings or GenerationSettings()
    if spec.startswith(("http://", "https://")):
        return ServeGenerator(spec, settings)
    provider, _, target = spec.partition(":")
    if provider == "sagemaker" and target:
        return SageMakerGenerator(target, settings)
    if provider == "bedrock" and target:
        return BedrockGenerator(target, settings)
    if BEDROCK_MODEL_ID.match(spec):  # a bare Bedrock model id, e.g. anthropic.claude-3-haiku-20240307-v1:0
        return BedrockGenerator(spec, settings)
    raise UsageError(
        f"generate={spec!r} is invalid: use http(s)://HOST:PORT, sagemaker:ENDPOINT or a Bedrock model id "
        "(bedrock:MODEL_ID or MODEL_ID, e.g. anthropic.claude-3-haiku-20240307-v1:0)"
    )
