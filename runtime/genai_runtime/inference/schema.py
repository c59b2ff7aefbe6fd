"""The request/response contract of the book's LMI endpoints, validated field by field.

``{"inputs": str | [str], "parameters": {...}, "adapter": "tenant-a", "stream": false}``
-> ``[{"generated_text": "..."}]``
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MAX_BATCH = 32
MAX_BODY_BYTES = 1 << 20
"""The largest request body any front (``genai serve``, the LMI formatter) accepts."""
MAX_DEPTH = 16
"""Our shape nests three levels (body -> parameters -> stop); anything deeper is refused before
``json.loads`` could recurse into a ``RecursionError``."""
MAX_NEW_TOKENS = 4096
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
_NESTING = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


class RequestError(ValueError):
    """A request the endpoint refuses; ``status`` is the HTTP code (400, 413, 503...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class GenerationParameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_new_tokens: int = Field(64, ge=1, le=MAX_NEW_TOKENS)
    temperature: float = Field(1.0, gt=0.0, le=100.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(50, ge=0, le=10_000)
    do_sample: bool = False
    repetition_penalty: float = Field(1.0, gt=0.0, le=10.0)
    stop: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(default_factory=list, max_length=16)
    seed: int | None = Field(None, ge=0, le=2**32 - 1)

    @field_validator("stop", mode="before")
    @classmethod
    def _one_stop_string(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def key(self) -> str:
        """Requests with equal keys can share one ``generate`` call."""
        return self.model_dump_json()


class InferenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    inputs: str | list[str]
    parameters: GenerationParameters = Field(default_factory=GenerationParameters)
    adapter: str | None = Field(None, min_length=1, max_length=128)
    stream: bool = False

    @field_validator("inputs")
    @classmethod
    def _inputs(cls, value: str | list[str]) -> str | list[str]:
        texts = [value] if isinstance(value, str) else value
        if not texts:
            raise ValueError("give at least one input text")
        if len(texts) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} inputs per request, got {len(texts)}")
        if any(not text for text in texts):
            raise ValueError("input texts must not be empty")
        return value

    @property
    def texts(self) -> list[str]:
        return [self.inputs] if isinstance(self.inputs, str) else list(self.inputs)


def decode_body(body: bytes | bytearray | str) -> Any:
    """Decode a JSON body the way every front must: a ``RequestError`` (4xx), never a crash.

    Refused: over ``MAX_BODY_BYTES`` (413), invalid UTF-8, nesting deeper than ``MAX_DEPTH``,
    ``NaN``/``Infinity`` (not JSON, though Python's decoder takes them), lone surrogates such as
    ``"\\ud800"`` (valid JSON escapes that no tokenizer can encode) and numbers that overflow.
    """
    if isinstance(body, str):
        try:
            body = body.encode("utf-8")
        except UnicodeEncodeError:
            raise RequestError(400, "body: contains a lone surrogate; send valid Unicode text") from None
    if len(body) > MAX_BODY_BYTES:
        raise RequestError(413, f"body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}")
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError as error:
        raise RequestError(400, f"body is not valid UTF-8 (byte {error.start}); send UTF-8 JSON") from None
    _check_depth(body)
    try:
        # NaN/Infinity decode to floats here so that _find_bad_value can name the field holding them.
        payload = json.loads(text or "null")
    except (json.JSONDecodeError, RecursionError) as error:
        raise RequestError(400, f"body is not valid JSON: {error}") from None
    except ValueError as error:  # an integer literal past Python's 4300-digit conversion limit
        raise RequestError(400, f"body: {error}; send numbers of ordinary size") from None
    problem = _find_bad_value(payload, "")
    if problem is not None:
        raise RequestError(400, problem)
    return payload


def _check_depth(body: bytes | bytearray) -> None:
    depth = 0
    for match in _NESTING.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > MAX_DEPTH:
                raise RequestError(400, f"body: nested deeper than {MAX_DEPTH} levels; send the documented shape")
        elif token in (b"]", b"}"):
            depth -= 1


def _find_bad_value(value: Any, path: str) -> str | None:
    """The first string holding a lone surrogate or number that overflowed to infinity (``1e999``)."""
    if isinstance(value, str):
        if _LONE_SURROGATE.search(value):
            return f"{path or 'body'}: contains a lone surrogate (e.g. \\ud800); send valid Unicode text"
    elif isinstance(value, float):
        if not math.isfinite(value):
            return f"{path or 'body'}: {value} is not a finite number (NaN, Infinity or out of range); send one"
    elif isinstance(value, dict):
        for key, item in value.items():
            if _LONE_SURROGATE.search(key):
                return f"{path or 'body'}: a key contains a lone surrogate; send valid Unicode text"
            found = _find_bad_value(item, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _find_bad_value(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def too_long(request: InferenceRequest, index: int, length: int, context_length: int) -> RequestError:
    """The 413 for input ``index`` of ``length`` tokens that, with ``max_new_tokens``, overflows the context."""
    max_new_tokens = request.parameters.max_new_tokens
    where = "inputs" if isinstance(request.inputs, str) else f"inputs[{index}]"
    return RequestError(
        413,
        f"{where}: {length} tokens plus max_new_tokens={max_new_tokens} exceed the model's context of "
        f"{context_length} tokens; shorten the input to at most {max(context_length - max_new_tokens, 0)} tokens "
        "or lower max_new_tokens",
    )


def parse_request(payload: Any) -> InferenceRequest:
    """Validate a decoded JSON body; raise ``RequestError(400)`` naming the bad field."""
    if not isinstance(payload, dict):
        raise RequestError(400, 'the body must be a JSON object like {"inputs": "...", "parameters": {...}}')
    try:
        return InferenceRequest.model_validate(payload)
    except ValidationError as error:
        raise RequestError(400, describe(error)) from None


def describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"] if not str(p).startswith(("str", "list[")))
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        elif item["type"] == "missing":
            message = "required"
        problems.append(f"{field or 'body'}: {message}")
    return "; ".join(dict.fromkeys(problems))
