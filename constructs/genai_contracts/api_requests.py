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
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator

SearchType = Literal["similarity", "mmr", "hybrid"]
FilterValue = StrictStr | StrictInt | StrictFloat | StrictBool
DEFAULT_SEARCH_TYPE: SearchType = "hybrid"  # bench/results/rag.json (retrieval_quality): best hit@k on the labelled set
MAX_K = 50
MAX_FETCH_K = 1000
MAX_FILTERS = 8
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


class SearchOptions(BaseModel):
    """What a retrieval asks for, validated once for the CLI, the library and the query API."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    k: Annotated[int, Field(ge=1, le=MAX_K)] = 3
    search_type: SearchType = DEFAULT_SEARCH_TYPE
    fetch_k: Annotated[int, Field(ge=1, le=MAX_FETCH_K)] = 20
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

    def search_options(self) -> SearchOptions:
        return SearchOptions(**self.model_dump(exclude={"question", "generate"}))


class InvokeRequest(BaseModel):
    """POST /invoke: what to ask the agent, and the session to continue (default: a new one)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    inputText: Annotated[str, Field(min_length=1, max_length=MAX_INPUT_CHARS, pattern=NOT_BLANK)]  # noqa: N815
    sessionId: Annotated[str, Field(pattern=SESSION_ID_PATTERN)] | None = None  # noqa: N815
