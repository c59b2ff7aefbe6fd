"""Idempotent ingestion: only new or changed chunks are embedded; vanished ones are deleted.

A chunk's id is its source and position, its hash its text and metadata. Re-running over the same
files embeds nothing and changes nothing; an edited file updates the chunks that changed and deletes
the surplus if it shrank; a file gone from a folder that was ingested before loses its chunks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from langchain_core.embeddings import Embeddings

from .chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE, Chunk, split_documents, validate_chunking
from .documents import find_documents, load_file
from .index import VectorIndex

# Chunks per embed_documents call. sentence-transformers sorts each call's texts by length before
# its own mini-batches, so one large call pads less than many small ones; remote providers batch inside.
EMBED_BATCH = 4096


@dataclass
class IngestReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    documents: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # source -> reason

    def __iadd__(self, other: IngestReport) -> IngestReport:
        for name in ("added", "updated", "unchanged", "deleted", "documents"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failed.update(other.failed)
        return self

    def summary(self) -> str:
        text = (
            f"{self.documents} documents: {self.added} added, {self.updated} updated, "
            f"{self.unchanged} unchanged, {self.deleted} deleted chunks"
        )
        return text + (f"; {len(self.failed)} failed" if self.failed else "")


@dataclass
class _Plan:
    """What syncing one source needs: chunks to embed and ids to delete."""

    to_embed: list[Chunk]
    to_delete: list[str]
    report: IngestReport


def plan_source(index: VectorIndex, source: str, chunks: Sequence[Chunk]) -> _Plan:
    held = index.chunk_hashes(source)
    report = IngestReport(documents=1)
    to_embed = []
    for chunk in chunks:
        previous = held.get(chunk.id)
        if previous == chunk.content_hash:
            report.unchanged += 1
            continue
        to_embed.append(chunk)
        if previous is None:
            report.added += 1
        else:
            report.updated += 1
    wanted = {chunk.id for chunk in chunks}
    to_delete = sorted(set(held) - wanted)
    report.deleted = len(to_delete)
    return _Plan(to_embed, to_delete, report)


def apply_plans(index: VectorIndex, embeddings: Embeddings, plans: Iterable[_Plan]) -> IngestReport:
    report = IngestReport()
    pending: list[Chunk] = []
    doomed: list[str] = []
    for plan in plans:
        pending.extend(plan.to_embed)
        doomed.extend(plan.to_delete)
        report += plan.report
    for start in range(0, len(pending), EMBED_BATCH):
        batch = pending[start : start + EMBED_BATCH]
        index.upsert(batch, embed_distinct(embeddings, [chunk.text for chunk in batch]))
    index.delete(doomed)
    return report


def embed_distinct(embeddings: Embeddings, texts: list[str]) -> list[list[float]]:
    """Embed each distinct text once (boilerplate, copies): the same text always gets the same vector."""
    distinct = list(dict.fromkeys(texts))
    vectors = dict(zip(distinct, embeddings.embed_documents(distinct), strict=True))
    return [vectors[text] for text in texts]


def sync_source(index: VectorIndex, embeddings: Embeddings, source: str, chunks: Sequence[Chunk]) -> IngestReport:
    """Make the index hold exactly ``chunks`` for ``source`` (the ingestion Lambda's unit of work)."""
    return apply_plans(index, embeddings, [plan_source(index, source, chunks)])


def remove_source(index: VectorIndex, source: str) -> int:
    ids = sorted(index.chunk_hashes(source))
    index.delete(ids)
    return len(ids)


def ingest_paths(
    paths: Sequence[str | Path],
    index: VectorIndex,
    embeddings: Embeddings,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    chunk_overlap: int = DEFAULT_CHUNK_OVERLAP,
    progress: bool = False,
) -> IngestReport:
    """Ingest files and folders; a file that cannot be read is reported, the rest go on."""
    from tqdm.auto import tqdm

    from .documents import UnsupportedDocument

    validate_chunking(chunk_size, chunk_overlap)
    files = find_documents(paths)
    plans, failed = [], {}
    for path in tqdm(files, desc="chunking", unit="file", disable=not progress):
        source = str(path)
        try:
            chunks = split_documents(load_file(path), chunk_size, chunk_overlap)
        except UnsupportedDocument as error:
            failed[source] = str(error)
            continue
        plans.append(plan_source(index, source, chunks))
    report = apply_plans(index, embeddings, plans)
    report.failed.update(failed)
    # Sources under a folder given now that no longer exist there: their files were deleted.
    seen = {str(path) for path in files}
    roots = [Path(p).resolve() for p in paths if Path(p).is_dir()]
    for source in sorted(index.sources() - seen):
        if (
            source not in failed
            and any(Path(source).is_relative_to(root) for root in roots)
            and not Path(source).exists()
        ):
            report.deleted += remove_source(index, source)
    index.save()
    return report
