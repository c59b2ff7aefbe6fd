"""Retrieval on langchain-core's interfaces: passages from windows, hybrid by langchain's own fusion.

A stored chunk is one embedding *window* of a *passage* (``chunking``); a search ranks windows and
returns each passage once, scored by its best window. Keyword search (BM25, langchain-community's
``BM25Retriever``) scores whole passages. Hybrid is langchain's ``EnsembleRetriever``: weighted
reciprocal rank fusion of the two rankings, with the keyword weight measured on the hard set
(``HYBRID_KEYWORD_WEIGHT``; ``bench/results/rag.json``). OpenSearch runs the same fusion server
side (its RRF search pipeline); ``IndexRetriever`` puts either index behind a ``BaseRetriever`` for
LCEL chains.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from .search import RRF_K, Retrieved, SearchOptions

# hit@3 / MRR@10 on the hard set (passages 1200, windows 500, fetch_k 50) for keyword weights
# 0.1, 0.2, 0.3: 0.820/0.708, 0.809/0.710, 0.809/0.689; vectors alone 0.753/0.655; plain langchain
# at the same passage size 0.652. bench/rag.py re-measures the grid in every run.
HYBRID_KEYWORD_WEIGHT = 0.1
PASSAGE_KEY = "passage_key"
SCORE_KEY = "score"
_WORD = re.compile(r"\w+")


def tokenize(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def passage_key(metadata: dict, chunk_id: object = None) -> str:
    """Which passage a chunk belongs to; a chunk indexed before passages existed is its own passage."""
    if "passage" in metadata:
        return f"{metadata.get('source', '')}#{metadata['passage']}"
    return f"chunk:{chunk_id if chunk_id is not None else metadata.get('chunk', '')}:{metadata.get('source', '')}"


def best_per_passage(hits: Iterable[tuple[Document, float]], k: int) -> list[tuple[Document, float]]:
    """The first (best) hit of each passage, in order, up to ``k``."""
    seen: set[str] = set()
    kept = []
    for document, score in hits:
        key = passage_key(document.metadata, document.id)
        if key not in seen:
            seen.add(key)
            kept.append((document, score))
            if len(kept) == k:
                break
    return kept


def to_retrieved(document: Document, score: float) -> Retrieved:
    metadata = {k: v for k, v in document.metadata.items() if k not in (PASSAGE_KEY, SCORE_KEY)}
    return Retrieved(str(document.id), document.page_content, float(score), metadata)


def _tagged(document: Document, score: float) -> Document:
    metadata = {**document.metadata, PASSAGE_KEY: passage_key(document.metadata, document.id), SCORE_KEY: score}
    return Document(id=document.id, page_content=document.page_content, metadata=metadata)


class QueryVector(Embeddings):
    """The vector already computed for a query: a retriever built for one search embeds nothing again."""

    def __init__(self, query: str, vector: Sequence[float]) -> None:
        self.query, self.vector = query, list(vector)

    def embed_query(self, text: str) -> list[float]:
        if text != self.query:
            raise ValueError("QueryVector holds the vector of one query only")
        return self.vector

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise TypeError("QueryVector embeds no documents")


class PassageVectorRetriever(BaseRetriever):
    """Vector search over a langchain ``VectorStore`` of windows; one result per passage.

    ``similarity`` ranks the ``fetch_k`` nearest windows; ``mmr`` runs the store's own
    ``max_marginal_relevance_search_with_score_by_vector`` (or, for stores without scores,
    ``max_marginal_relevance_search_by_vector``).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    vectorstore: Any
    embeddings: Embeddings
    search_type: str = "similarity"
    k: int = 3
    fetch_k: int = 20
    lambda_mult: float = 0.5
    filter: dict | None = None

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        vector = self.embeddings.embed_query(query)
        # Several windows of one passage may rank together: fetch enough to still return k passages.
        fetch = max(self.fetch_k, self.k * 4)
        if self.search_type == "mmr":
            # MMR re-orders the fetch_k nearest windows (as langchain's MMR does); a larger pool would
            # trade relevance for diversity far beyond what lambda_mult asks for.
            pool = max(self.fetch_k, self.k)
            mmr = getattr(self.vectorstore, "max_marginal_relevance_search_with_score_by_vector", None)
            if mmr is not None:
                hits = mmr(vector, k=pool, fetch_k=pool, lambda_mult=self.lambda_mult, filter=self.filter)
            else:
                found = self.vectorstore.max_marginal_relevance_search_by_vector(
                    vector, k=pool, fetch_k=pool, lambda_mult=self.lambda_mult, filter=self.filter
                )
                hits = [(doc, 0.0) for doc in found]
        else:
            hits = self.vectorstore.similarity_search_with_score_by_vector(vector, k=fetch, filter=self.filter)
        return [_tagged(doc, score) for doc, score in best_per_passage(hits, self.k)]


def keyword_retriever(passages: Sequence[Document], k: int):
    """langchain-community's BM25 over whole passages (one document per passage)."""
    from langchain_community.retrievers import BM25Retriever

    return BM25Retriever.from_documents([_tagged(doc, 0.0) for doc in passages], k=k, preprocess_func=tokenize)


def passages_of(documents: Iterable[Document], filter: dict | None = None) -> list[Document]:
    """One document per passage (its first window), optionally only those matching ``filter``."""
    by_passage: dict[str, Document] = {}
    for doc in documents:
        if filter and any(doc.metadata.get(key) != value for key, value in filter.items()):
            continue
        by_passage.setdefault(passage_key(doc.metadata, doc.id), doc)
    return list(by_passage.values())


def scored_ensemble(retrievers: list[BaseRetriever], weights: list[float], c: int = RRF_K):
    """langchain's ``EnsembleRetriever`` whose documents carry their fused score."""
    from langchain_classic.retrievers import EnsembleRetriever

    class ScoredEnsembleRetriever(EnsembleRetriever):
        def weighted_reciprocal_rank(self, doc_lists: list[list[Document]]) -> list[Document]:
            fused = super().weighted_reciprocal_rank(doc_lists)
            scores: dict[str, float] = defaultdict(float)
            for doc_list, weight in zip(doc_lists, self.weights, strict=True):
                for rank, doc in enumerate(doc_list, start=1):
                    scores[doc.metadata[PASSAGE_KEY]] += weight / (rank + self.c)
            return [
                Document(
                    id=doc.id,
                    page_content=doc.page_content,
                    metadata={**doc.metadata, SCORE_KEY: scores[doc.metadata[PASSAGE_KEY]]},
                )
                for doc in fused
            ]

    return ScoredEnsembleRetriever(retrievers=retrievers, weights=weights, c=c, id_key=PASSAGE_KEY)


def search_store(
    store,
    question: str,
    vector: Sequence[float],
    options: SearchOptions,
    keyword: BaseRetriever | None = None,
    keyword_weight: float = HYBRID_KEYWORD_WEIGHT,
) -> list[Retrieved]:
    """One search over a langchain ``VectorStore`` of windows; ``keyword`` is needed for hybrid."""
    vectors = PassageVectorRetriever(
        vectorstore=store,
        embeddings=QueryVector(question, vector),
        search_type="mmr" if options.search_type == "mmr" else "similarity",
        k=options.k if options.search_type != "hybrid" else options.fetch_k,
        fetch_k=options.fetch_k,
        lambda_mult=options.lambda_mult,
        filter=options.filter or None,
    )
    if options.search_type != "hybrid":
        found = vectors.invoke(question)
    else:
        if keyword is None:
            raise ValueError("hybrid search needs a keyword retriever")
        found = scored_ensemble([keyword, vectors], [keyword_weight, 1 - keyword_weight]).invoke(question)
    return [to_retrieved(doc, doc.metadata[SCORE_KEY]) for doc in found[: options.k]]


class IndexRetriever(BaseRetriever):
    """Any project index (FAISS folder or OpenSearch) behind langchain's ``BaseRetriever``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    index: Any
    embeddings: Embeddings
    options: SearchOptions = SearchOptions()

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        hits = self.index.search(query, self.embeddings.embed_query(query), self.options)
        return [
            Document(id=hit.id, page_content=hit.text, metadata={**hit.metadata, SCORE_KEY: hit.score}) for hit in hits
        ]
