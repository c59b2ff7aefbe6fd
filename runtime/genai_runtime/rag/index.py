"""The interface every vector index offers, and how a ``--index DIR_OR_URL`` opens one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from .chunking import Chunk
from .search import Retrieved, SearchOptions


@runtime_checkable
class VectorIndex(Protocol):
    """A vector index keyed by chunk id. ``embedding_model`` is the spec the vectors came from."""

    embedding_model: str

    def chunk_hashes(self, source: str) -> dict[str, str]:
        """Chunk id -> content hash of what the index holds for ``source``."""

    def sources(self) -> set[str]: ...

    def metadata_fields(self) -> set[str]:
        """Metadata keys a filter may name."""

    def upsert(self, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]) -> None: ...

    def delete(self, ids: Sequence[str]) -> bool | None:
        """Remove these chunks; ids the index does not hold are ignored (``FaissIndex`` returns True)."""

    def search(self, question: str, vector: Sequence[float], options: SearchOptions) -> list[Retrieved]: ...

    def save(self) -> None:
        """Make the changes durable (a no-op for a server-side index)."""


def is_url(location: str) -> bool:
    return location.startswith(("https://", "http://"))


def open_index(location: str, embedding_model: str, *, create: bool = False, **options) -> VectorIndex:
    """A FAISS index in a folder, or an OpenSearch index at ``https://HOST/INDEX``."""
    if is_url(location):
        from .opensearch import OpenSearchIndex

        return OpenSearchIndex.from_url(location, embedding_model, **options)
    from pathlib import Path

    from .faiss_index import FaissIndex

    return FaissIndex.open(Path(location), embedding_model, create=create)
