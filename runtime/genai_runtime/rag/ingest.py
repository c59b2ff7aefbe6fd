"""Idempotent ingestion: only new or changed chunks are embedded; vanished ones are deleted.

A chunk's id is its source and position, its hash its text and metadata. Re-running over the same
files embeds nothing and changes nothing; an edited file updates the chunks that changed and deletes
the surplus if it shrank; a file gone from a folder that was ingested before loses its chunks.

An index keyed by chunk id (``FaissIndex``) is synced by plan: embed what changed, delete what went.
An index of rows found by fields (``GenerationalIndex``: OpenSearch, whose Serverless collections take
no document id) is synced by generation, in an order that concurrent and retried deliveries of S3
events cannot break (see "generations" below).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

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
class SourceReport(IngestReport):
    """One source's report. ``stale``: its event was older than what the index holds (nothing of it was
    written); ``rows_written`` / ``rows_deleted``: what the sync changed in a ``GenerationalIndex``."""

    stale: bool = False
    rows_written: int = 0
    rows_deleted: int = 0


@dataclass
class _Plan:
    """What syncing one source needs in a keyed index (``FaissIndex``): chunks to embed and ids to delete."""

    to_embed: list[Chunk]
    to_delete: list[str]
    report: SourceReport


# ---- generations: the ordering and idempotence of an index written by concurrent, retried deliveries
#
# Each S3 notification for a key carries a ``sequencer``. Amazon S3 (User Guide, "Event message
# structure"): "The sequencer key provides a way to determine the sequence of events. Event notifications
# are not guaranteed to arrive in the order that the events occurred. However, notifications from events
# that create objects (PUTs) and delete objects contain a sequencer, which can be used to determine the
# order of events for a given object key. If you compare the sequencer strings from two event
# notifications on the same object key, the event notification with the greater sequencer hexadecimal
# value is the event that occurred later. If you are using event notifications to maintain a separate
# database or index of your Amazon S3 objects, you will probably want to compare and store the sequencer
# values as you process each event notification. Note the following: You cannot use sequencer to
# determine order for events on different object keys. The sequencers can be of different lengths. So to
# compare these values, you first left pad the shorter value with zeros, and then do a lexicographical
# comparison."
#
# A GenerationalIndex stores, with every row of a source, the sequencer of the event that wrote it (a
# generation), and one state row per generation (``present``, or ``deleted``: the tombstone). A sync of
# generation g, in this order (each step is safe to repeat, and a crash between two leaves the document
# searchable, in its old version, its new one, or both):
#
#   1. read the source's rows; if some row is newer than g, g is stale: delete the rows older than the
#      newest (garbage anyone may collect) and stop; the event cannot overwrite a newer state;
#   2. write g's state row (a claim a concurrent older writer will see) unless a run of g already did;
#   3. write g's chunk rows not yet written by an earlier run of g; a chunk an older generation already
#      holds (same id and hash) is copied with its stored vector, never embedded again; nothing is
#      updated in place (Serverless has no upsert, and copies are what make concurrent runs safe);
#   4. read the rows again and delete every row older than the newest generation seen (g, or a newer one
#      that appeared meanwhile, in which case g's own rows go too), and g's duplicates.
#
# No writer deletes a row of a newer generation, and the newest generation writes every row it needs
# itself, so whatever the order of concurrent deliveries, and wherever one crashes and is retried, the
# index converges on the newest event's state, and a late older event changes nothing.

STATE_PRESENT = "present"
STATE_DELETED = "deleted"
SEQUENCER_WIDTH = 32
"""Stored sequencers are upper-case hex left-padded with zeros to this width (S3's are about 16-18)."""
_HEX = frozenset("0123456789ABCDEF")


def normalize_sequencer(value: str) -> str:
    """``value`` as stored: upper-case, left-padded with zeros; a ``ValueError`` if it is not hexadecimal."""
    text = str(value).strip().upper()
    if not text or not set(text) <= _HEX:
        raise ValueError(f"sequencer {value!r} is not a hexadecimal string")
    return text.rjust(SEQUENCER_WIDTH, "0")


def sequencer_key(value: str) -> tuple[int, str]:
    """A sort key ordering sequencers as S3 says: left-padded to equal length, then compared as strings."""
    digits = str(value).upper().lstrip("0")
    return len(digits), digits


def next_sequencer(newest: str | None) -> str:
    """A generation after ``newest``: for a sync no S3 event orders (a local ``genai rag ingest``)."""
    return format(int(newest or "0", 16) + 1, "X").rjust(SEQUENCER_WIDTH, "0")


@dataclass(frozen=True)
class Row:
    """One stored row of a source: a chunk of one generation, or a generation's state row (``state``)."""

    handle: str  # what deletes it (OpenSearch: the _id the service gave it)
    key: str  # unique and stable: reads page by it, and the smallest of duplicates is the one kept
    chunk_id: str | None
    content_hash: str | None
    sequencer: str  # "" for rows written before generations: older than every event
    version_id: str | None = None
    deleted: bool = False
    state: bool = False


@dataclass(frozen=True)
class NewRow:
    """A row to write: ``chunk`` with its ``vector``, or (``chunk`` None) the state row of a generation."""

    source: str
    sequencer: str
    version_id: str | None
    chunk: Chunk | None = None
    vector: list[float] | None = None
    deleted: bool = False

    @property
    def chunk_id(self) -> str | None:
        return self.chunk.id if self.chunk is not None else None


@runtime_checkable
class GenerationalIndex(Protocol):
    """An index that keeps rows by fields, not by document id (OpenSearch; ``FaissIndex`` is keyed)."""

    def rows(self, source: str) -> list[Row]: ...

    def write_rows(self, rows: Sequence[NewRow]) -> None: ...

    def delete_rows(self, handles: Sequence[str]) -> None: ...

    def stored_vectors(self, handles: Sequence[str]) -> dict[str, list[float]]: ...

    def refresh(self) -> None:
        """Make this writer's writes visible to its next read where the service allows it."""


@dataclass
class _Generation:
    """What syncing one source to one event needs in a ``GenerationalIndex``."""

    source: str
    sequencer: str
    version_id: str | None
    chunks: list[Chunk] | None  # None: the source is gone (its tombstone)
    rows: list[Row]
    report: SourceReport
    missing: list[Chunk] = field(default_factory=list)  # chunks no run of this generation wrote yet
    reuse: dict[str, str] = field(default_factory=dict)  # chunk id -> handle of an older row, same content

    @property
    def stale(self) -> bool:
        return self.report.stale


def newest_sequencer(rows: Iterable[Row]) -> str | None:
    return max((row.sequencer for row in rows), key=sequencer_key, default=None)


def is_stale(rows: Iterable[Row], sequencer: str) -> bool:
    """Whether the index already holds a state newer than the event of ``sequencer``."""
    newest = newest_sequencer(rows)
    return newest is not None and sequencer_key(newest) > sequencer_key(sequencer)


def _plan_generation(
    index: GenerationalIndex,
    source: str,
    chunks: Sequence[Chunk] | None,
    sequencer: str | None,
    version_id: str | None,
    rows: list[Row] | None,
) -> _Generation:
    rows = index.rows(source) if rows is None else rows
    sequence = normalize_sequencer(sequencer) if sequencer is not None else next_sequencer(newest_sequencer(rows))
    wanted = list(chunks) if chunks is not None else None
    plan = _Generation(source, sequence, version_id, wanted, rows, SourceReport(documents=1))
    if is_stale(rows, sequence):
        plan.report.stale = True
        return plan
    own = sequencer_key(sequence)
    older = sorted((r for r in rows if r.chunk_id and sequencer_key(r.sequencer) < own), key=_age)
    written = {(r.chunk_id, r.content_hash) for r in rows if r.chunk_id and sequencer_key(r.sequencer) == own}
    # What the index showed before this event: the newest older generation, or (a redelivery) this one.
    newest_older = older[-1].sequencer if older else None
    previous = {
        r.chunk_id: r.content_hash
        for r in rows
        if r.chunk_id and sequencer_key(r.sequencer) == sequencer_key(newest_older or sequence)
    }
    copies = {(r.chunk_id, r.content_hash): r.handle for r in older}  # newest last, so newest wins
    for chunk in wanted or []:
        held = previous.get(chunk.id)
        if held == chunk.content_hash:
            plan.report.unchanged += 1
        elif held is None:
            plan.report.added += 1
        else:
            plan.report.updated += 1
        if (chunk.id, chunk.content_hash) in written:
            continue
        plan.missing.append(chunk)
        if (chunk.id, chunk.content_hash) in copies:
            plan.reuse[chunk.id] = copies[(chunk.id, chunk.content_hash)]
    plan.report.deleted = len(set(previous) - {chunk.id for chunk in wanted or []})
    return plan


def _age(row: Row) -> tuple[tuple[int, str], str]:
    return sequencer_key(row.sequencer), row.key


def _doomed(plan: _Generation, rows: list[Row]) -> list[str]:
    """Handles to delete once ``plan`` is written: rows older than the newest generation, and duplicates."""
    newest = max([r.sequencer for r in rows] + ([] if plan.stale else [plan.sequencer]), key=sequencer_key)
    final = sequencer_key(newest)
    doomed = [r for r in rows if sequencer_key(r.sequencer) < final]
    if not plan.stale and final == sequencer_key(plan.sequencer):
        wanted = {(c.id, c.content_hash) for c in plan.chunks or []}
        kept: set[tuple] = set()
        for row in sorted((r for r in rows if sequencer_key(r.sequencer) == final), key=lambda r: r.key):
            ident: tuple = ("state", row.deleted) if row.state else (row.chunk_id, row.content_hash)
            belongs = row.deleted == (plan.chunks is None) if row.state else ident in wanted
            if not belongs or ident in kept:  # a duplicate of a retried write, or another run's verdict
                doomed.append(row)
            else:
                kept.add(ident)
    return list(dict.fromkeys(row.handle for row in doomed))


def _apply_generations(
    index: GenerationalIndex,
    embeddings: Embeddings | None,
    plans: list[_Generation],
    check: Callable[[], None],
    embed_batch: int,
) -> None:
    live = [p for p in plans if not p.stale]
    claims = [
        NewRow(p.source, p.sequencer, p.version_id, deleted=p.chunks is None)
        for p in live
        if not any(
            r.state and r.deleted == (p.chunks is None) and sequencer_key(r.sequencer) == sequencer_key(p.sequencer)
            for r in p.rows
        )
    ]
    if claims:
        check()
        index.write_rows(claims)
        index.refresh()
        for claim in claims:
            next(p for p in live if p.source == claim.source).report.rows_written += 1
    pending = [(p, chunk) for p in live for chunk in p.missing]
    for start in range(0, len(pending), embed_batch):
        check()
        batch = pending[start : start + embed_batch]
        stored = index.stored_vectors([p.reuse[c.id] for p, c in batch if c.id in p.reuse])
        fresh = [c for p, c in batch if p.reuse.get(c.id) not in stored]
        if fresh and embeddings is None:
            raise ValueError("chunks to embed but no embeddings given")
        vectors = iter(embed_distinct(embeddings, [c.embedding_text for c in fresh]) if fresh else [])  # type: ignore[arg-type]
        rows = []
        for p, chunk in batch:
            vector = stored.get(p.reuse.get(chunk.id, ""))
            rows.append(NewRow(p.source, p.sequencer, p.version_id, chunk=chunk, vector=vector or next(vectors)))
        index.write_rows(rows)
        for p, _ in batch:
            p.report.rows_written += 1
    if pending:
        index.refresh()
    deleted = 0
    for p in plans:
        doomed = _doomed(p, p.rows if p.stale else index.rows(p.source))
        index.delete_rows(doomed)
        p.report.rows_deleted += len(doomed)
        deleted += len(doomed)
    if deleted:
        index.refresh()


def _no_deadline() -> None:
    return None


def plan_source(
    index: VectorIndex,
    source: str,
    chunks: Sequence[Chunk] | None,
    *,
    sequencer: str | None = None,
    version_id: str | None = None,
    rows: list[Row] | None = None,
) -> _Plan | _Generation:
    """What making ``index`` hold exactly ``chunks`` for ``source`` takes (``chunks`` None: the source is gone).

    ``sequencer`` (an S3 event's) orders this against what a ``GenerationalIndex`` holds; without one the
    sync is the newest. ``version_id`` is recorded with the rows; ``rows`` are the source's rows if read.
    """
    if isinstance(index, GenerationalIndex):
        return _plan_generation(index, source, chunks, sequencer, version_id, rows)
    held = index.chunk_hashes(source)
    report = SourceReport(documents=1)
    to_embed = []
    for chunk in chunks or []:
        previous = held.get(chunk.id)
        if previous == chunk.content_hash:
            report.unchanged += 1
            continue
        to_embed.append(chunk)
        if previous is None:
            report.added += 1
        else:
            report.updated += 1
    wanted = {chunk.id for chunk in chunks or []}
    to_delete = sorted(set(held) - wanted)
    report.deleted = len(to_delete)
    return _Plan(to_embed, to_delete, report)


def apply_plans(
    index: VectorIndex,
    embeddings: Embeddings | None,
    plans: Iterable[_Plan | _Generation],
    *,
    check: Callable[[], None] | None = None,
    embed_batch: int = EMBED_BATCH,
) -> IngestReport:
    """Carry out ``plans``; ``check`` is called before each write (it raises to stop: a deadline)."""
    check = check or _no_deadline
    report = IngestReport()
    keyed: list[_Plan] = []
    generations: list[_Generation] = []
    for plan in plans:
        (keyed if isinstance(plan, _Plan) else generations).append(plan)  # type: ignore[arg-type]
        report += plan.report
    if generations:
        _apply_generations(index, embeddings, generations, check, embed_batch)  # type: ignore[arg-type]
    pending = [chunk for plan in keyed for chunk in plan.to_embed]
    doomed = [chunk_id for plan in keyed for chunk_id in plan.to_delete]
    for start in range(0, len(pending), embed_batch):
        check()
        batch = pending[start : start + embed_batch]
        index.upsert(batch, embed_distinct(embeddings, [chunk.embedding_text for chunk in batch]))  # type: ignore[arg-type]
    if doomed:
        index.delete(doomed)
    return report


def embed_distinct(embeddings: Embeddings, texts: list[str]) -> list[list[float]]:
    """Embed each distinct text once (boilerplate, copies): the same text always gets the same vector."""
    distinct = list(dict.fromkeys(texts))
    vectors = dict(zip(distinct, embeddings.embed_documents(distinct), strict=True))
    return [vectors[text] for text in texts]


def sync_source(
    index: VectorIndex,
    embeddings: Embeddings,
    source: str,
    chunks: Sequence[Chunk],
    *,
    sequencer: str | None = None,
    version_id: str | None = None,
    rows: list[Row] | None = None,
    check: Callable[[], None] | None = None,
    embed_batch: int = EMBED_BATCH,
) -> SourceReport:
    """Make the index hold exactly ``chunks`` for ``source`` (the ingestion Lambda's unit of work)."""
    plan = plan_source(index, source, chunks, sequencer=sequencer, version_id=version_id, rows=rows)
    apply_plans(index, embeddings, [plan], check=check, embed_batch=embed_batch)
    return plan.report


def remove_source(
    index: VectorIndex,
    source: str,
    *,
    sequencer: str | None = None,
    version_id: str | None = None,
    rows: list[Row] | None = None,
) -> int:
    """Delete ``source``'s chunks (a ``GenerationalIndex`` keeps its tombstone); returns how many went."""
    if isinstance(index, GenerationalIndex):
        plan = plan_source(index, source, None, sequencer=sequencer, version_id=version_id, rows=rows)
        apply_plans(index, None, [plan])
        return plan.report.deleted
    ids = sorted(index.chunk_hashes(source))
    if ids:
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
    """Ingest files and folders; a file that cannot be read is reported, the rest go on.

    A file fails alone (``IngestReport.failed`` says why) when it cannot be parsed or its sidecar
    ``NAME.metadata.json`` is not valid; the chunks it had in the index stay as they were. A FAISS
    folder is locked from planning to save, so two ingests into one folder run one after the other
    and the second starts from what the first saved."""
    from tqdm.auto import tqdm

    from ..errors import UsageError

    validate_chunking(chunk_size, chunk_overlap)
    files = find_documents(paths)
    with _writing(index):
        plans, failed = [], {}
        for path in tqdm(files, desc="chunking", unit="file", disable=not progress):
            source = str(path)
            try:
                chunks = split_documents(load_file(path), chunk_size, chunk_overlap)
            except UsageError as error:  # unreadable (UnsupportedDocument) or bad sidecar metadata
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


def _writing(index: VectorIndex):
    """The index's writer lock where it has one (a FAISS folder: ``FaissIndex.locked``); none for a server."""
    from contextlib import nullcontext

    locked = getattr(index, "locked", None)
    return locked() if callable(locked) else nullcontext()
