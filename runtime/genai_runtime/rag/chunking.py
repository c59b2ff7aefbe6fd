"""Split documents into chunks whose ids derive from the source and the chunk's position.

The same source always yields the same ids, so re-ingesting (a retry, a re-upload) overwrites
rather than duplicates, and a shorter new version leaves surplus ids that ingestion deletes.
A content hash per chunk tells an unchanged chunk from an updated one without re-embedding.

Passages and windows. A *passage* (up to ``chunk_size`` characters, cut at headings first) is what
retrieval returns and what keyword search scores. all-MiniLM-L6-v2 reads only its first 256 word
pieces, so a passage is embedded as overlapping *windows* of ``EMBED_WINDOW`` characters (about
140 word pieces with the heading path), each stored as one chunk that carries its passage's text;
a passage scores as its best window, and a search returns each passage once. On the hard set in
``bench/data/rag_hard`` this is what lifts hit@3 from 0.61 (plain langchain) to 0.8: see
``bench/results/rag.json`` for each option measured.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from genai_contracts.chunking import (
    DEFAULT_CHUNK_OVERLAP,
    DEFAULT_CHUNK_SIZE,
    EMBED_WINDOW,
    EMBED_WINDOW_OVERLAP,
    MAX_CHUNK_SIZE,
)

from ..errors import UsageError

if TYPE_CHECKING:
    from langchain_core.documents import Document

__all__ = [
    "DEFAULT_CHUNK_OVERLAP",
    "DEFAULT_CHUNK_SIZE",
    "EMBED_WINDOW",
    "EMBED_WINDOW_OVERLAP",
    "MAX_CHUNK_SIZE",
    "Chunk",
    "split_documents",
]


@dataclass(frozen=True)
class Chunk:
    """One stored record: ``text`` is the passage returned, ``embed_text`` the window embedded for it
    (None: the passage itself). ``metadata["passage"]`` numbers the passages of a source."""

    id: str
    text: str
    metadata: dict = field(default_factory=dict)
    embed_text: str | None = None

    @property
    def embedding_text(self) -> str:
        return self.text if self.embed_text is None else self.embed_text

    @property
    def source(self) -> str:
        return self.metadata["source"]

    @property
    def content_hash(self) -> str:
        return self.metadata["content_hash"]


def chunk_id(source: str, position: int) -> str:
    return hashlib.sha256(f"{source}\n{position}".encode()).hexdigest()[:32]


def content_hash(text: str, metadata: dict, embed_text: str | None = None) -> str:
    payload = json.dumps([text, metadata, embed_text], sort_keys=True, ensure_ascii=False, default=str)
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
    *,
    structure: bool = True,
    window: int = EMBED_WINDOW,
    window_overlap: int = EMBED_WINDOW_OVERLAP,
) -> list[Chunk]:
    """Chunks of ``documents`` (all of one source, in order), numbered across pages.

    With ``structure`` (the default), Markdown (and HTML, whose loader keeps headings as ``#`` lines)
    is cut at its headings first: a passage never spans two sections unless both are small enough to
    share one, and every passage starts with its section's heading path (``Title > Section``), so
    both the embedding and the keyword index see which part of which document it comes from.
    Passages longer than ``window`` are embedded as windows (see the module docstring).
    """
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    validate_chunking(chunk_size, chunk_overlap)
    validate_chunking(window, window_overlap)
    passages: list[tuple[str, str, dict]] = []  # heading, text, metadata
    for document in documents:
        if structure and is_structured(document.metadata.get("source", "")):
            for heading, text in section_chunks(document.page_content, chunk_size, chunk_overlap):
                metadata = {**document.metadata, "section": heading} if heading else dict(document.metadata)
                passages.append((heading, text, metadata))
            continue
        splitter = RecursiveCharacterTextSplitter(
            chunk_size=chunk_size, chunk_overlap=chunk_overlap, strip_whitespace=True
        )
        passages.extend(("", text, dict(document.metadata)) for text in splitter.split_text(document.page_content))
    windows = RecursiveCharacterTextSplitter(chunk_size=window, chunk_overlap=window_overlap, strip_whitespace=True)
    chunks: list[Chunk] = []
    for number, (heading, text, passage_metadata) in enumerate(p for p in passages if p[1].strip()):
        body = text[len(heading) :].lstrip() if heading else text
        pieces = [None] if len(text) <= window else [_with_heading(heading, w) for w in windows.split_text(body)]
        for piece in pieces:
            metadata = {**passage_metadata, "passage": number, "chunk": len(chunks)}
            metadata["content_hash"] = content_hash(text, metadata, piece)
            chunks.append(Chunk(chunk_id(metadata["source"], metadata["chunk"]), text, metadata, piece))
    return chunks


# ---- structure-aware splitting
STRUCTURED_SUFFIXES = frozenset({".md", ".markdown", ".html", ".htm"})
HEADING_DEPTH = 4  # h1..h4 open sections; deeper headings stay inside their section's text
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_FENCE = re.compile(r"^[ ]{0,3}(`{3,}|~{3,})")
PATH_SEPARATOR = " > "


def is_structured(source: str) -> bool:
    return PurePosixPath(source.split("?", 1)[0]).suffix.lower() in STRUCTURED_SUFFIXES


@dataclass
class Section:
    path: list[str]
    lines: list[str]

    @property
    def heading(self) -> str:
        return PATH_SEPARATOR.join(self.path)

    @property
    def body(self) -> str:
        return "".join(self.lines).strip()


def markdown_sections(text: str) -> list[Section]:
    """ATX-heading sections, text kept verbatim (indentation, blank lines, code).

    Not langchain's ``MarkdownHeaderTextSplitter``: it strips each line's indentation and drops blank
    lines. Nor ``ExperimentalMarkdownSyntaxTextSplitter``: it drops the rest of a file after an
    unclosed code fence and pops lines from the front of a list (quadratic in a large file).
    A ``#`` inside a fenced block is code, not a heading.
    """
    sections = [Section([], [])]
    stack: list[tuple[int, str]] = []
    fence = ""
    for line in text.splitlines(keepends=True):
        marker = _FENCE.match(line)
        if fence:
            if marker and marker.group(1)[0] == fence[0] and len(marker.group(1)) >= len(fence):
                fence = ""
            sections[-1].lines.append(line)
            continue
        if marker:
            fence = marker.group(1)
            sections[-1].lines.append(line)
            continue
        heading = _HEADING.match(line.rstrip("\n"))
        if heading and len(heading.group(1)) <= HEADING_DEPTH:
            depth = len(heading.group(1))
            stack = [(d, t) for d, t in stack if d < depth] + [(depth, heading.group(2).strip())]
            sections.append(Section([t for _, t in stack], []))
        else:
            sections[-1].lines.append(line)
    return [s for s in sections if s.body or s.path]


def section_chunks(text: str, chunk_size: int, chunk_overlap: int) -> list[tuple[str, str]]:
    """(heading path, chunk text) pairs: small sibling sections share a chunk, large ones are split."""
    from langchain_text_splitters import Language, RecursiveCharacterTextSplitter

    out: list[tuple[str, str]] = []
    pending: list[Section] = []

    def flush() -> None:
        if not pending:
            return
        first = pending[0]
        parts = [first.body] + [f"{'#' * min(len(s.path), 6)} {s.path[-1]}\n{s.body}" for s in pending[1:]]
        body = "\n\n".join(p for p in parts if p)
        if body or first.heading:
            out.append((first.heading, _with_heading(first.heading, body)))
        pending.clear()

    sections = markdown_sections(text)
    for number, section in enumerate(sections):
        following = sections[number + 1].path if number + 1 < len(sections) else []
        if not section.body and len(following) > len(section.path) and following[: len(section.path)] == section.path:
            continue  # a heading whose subsections follow: it leads their heading paths
        size = len(section.body) + len(section.heading) + 2
        if size > chunk_size:
            flush()
            room = max(chunk_size - len(section.heading) - 2, chunk_size // 2)
            splitter = RecursiveCharacterTextSplitter.from_language(
                Language.MARKDOWN, chunk_size=room, chunk_overlap=min(chunk_overlap, room - 1), strip_whitespace=True
            )
            out.extend(
                (section.heading, _with_heading(section.heading, piece)) for piece in splitter.split_text(section.body)
            )
            continue
        # Share a chunk with the first pending section's own subsections or siblings, while it fits.
        if pending and (
            not _related(pending[0].path, section.path)
            or sum(len(s.body) + len(s.path[-1] if s.path else "") + 8 for s in pending) + size > chunk_size
        ):
            flush()
        pending.append(section)
    flush()
    return out


def _related(first: list[str], path: list[str]) -> bool:
    return path[: len(first)] == first or (len(path) == len(first) and path[:-1] == first[:-1])


def _with_heading(heading: str, body: str) -> str:
    if not heading:
        return body
    return f"{heading}\n\n{body}" if body else heading
