"""The embedded vector index: langchain's FAISS store, saved as a FAISS file plus a JSON docstore.

No pickle: ``FAISS.save_local`` pickles its docstore and ``load_local`` must then be told to trust
it. Here the chunks live in ``chunks.json`` and only the vectors in ``index.faiss``.
Vectors are normalised, so the inner-product index ranks by cosine similarity.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from .chunking import Chunk
from .embeddings import VectorsOnly
from .search import Retrieved, SearchOptions, mmr_select, reciprocal_rank_fusion

FORMAT = 1
VECTORS_FILE = "index.faiss"
CHUNKS_FILE = "chunks.json"
_WORD = re.compile(r"\w+")


def tokenize(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class FaissIndex:
    def __init__(self, path: Path, embedding_model: str, store=None) -> None:
        self.path = path
        self.embedding_model = embedding_model
        self._store = store  # langchain FAISS, created at the first upsert (the dimension is unknown until then)
        self._bm25: Any = None  # a rank_bm25.BM25Okapi, built on first keyword search
        self._by_source: dict[str, dict[str, str]] | None = None
        self._fields: set[str] | None = None

    @classmethod
    def open(cls, path: Path, embedding_model: str, *, create: bool = False) -> FaissIndex:
        chunks_file = path / CHUNKS_FILE
        if not chunks_file.is_file():
            if not create:
                raise UsageError(f"{path}: no index here (no {CHUNKS_FILE}); build one with genai rag ingest")
            if path.exists() and not path.is_dir():
                raise UsageError(f"{path}: not a folder")
            return cls(path, embedding_model)
        try:
            saved = json.loads(chunks_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise UsageError(f"{chunks_file}: not a genai index file: {error}") from None
        if saved.get("format") != FORMAT:
            raise UsageError(f"{chunks_file}: index format {saved.get('format')!r}; this version reads {FORMAT}")
        if saved["embedding_model"] != embedding_model:
            raise UsageError(
                f"{path} was built with embeddings={saved['embedding_model']}, not {embedding_model}: "
                "query with the same embeddings, or re-ingest into a new index"
            )
        return cls(path, embedding_model, _load_store(path, saved))

    # ---- what the index holds
    def _documents(self):
        if self._store is None:
            return {}
        return self._store.docstore._dict  # noqa: SLF001 - InMemoryDocstore keeps its documents here

    def __len__(self) -> int:
        return 0 if self._store is None else self._store.index.ntotal

    def _source_map(self) -> dict[str, dict[str, str]]:
        """Source -> {chunk id: content hash}, built in one pass over the docstore and kept until a change."""
        if self._by_source is None:
            self._by_source = {}
            for doc_id, doc in self._documents().items():
                self._by_source.setdefault(doc.metadata["source"], {})[doc_id] = doc.metadata["content_hash"]
        return self._by_source

    def chunk_hashes(self, source: str) -> dict[str, str]:
        return dict(self._source_map().get(source, {}))

    def sources(self) -> set[str]:
        return set(self._source_map())

    def metadata_fields(self) -> set[str]:
        if self._fields is None:  # asked on every query: computed once per change
            self._fields = set()
            for doc in self._documents().values():
                self._fields.update(doc.metadata)
            self._fields.discard("content_hash")
        return set(self._fields)

    # ---- changes
    def upsert(self, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]) -> None:
        if not chunks:
            return
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        if self._store is None:
            self._store = _empty_store(len(vectors[0]))
        elif len(vectors[0]) != self._store.index.d:
            raise UsageError(
                f"{self.path}: index vectors have {self._store.index.d} dimensions, "
                f"embeddings give {len(vectors[0])}: use the embeddings the index was built with"
            )
        self.delete([chunk.id for chunk in chunks])
        self._store.add_embeddings(
            list(zip([c.text for c in chunks], [list(v) for v in vectors], strict=True)),
            metadatas=[c.metadata for c in chunks],
            ids=[c.id for c in chunks],
        )
        self._bm25 = self._by_source = self._fields = None

    def delete(self, ids: Sequence[str]) -> None:
        present = [i for i in ids if i in self._documents()]
        if present:
            self._store.delete(present)
            self._bm25 = self._by_source = self._fields = None

    def save(self) -> None:
        import faiss

        if self._store is None:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        store = self._store
        ordered = [store.index_to_docstore_id[i] for i in range(store.index.ntotal)]
        documents = self._documents()
        payload = {
            "format": FORMAT,
            "embedding_model": self.embedding_model,
            "dimension": store.index.d,
            "chunks": [
                {"id": i, "text": documents[i].page_content, "metadata": documents[i].metadata} for i in ordered
            ],
        }
        # Write both files beside their targets, then rename: a crash never leaves a half-written index.
        faiss.write_index(store.index, str(self.path / f".{VECTORS_FILE}.tmp"))
        (self.path / f".{CHUNKS_FILE}.tmp").write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
        os.replace(self.path / f".{VECTORS_FILE}.tmp", self.path / VECTORS_FILE)
        os.replace(self.path / f".{CHUNKS_FILE}.tmp", self.path / CHUNKS_FILE)

    # ---- retrieval
    def search(self, question: str, vector: Sequence[float], options: SearchOptions) -> list[Retrieved]:
        if self._store is None or not len(self):
            return []
        if options.search_type == "similarity":
            return self._similar(vector, options.k, options.filter)
        candidates = self._similar(vector, options.fetch_k, options.filter)
        if options.search_type == "mmr":
            store = self._store
            position = {doc_id: pos for pos, doc_id in store.index_to_docstore_id.items()}
            pairs = [(hit, store.index.reconstruct(position[hit.id])) for hit in candidates]
            return mmr_select(vector, pairs, options.k, options.lambda_mult)
        keyword = self._keyword_ranking(question, options.fetch_k, options.filter)
        by_id = {hit.id: hit for hit in [*candidates, *keyword]}
        fused = reciprocal_rank_fusion([[h.id for h in candidates], [h.id for h in keyword]])
        return [
            Retrieved(doc_id, by_id[doc_id].text, score, by_id[doc_id].metadata) for doc_id, score in fused[: options.k]
        ]

    def _similar(self, vector: Sequence[float], k: int, filter: dict) -> list[Retrieved]:
        # A flat index is exhaustive anyway: with a filter, rank everything so k matches are found.
        hits = self._store.similarity_search_with_score_by_vector(
            list(vector), k=k, filter=filter or None, fetch_k=len(self)
        )
        return [Retrieved(doc.id, doc.page_content, float(score), doc.metadata) for doc, score in hits]

    def _keyword_ranking(self, question: str, k: int, filter: dict) -> list[Retrieved]:
        from rank_bm25 import BM25Okapi

        documents = list(self._documents().items())
        if self._bm25 is None:
            self._bm25 = BM25Okapi([tokenize(doc.page_content) for _, doc in documents])
        scores = self._bm25.get_scores(tokenize(question))
        ranked = []
        for position in np.argsort(-scores, kind="stable"):
            doc_id, doc = documents[position]
            if scores[position] <= 0:
                break
            if all(doc.metadata.get(key) == value for key, value in filter.items()):
                ranked.append(Retrieved(doc_id, doc.page_content, float(scores[position]), doc.metadata))
                if len(ranked) == k:
                    break
        return ranked


def _empty_store(dimension: int):
    import faiss
    from langchain_community.docstore.in_memory import InMemoryDocstore
    from langchain_community.vectorstores import FAISS
    from langchain_community.vectorstores.utils import DistanceStrategy

    return FAISS(
        embedding_function=VectorsOnly(),
        index=faiss.IndexFlatIP(dimension),
        docstore=InMemoryDocstore(),
        index_to_docstore_id={},
        distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT,
    )


def _load_store(path: Path, saved: dict):
    import faiss
    from langchain_core.documents import Document

    vectors_file = path / VECTORS_FILE
    if not vectors_file.is_file():
        raise UsageError(f"{path}: {VECTORS_FILE} is missing; re-ingest to rebuild the index")
    store = _empty_store(saved["dimension"])
    store.index = faiss.read_index(str(vectors_file))
    chunks = saved["chunks"]
    if store.index.ntotal != len(chunks):
        raise UsageError(
            f"{path}: {VECTORS_FILE} holds {store.index.ntotal} vectors for {len(chunks)} chunks; re-ingest"
        )
    store.docstore.add({c["id"]: Document(id=c["id"], page_content=c["text"], metadata=c["metadata"]) for c in chunks})
    store.index_to_docstore_id.update({i: c["id"] for i, c in enumerate(chunks)})
    return store
