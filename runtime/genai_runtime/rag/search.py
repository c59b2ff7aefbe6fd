"""What a retrieval asks for and what it returns.

``SearchOptions`` is the query API's contract, so it lives in ``genai_contracts.api_requests`` (with
the handler's ``QueryRequest``) and is re-exported here for the CLI and the library.

``similarity`` ranks by cosine similarity; ``mmr`` (maximal marginal relevance) re-ranks the
``fetch_k`` nearest by relevance minus redundancy, weighted by ``lambda_mult`` (1 = relevance only,
0 = diversity only); ``hybrid`` fuses BM25 keyword ranking with vector ranking by reciprocal rank
fusion. ``filter`` keeps only chunks whose metadata equals every given value.
"""

from __future__ import annotations

from dataclasses import dataclass

from genai_contracts.api_requests import MAX_K, FilterValue, SearchOptions, SearchType

__all__ = [
    "MAX_K",
    "RRF_K",
    "FilterValue",
    "Retrieved",
    "SearchOptions",
    "SearchType",
    "mmr_select",
    "reciprocal_rank_fusion",
    "unknown_filter_keys",
]
RRF_K = 60  # the constant of Cormack et al.'s reciprocal rank fusion


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
        # langchain-core annotates list[list[float]]; it takes arrays (and converts them with np.array).
        [np.asarray(vector, dtype=np.float32) for _, vector in candidates],  # type: ignore[misc]
        lambda_mult=lambda_mult,
        k=k,
    )
    return [candidates[i][0] for i in chosen]
