"""What the API Gateway handlers share: the event checked against the proxy shape, the body read into a
pydantic model with a 4xx-ready message, and JSON error responses (502/503 for a dependency's failure).

The event is checked against the REST API proxy integration's input (the fields Powertools'
``APIGatewayProxyEvent`` reads) before the resolver sees it, so a direct invocation with some other
payload gets a 400 in API Gateway's shape instead of a KeyError inside the resolver.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from pydantic import BaseModel, ConfigDict, ValidationError

from genai_runtime.errors import DependencyError, UsageError


class PayloadTooLarge(UsageError):
    """The body is over the model's largest possible size (413)."""


class ProxyEvent(BaseModel):
    """The fields of an API Gateway REST proxy event the handlers and Powertools' resolver read."""

    model_config = ConfigDict(extra="allow", strict=True)

    httpMethod: str  # noqa: N815 - the event's own names
    path: str
    headers: dict[str, str] | None = None
    multiValueHeaders: dict[str, list[str]] | None = None  # noqa: N815
    queryStringParameters: dict[str, str] | None = None  # noqa: N815
    multiValueQueryStringParameters: dict[str, list[str]] | None = None  # noqa: N815
    pathParameters: dict[str, str] | None = None  # noqa: N815
    stageVariables: dict[str, str] | None = None  # noqa: N815
    requestContext: dict[str, Any] | None = None  # noqa: N815
    body: str | None = None
    isBase64Encoded: bool | None = False  # noqa: N815


def _problems(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in error.errors())


def proxy_event_problem(event: object) -> str | None:
    """Why ``event`` is not an API Gateway proxy event, or None when it is one."""
    if not isinstance(event, dict):
        return f"the event is a {type(event).__name__}, not an API Gateway proxy event (a JSON object)"
    try:
        ProxyEvent.model_validate(event)
    except ValidationError as error:
        return f"not an API Gateway proxy event: {_problems(error)}"[:1000]
    context = event.get("requestContext") or {}
    for key in ("stage", "path"):  # Powertools reads these to strip the stage from the path
        if key in context and not isinstance(context[key], str):
            return f"not an API Gateway proxy event: requestContext.{key} must be a string"
    return None


def body_text(event: dict) -> str | None:
    """The body as text (API Gateway base64-encodes it for binary media types)."""
    body = event.get("body")
    if body is None or not event.get("isBase64Encoded"):
        return body
    try:
        return base64.b64decode(body, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise UsageError("the request body is marked base64 but is not base64-encoded UTF-8 text") from None


def _refuse_constant(name: str):
    raise UsageError(f"the request body is not JSON: {name} is not a JSON number")


def parse_json_body(body: str | None, model: type[BaseModel], max_bytes: int, example: str):
    """``model`` from ``body``; a ``UsageError`` naming the field (or the problem) otherwise.

    ``max_bytes`` is the model's largest possible body (``MAX_BODY_BYTES``); above it a ``PayloadTooLarge``.
    """
    if not body:
        raise UsageError(f"the request has no body: send {example}")
    size = len(body.encode("utf-8", errors="surrogatepass"))
    if size > max_bytes:
        raise PayloadTooLarge(f"the request body is {size} bytes; the largest {model.__name__} is {max_bytes} bytes")
    try:
        payload = json.loads(body, parse_constant=_refuse_constant)
    except json.JSONDecodeError as problem:
        raise UsageError(f"the request body is not JSON: {problem}") from None
    except (ValueError, RecursionError) as problem:  # an integer of over 4,300 digits, nesting too deep
        if isinstance(problem, UsageError):
            raise
        raise UsageError(f"the request body is not JSON this API reads: {str(problem)[:200]}") from None
    if not isinstance(payload, dict):
        raise UsageError("the request body must be a JSON object")
    try:
        return model.model_validate(payload)
    except ValidationError as problem:
        raise UsageError(_problems(problem)[:2000]) from None


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps({"message": message}),
        headers=headers,
    )


def install_fallbacks(app: Any, logger: Any, operation: str) -> None:
    """A JSON 404 for a route the API does not have, and a JSON 500 (logged) for anything unforeseen,
    on a Powertools resolver whose only operation is ``operation`` (e.g. ``POST /query``)."""

    @app.not_found
    def _unknown(_: Exception) -> Response:
        event = app.current_event
        return error_response(
            404, f"{event.http_method} {event.path} is not an operation of this API; send {operation}"
        )

    @app.exception_handler(Exception)
    def _unexpected(problem: Exception) -> Response:
        logger.exception(f"{operation} failed")
        return error_response(500, "internal error; see the function's logs")


def usage_response(error: UsageError) -> Response:
    return error_response(413 if isinstance(error, PayloadTooLarge) else 400, str(error))


def dependency_response(error: DependencyError) -> Response:
    """502 (the dependency failed) or 503 with ``Retry-After`` (throttled or unavailable: try again)."""
    headers = {"Retry-After": str(error.retry_after_s)} if error.retryable and error.retry_after_s else None
    return error_response(error.status, str(error)[:2000], headers)


def proxy_error(status: int, message: str) -> dict:
    """A response in API Gateway's proxy shape, for failures outside the resolver."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": content_types.APPLICATION_JSON},
        "multiValueHeaders": {},
        "body": json.dumps({"message": message}),
        "isBase64Encoded": False,
    }
