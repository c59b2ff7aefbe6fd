"""Split documents into chunks whose ids derive from the source and the chunk's position.

The same source always yields the same ids, so re-ingesting (a retry, a re-upload) overwrites
rather than duplicates, and a shorter new version leaves surplus ids that ingestion deletes.
A content hash per chunk tells an unchanged chunk from an updated one without re-embedding.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import UsageError

if TYPE_CHECKING:
    from langchain_core.documents import Document

DEFAULT_CHUNK_SIZE = 512  # the book's characters per chunk
DEFAULT_CHUNK_OVERLAP = 100
MAX_CHUNK_SIZE = 100_000


@dataclass(frozen=True)
class Chunk:
    id: str
    text: str
    metadata: dict = field(default_factory=dict)

    @property
    def source(self) -> str:
        return self.metadata["source"]

    @property
    def content_hash(self) -> str:
        return self.metadata["content_hash"]


def chunk_id(source: str, position: int) -> str:
    return hashlib.sha256(f"{source}\n{position}".encode()).hexdigest()[:32]


def content_hash(text: str, metadata: dict) -> str:
    payload = json.dumps([text, metadata], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def validate_chunking(chunk_size: int, chunk_overlap: int) -> None:
    if not isinstance(chunk_size, int) or not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise UsageError(f"chunk_size={chunk_size!r} is invalid: give characters per chunk, 1..{MAX_CHUNK_SIZE}")
    if not isinstance(chunk_overlap, int) or not 0 <= chunk_overlap < chunk_size:
        raise UsageError(
            f"chunk_overlap={chunk_overlap!r} is invalid: give 0..chunk_size-1 ({chunk_size - 1}) characters"
        )


def split_documents(
    documents: Sequence[Document],
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    chunk_overlap: int = DEFAULT_CHUNK_OVERLAP,
) -> list[Chunk]:
    """Chunks of ``documents`` (all of one source, in order), numbered across pages."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    validate_chunking(chunk_size, chunk_overlap)
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=chunk_size, chunk_overlap=chunk_overlap, add_start_index=True, strip_whitespace=True
    )
    chunks: list[Chunk] = []
    for piece in splitter.split_documents(documents):
        if not piece.page_content.strip():
            continue
        metadata = {**piece.metadata, "chunk": len(chunks)}
        metadata["content_hash"] = content_hash(piece.page_content, metadata)
        chunks.append(Chunk(chunk_id(metadata["source"], metadata["chunk"]), piece.page_content, metadata))
    return chunks
