"""What a retrieval asks for, validated once for the CLI, the library and the query Lambda.

``similarity`` ranks by cosine similarity; ``mmr`` (maximal marginal relevance) re-ranks the
``fetch_k`` nearest by relevance minus redundancy, weighted by ``lambda_mult`` (1 = relevance only,
0 = diversity only); ``hybrid`` fuses BM25 keyword ranking with vector ranking by reciprocal rank
fusion. ``filter`` keeps only chunks whose metadata equals every given value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator

SearchType = Literal["similarity", "mmr", "hybrid"]
FilterValue = StrictStr | StrictInt | StrictFloat | StrictBool
DEFAULT_SEARCH_TYPE: SearchType = "hybrid"  # bench/results/rag.json (retrieval_quality): best hit@k on the labelled set
MAX_K = 50
RRF_K = 60  # the constant of Cormack et al.'s reciprocal rank fusion


class SearchOptions(BaseModel):
    # Strict: "3" is not a k. The API Gateway request model (JSON Schema) refuses the same requests.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    k: Annotated[int, Field(ge=1, le=MAX_K)] = 3
    search_type: SearchType = DEFAULT_SEARCH_TYPE
    fetch_k: Annotated[int, Field(ge=1, le=1000)] = 20
    lambda_mult: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    filter: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)], FilterValue] = Field(
        default_factory=dict, max_length=8
    )

    @model_validator(mode="after")
    def _fetch_at_least_k(self) -> SearchOptions:
        if self.fetch_k < self.k:
            raise ValueError(f"fetch_k ({self.fetch_k}) must be at least k ({self.k})")
        return self


@dataclass(frozen=True)
class Retrieved:
    """One retrieved chunk: its text, where it came from, and its score under the search used."""

    id: str
    text: str
    score: float
    metadata: dict

    @property
    def source(self) -> str:
        return self.metadata.get("source", "")

    def to_json(self) -> dict:
        shown = {k: v for k, v in self.metadata.items() if k != "content_hash"}
        return {
            "id": self.id,
            "source": self.source,
            "score": round(self.score, 6),
            "text": self.text,
            "metadata": shown,
        }


def reciprocal_rank_fusion(rankings: list[list[str]], k: int = RRF_K) -> list[tuple[str, float]]:
    """Fused (id, score) best first: each ranking adds 1 / (k + rank) for every id it holds."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))


def unknown_filter_keys(options: SearchOptions, known: set[str]) -> list[str]:
    return sorted(set(options.filter) - known)


def mmr_select(
    query_vector, candidates: list[tuple[Retrieved, list[float]]], k: int, lambda_mult: float
) -> list[Retrieved]:
    """Maximal marginal relevance over candidates already ranked by similarity (langchain-core's MMR)."""
    import numpy as np
    from langchain_core.vectorstores.utils import maximal_marginal_relevance

    if not candidates:
        return []
    chosen = maximal_marginal_relevance(
        np.asarray(query_vector, dtype=np.float32),
        [np.asarray(vector, dtype=np.float32) for _, vector in candidates],
        lambda_mult=lambda_mult,
        k=k,
    )
    return [candidates[i][0] for i in chosen]
