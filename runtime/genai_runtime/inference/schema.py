"""The request/response contract of the book's LMI endpoints, validated field by field.

``{"inputs": str | [str], "parameters": {...}, "adapter": "tenant-a", "stream": false}``
-> ``[{"generated_text": "..."}]``
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MAX_BATCH = 32


class RequestError(ValueError):
    """A request the endpoint refuses; ``status`` is the HTTP code (400, 413, 503...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class GenerationParameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_new_tokens: int = Field(64, ge=1, le=4096)
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
