"""One way to make boto3 clients, and one reading of what their failures mean.

``client(service_name)`` is the only place the runtime and the Lambda handlers create a boto3 client
(generation, embeddings, ``BedrockClient``, the agent API, the claims table). Each client is made once
per service and region and carries the same botocore ``Config``: retries in botocore's *adaptive* mode
(exponential backoff with jitter plus client-side rate limiting when throttled) bounded by
``MAX_ATTEMPTS`` calls in all (``total_max_attempts``), and connect/read timeouts. Nothing above botocore
retries again, so one request costs at most ``MAX_ATTEMPTS`` calls to a dependency.

``dependency_error(error, target)`` turns what botocore raised into a ``DependencyError``: retryable
(throttled, unavailable, timed out: an API answers 503 with ``Retry-After``) or not (the dependency
failed or refused: 502), with a message naming the target and the service's error code.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from .errors import DependencyError

MAX_ATTEMPTS = 3
"""Calls per request, the first included: botocore's ``total_max_attempts`` (its ``max_attempts`` key
counts retries only, one fewer; ``total_max_attempts`` is the one ``AWS_MAX_ATTEMPTS`` sets)."""
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 60.0
"""botocore's default; a generation of a few hundred tokens fits well inside it."""
RETRY_AFTER_S = 5
"""What a 503 tells the caller to wait (throttling is over in seconds; botocore already backed off)."""
MODEL_LOADING_RETRY_AFTER_S = 30
"""A SageMaker endpoint scaling from zero or a Bedrock model still loading takes longer."""

THROTTLED_CODES = frozenset(
    code.lower()
    for code in (
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "ServiceQuotaExceededException",
    )
)
"""botocore's throttling codes (``botocore.retries.standard``) and Bedrock's quota error."""
UNAVAILABLE_CODES = frozenset(
    code.lower()
    for code in (
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "ModelTimeoutException",
        "ModelNotReadyException",
        "ConflictException",  # InvokeAgent: the session already has an invocation running
        "TransactionInProgressException",
    )
)
"""Codes after which the same request may succeed later."""
LOADING_CODES = frozenset({"modelnotreadyexception"})
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})


def config(read_timeout_s: float = READ_TIMEOUT_S) -> Any:
    """The botocore ``Config`` every client gets."""
    from botocore.config import Config

    return Config(
        retries={"mode": "adaptive", "total_max_attempts": MAX_ATTEMPTS},
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=read_timeout_s,
    )


def _region(region_name: str | None) -> str | None:
    if region_name:
        return region_name
    import boto3

    return boto3.session.Session().region_name


def client(service_name: str, region_name: str | None = None, *, read_timeout_s: float = READ_TIMEOUT_S) -> Any:
    """The boto3 client of ``service_name`` in ``region_name`` (default: the ambient region), made once."""
    return _client(service_name, _region(region_name), read_timeout_s)


@lru_cache(maxsize=32)
def _client(service_name: str, region_name: str | None, read_timeout_s: float) -> Any:
    import boto3

    return boto3.client(service_name, region_name=region_name, config=config(read_timeout_s))


def resource(service_name: str, region_name: str | None = None) -> Any:
    """A boto3 resource (DynamoDB tables) with the same ``Config``; callers keep the one they make."""
    import boto3

    return boto3.resource(service_name, region_name=_region(region_name), config=config())


def clear_cache() -> None:
    """Forget the clients made so far (tests that switch regions or mocks)."""
    _client.cache_clear()


def is_aws_error(error: BaseException) -> bool:
    """Whether ``error`` is something botocore raises for a failed call."""
    from botocore.exceptions import BotoCoreError, ClientError

    return isinstance(error, (ClientError, BotoCoreError))


def error_code(error: BaseException) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", "") or "")
    return ""


def dependency_error(error: BaseException, target: str) -> DependencyError:
    """``error`` (from botocore, or already a ``DependencyError``) as a ``DependencyError`` naming ``target``."""
    if isinstance(error, DependencyError):
        return error
    from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = str(details.get("Code", "") or "")
        message = str(details.get("Message", "") or error)
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        attempts = error.response.get("ResponseMetadata", {}).get("RetryAttempts")
        lowered = code.lower()
        retryable = lowered in THROTTLED_CODES or lowered in UNAVAILABLE_CODES or status in RETRYABLE_STATUS
        text = f"{target}: {code or 'error'}: {message}"
        if retryable and attempts:
            text += f" (after {attempts + 1} attempts)"
        return DependencyError(
            text,
            service=target,
            code=code,
            retryable=retryable,
            retry_after_s=(MODEL_LOADING_RETRY_AFTER_S if lowered in LOADING_CODES else RETRY_AFTER_S)
            if retryable
            else None,
        )
    if isinstance(error, (ConnectionError, HTTPClientError)):  # connect/read timeouts, refused, reset
        return DependencyError(
            f"{target}: unavailable: {error}",
            service=target,
            code=type(error).__name__,
            retryable=True,
            retry_after_s=RETRY_AFTER_S,
        )
    if isinstance(error, BotoCoreError):  # no credentials, no region, a request botocore refused
        return DependencyError(f"{target}: {error}", service=target, code=type(error).__name__)
    return DependencyError(f"{target}: {type(error).__name__}: {error}", service=target)
