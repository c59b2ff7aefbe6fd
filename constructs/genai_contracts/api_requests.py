"""The request bodies of the RAG query API (``POST /query``) and the agent API (``POST /invoke``).

Written once, in pydantic: the handlers (``lambdas.rag_query``, ``lambdas.agent_api``) validate with
these models, the runtime searches with ``SearchOptions``, and the constructs give API Gateway the JSON
Schema ``api_gateway.request_schema`` generates from them. The models are strict (``"3"`` is not a
``k``) and forbid unknown fields, so the gateway refuses what the handler refuses, with two gaps the
handler answers with its own 400: the rule a draft-4 schema cannot state (``fetch_k >= k``), and a value
ending in a newline where a pattern ends in ``$``, for a validator whose ``$`` matches before a final
newline (Python's and Java's do; pydantic's does not).

``similarity`` ranks by cosine similarity; ``mmr`` (maximal marginal relevance) re-ranks the
``fetch_k`` nearest by relevance minus redundancy, weighted by ``lambda_mult`` (1 = relevance only,
0 = diversity only); ``hybrid`` fuses BM25 keyword ranking with vector ranking by reciprocal rank
fusion. ``filter`` keeps only chunks whose metadata equals every given value.

**Sizes.** The character limits are the contract; the byte caps the handlers put on a body
(``QueryRequest.MAX_BODY_BYTES``, ``InvokeRequest.MAX_BODY_BYTES``) are computed from them, so a body the
model accepts is never refused for its size, however it is spelt: a character may take
``MAX_JSON_BYTES_PER_CHAR`` bytes in JSON (an emoji sent ``\\ud83d\\ude00``-escaped, as ``json.dumps``
writes it by default), plus ``BODY_ALLOWANCE_BYTES`` for the punctuation, the other fields and whitespace.
``filter_type_problems`` checks filter values against the index's field types (``vector_index.METADATA_TYPES``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator

SearchType = Literal["similarity", "mmr", "hybrid"]
MAX_FILTER_VALUE_CHARS = 2048
"""A string filter value: room for any S3 URI (``s3://`` + a 63-character bucket + a 1,024-byte key)."""
MAX_FILTER_NUMBER = 2**53 - 1
MIN_FILTER_NUMBER = -MAX_FILTER_NUMBER
"""A number filter value: the integers every JSON parser holds exactly (JavaScript's, so the CDK writes the
bound into the API Gateway model unrounded), inside OpenSearch's ``long``; no NaN or infinity (``1e400``)."""
FilterValue = (
    Annotated[StrictStr, Field(max_length=MAX_FILTER_VALUE_CHARS)]
    | Annotated[StrictInt, Field(ge=MIN_FILTER_NUMBER, le=MAX_FILTER_NUMBER)]
    | Annotated[StrictFloat, Field(ge=MIN_FILTER_NUMBER, le=MAX_FILTER_NUMBER, allow_inf_nan=False)]
    | StrictBool
)
# bench/results/rag.json (quality.hard): hybrid has the best hit@3 and MRR; a deployment on
# OpenSearch Serverless (no search pipelines) defaults to similarity through the DEFAULT_SEARCH_TYPE variable.
DEFAULT_SEARCH_TYPE: SearchType = "hybrid"
MAX_K = 50
MAX_FETCH_K = 1000
MAX_FILTERS = 8
MAX_FILTER_KEY_CHARS = 64
FILTER_KEY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
"""A metadata field name: an identifier of at most 64 characters (the length is in the pattern, so the
JSON Schema states it as ``patternProperties``)."""
MAX_QUESTION_CHARS = 4000
MAX_INPUT_CHARS = 25_000
"""The longest ``inputText`` Bedrock's ``InvokeAgent`` takes."""
SESSION_ID_PATTERN = r"^[0-9a-zA-Z._:-]{2,100}$"
"""``InvokeAgent``'s ``sessionId``."""
NOT_BLANK = r"[^ \t\n\r\x0b\x0c]"
"""Some character that is not ASCII whitespace. Spelt out rather than ``\\S``, whose meaning differs from one
regex engine to the next (pydantic's Rust engine: Unicode White_Space; Python's ``re``, which jsonschema
uses: ``str.isspace``; Java's: ASCII only); a question of Unicode spaces only still gets the handler's 400."""
MAX_JSON_BYTES_PER_CHAR = 12
"""The longest JSON spelling of one character: a 4-byte UTF-8 character written as an escaped surrogate pair
(``\\ud83d\\ude00``, 12 bytes); raw it is 4, a ``\\u0000``-escaped control character 6."""
BODY_ALLOWANCE_BYTES = 4096
"""Room in a body beyond its long strings: braces, quotes, the field names, numbers, booleans, whitespace."""


class SearchOptions(BaseModel):
    """What a retrieval asks for, validated once for the CLI, the library and the query API."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    k: Annotated[int, Field(ge=1, le=MAX_K)] = 3
    search_type: SearchType = DEFAULT_SEARCH_TYPE
    # Candidates per ranking: 50 measured on bench/data/rag_hard (20 costs hybrid 0.05 hit@3).
    fetch_k: Annotated[int, Field(ge=1, le=MAX_FETCH_K)] = 50
    lambda_mult: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    filter: dict[Annotated[str, Field(pattern=FILTER_KEY_PATTERN)], FilterValue] = Field(
        default_factory=dict, max_length=MAX_FILTERS
    )

    @model_validator(mode="after")
    def _fetch_at_least_k(self) -> SearchOptions:
        if self.fetch_k < self.k:
            raise ValueError(f"fetch_k ({self.fetch_k}) must be at least k ({self.k})")
        return self


class QueryRequest(SearchOptions):
    """POST /query: a question, and how to search for the passages that answer it."""

    question: Annotated[str, Field(min_length=1, max_length=MAX_QUESTION_CHARS, pattern=NOT_BLANK)]
    generate: bool = True

    MAX_BODY_BYTES: ClassVar[int] = (
        MAX_QUESTION_CHARS * MAX_JSON_BYTES_PER_CHAR
        + MAX_FILTERS * (MAX_FILTER_KEY_CHARS + 4 + MAX_FILTER_VALUE_CHARS * MAX_JSON_BYTES_PER_CHAR)
        + BODY_ALLOWANCE_BYTES
    )
    """The largest body this model can accept, whatever its spelling: the handler's cap (413 above it)."""

    def search_options(self) -> SearchOptions:
        return SearchOptions(**self.model_dump(exclude={"question", "generate"}))


class InvokeRequest(BaseModel):
    """POST /invoke: what to ask the agent, and the session to continue (default: a new one)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    inputText: Annotated[str, Field(min_length=1, max_length=MAX_INPUT_CHARS, pattern=NOT_BLANK)]  # noqa: N815
    sessionId: Annotated[str, Field(pattern=SESSION_ID_PATTERN)] | None = None  # noqa: N815

    MAX_BODY_BYTES: ClassVar[int] = MAX_INPUT_CHARS * MAX_JSON_BYTES_PER_CHAR + BODY_ALLOWANCE_BYTES
    """The largest body this model can accept, whatever its spelling (the session id is ASCII, 100 at most)."""


_INTEGER_RANGES = {"integer": (-(2**31), 2**31 - 1), "long": (MIN_FILTER_NUMBER, MAX_FILTER_NUMBER)}
"""OpenSearch's ``integer`` is 32-bit; its ``long`` holds every filter number the model accepts."""
_FLOAT_MAX = 3.4028234663852886e38  # OpenSearch "float" is IEEE single precision


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_date(value: object) -> bool:
    if _is_int(value):  # epoch milliseconds
        return MIN_FILTER_NUMBER <= value <= MAX_FILTER_NUMBER  # type: ignore[operator]
    if not isinstance(value, str):
        return False
    try:
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def filter_type_problems(filter: Mapping[str, object], field_types: Mapping[str, str]) -> list[str]:
    """What in ``filter`` an index with ``field_types`` (field -> OpenSearch type) cannot compare, one line each.

    A field without a known type is not checked here (the caller decides about unknown fields).
    """
    problems = []
    for name, value in sorted(filter.items()):
        kind = field_types.get(name)
        if kind is None:
            continue
        if kind == "keyword":
            ok, want = isinstance(value, str), "a string"
        elif kind in _INTEGER_RANGES:
            low, high = _INTEGER_RANGES[kind]
            ok, want = _is_int(value) and low <= value <= high, f"an integer from {low} to {high}"  # type: ignore[operator]
        elif kind == "float":
            ok = (_is_int(value) or isinstance(value, float)) and math.isfinite(value) and abs(value) <= _FLOAT_MAX  # type: ignore[arg-type]
            want = "a number"
        elif kind == "boolean":
            ok, want = isinstance(value, bool), "true or false"
        elif kind == "date":
            ok, want = _is_date(value), "an ISO 8601 date or epoch milliseconds"
        else:
            continue
        if not ok:
            article = "an" if kind[0] in "aeiou" else "a"
            problems.append(f"filter.{name}: {name} is {article} {kind} field; give {want}, not {value!r}"[:300])
    return problems
