"""One way to read an API Gateway JSON body into a pydantic model, with a 400-ready message."""

from __future__ import annotations

import json

from pydantic import BaseModel, ValidationError

from genai_runtime.errors import UsageError


def parse_json_body(body: str | None, model: type[BaseModel], max_bytes: int, example: str):
    """``model`` from ``body``; a ``UsageError`` naming the field (or the problem) otherwise."""
    if not body:
        raise UsageError(f"the request has no body: send {example}")
    if len(body.encode()) > max_bytes:
        raise UsageError(f"the request body is over {max_bytes} bytes")
    try:
        payload = json.loads(body)
    except json.JSONDecodeError as problem:
        raise UsageError(f"the request body is not JSON: {problem}") from None
    if not isinstance(payload, dict):
        raise UsageError("the request body must be a JSON object")
    try:
        return model.model_validate(payload)
    except ValidationError as problem:
        raise UsageError(
            "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in problem.errors())
        ) from None
