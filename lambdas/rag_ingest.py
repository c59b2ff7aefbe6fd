"""Ingestion: S3 notifications arrive through SQS; each object is synced to the vector index.

**Order.** The queue is standard (no order) and up to ``max_concurrency`` invocations run at once, so
deliveries for one key arrive late, twice, and side by side. Every record of an S3 notification names
the key, the version (the bucket is versioned) and the event's ``sequencer``, which orders the events
of one key (S3's own words are quoted in ``genai_runtime.rag.ingest``). The index keeps the sequencer
(and version id) with the rows of each source, and an event older than what the index holds changes
nothing; a delete leaves a tombstone, so a late older upload cannot bring the object back. (That is
an OpenSearch index, ``GenerationalIndex``; a FAISS folder, a single-writer index for local runs and
tests, is synced to the object's state without the ordering.)

What an event indexes:

- ``ObjectCreated``: exactly the version it names (``HeadObject``/``GetObject`` with ``VersionId``); if
  that version is gone (deleted since), the object's current state;
- ``ObjectRemoved``: the object's current state: its current version if it still has one (a version
  deleted under a newer one, or a new upload since), else the tombstone.

Either way the state is recorded under the event's sequencer. A current state read later than the
event is as new as the event or newer, and every change after the event comes with a greater sequencer
that will be applied over it, so the index converges on the object's last state.

**Eventual consistency.** A Serverless collection makes writes searchable only after its refresh
interval (it has no ``refresh``), so a delivery may not see what another just wrote. After a sync that
changed such an index, the notification is sent to the queue once more, delayed past the interval
(``RECONCILE_DELAY_S``); that delivery sees everything and collects what concurrent deliveries left.

**Time.** One slow document must not time the whole batch out. A record is not started with less than
``START_MARGIN_MS`` left (it fails, and SQS redelivers it), and work stops with ``FINISH_MARGIN_MS``
left: the record fails for SQS to redeliver (the rows written so far are kept, and the next delivery
goes on from them), unless it was the invocation's first record, which had the whole budget to itself:
that document needs more time than the function has, and goes to the dead-letter queue saying so.

**Failures** split in two. A transient one (throttling, a network error, an unavailable service) fails
the SQS record, which SQS redelivers and, after ``maxReceiveCount`` attempts, moves to the dead-letter
queue. A poison document (unsupported type, unparsable, too large, metadata that is not valid, rows the
index refuses: any ``UsageError`` or ``ValueError`` from the document) is sent to the dead-letter queue
at once with the reason as a message attribute, and the record succeeds so it is not retried in vain.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath
from urllib.parse import unquote_plus

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.exceptions import ClientError
from langchain_core.embeddings import Embeddings

from genai_contracts import names
from genai_contracts.chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE
from genai_runtime.errors import UsageError
from genai_runtime.rag.chunking import Chunk, split_documents
from genai_runtime.rag.documents import SUPPORTED_SUFFIXES, coerce_metadata, load_file
from genai_runtime.rag.embeddings import LazyEmbeddings
from genai_runtime.rag.index import VectorIndex, open_index
from genai_runtime.rag.ingest import (
    GenerationalIndex,
    Row,
    apply_plans,
    is_stale,
    normalize_sequencer,
    plan_source,
    remove_source,
    sync_source,
)

from ._config import int_setting, setting

logger = Logger(service=names.RAG_INGEST_SERVICE)
processor = BatchProcessor(event_type=EventType.SQS)
MAX_OBJECT_BYTES = 50 * 1024 * 1024
START_MARGIN_MS = 30_000
"""A record is not started with less time than this left (not the invocation's first)."""
FINISH_MARGIN_MS = 10_000
"""Work on a record stops with this much time left: enough to report it and dead-letter it."""
EMBED_BATCH = 64
"""Chunks per embedding call in the function: the time budget is checked between calls."""
RECONCILE_DELAY_S = 120
"""Past a Serverless collection's refresh interval (60 s for Classic vector collections, 10 s for NextGen)."""
MAX_RECONCILES = 2
RECONCILE_ATTRIBUTE = "genai-reconcile"
_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchVersion", "405", "MethodNotAllowed"}
_VERSION_REFUSED = _MISSING | {"400", "InvalidArgument"}  # a version id S3 does not know
_TRANSIENT_CODES = {
    "throttling",
    "throttlingexception",
    "throttledexception",
    "toomanyrequestsexception",
    "provisionedthroughputexceededexception",
    "requestlimitexceeded",
    "slowdown",
    "requesttimeout",
    "requesttimeoutexception",
    "serviceunavailable",
    "serviceunavailableexception",
    "internalerror",
    "internalfailure",
    "internalservererror",
    "internalserverexception",
    "modelnotreadyexception",
    "modeltimeoutexception",
}


class PoisonDocument(Exception):
    """A document no retry can fix."""


class OutOfTime(Exception):
    """The invocation's time budget ran out before this record was done."""


@lru_cache(maxsize=1)
def s3():
    return boto3.client("s3")


@lru_cache(maxsize=1)
def sqs():
    return boto3.client("sqs")


@lru_cache(maxsize=1)
def vector_index() -> VectorIndex:
    return open_index(setting(names.INDEX_URL), setting(names.EMBEDDINGS), create=True)


@lru_cache(maxsize=1)
def embeddings() -> Embeddings:
    """Loaded at the first text to embed: a delivery that changes nothing never loads the model."""
    return LazyEmbeddings(setting(names.EMBEDDINGS))


# ---- the time budget
@dataclass
class Budget:
    """The time one record may take: until ``FINISH_MARGIN_MS`` is left of the invocation."""

    context: object | None
    alone: bool  # the invocation's first record: it had the whole budget

    def left_ms(self) -> int | None:
        remaining = getattr(self.context, "get_remaining_time_in_millis", None)
        return int(remaining()) if callable(remaining) else None

    def check(self) -> None:
        left = self.left_ms()
        if left is not None and left < FINISH_MARGIN_MS:
            raise OutOfTime(f"stopped with {left} ms of the invocation left")


class _Invocation:
    records = 0


def start_record(lambda_context) -> Budget:
    """The record's budget; ``OutOfTime`` if too little time is left to start it."""
    _Invocation.records += 1
    budget = Budget(lambda_context, alone=_Invocation.records == 1)
    left = budget.left_ms()
    if left is not None and not budget.alone and left < START_MARGIN_MS:
        raise OutOfTime(f"not started: {left} ms of the invocation left")
    return budget


# ---- S3 events
@dataclass(frozen=True)
class S3Event:
    bucket: str
    key: str
    event_name: str = ""
    version_id: str | None = None
    sequencer: str | None = None

    @property
    def source(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def exact(self) -> bool:
        """Whether this event names the version to index (an ordered upload of a versioned object)."""
        return (
            self.event_name.startswith("ObjectCreated") and self.sequencer is not None and _versioned(self.version_id)
        )


def _versioned(version_id: str | None) -> bool:
    return bool(version_id) and version_id != "null"


def s3_objects(record: SQSRecord) -> list[S3Event]:
    try:
        notification = json.loads(record.body)
    except json.JSONDecodeError:
        raise PoisonDocument(f"message {record.message_id} is not an S3 notification (not JSON)") from None
    if isinstance(notification, dict) and notification.get("Event") == "s3:TestEvent":
        return []
    try:
        events = []
        for item in notification["Records"]:
            obj = item["s3"]["object"]
            sequencer = obj.get("sequencer")
            events.append(
                S3Event(
                    bucket=item["s3"]["bucket"]["name"],
                    key=unquote_plus(obj["key"]),
                    event_name=str(item.get("eventName", "")),
                    version_id=obj.get("versionId"),
                    sequencer=normalize_sequencer(sequencer) if sequencer is not None else None,
                )
            )
        return events
    except (KeyError, TypeError, AttributeError):
        raise PoisonDocument(f"message {record.message_id} is not an S3 notification (no Records[].s3)") from None
    except ValueError as error:  # a sequencer that is not hexadecimal
        raise PoisonDocument(f"message {record.message_id}: {error}") from None


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def head(event: S3Event) -> dict | None:
    """``HeadObject`` of the version to index, or None when the object has none (deleted)."""
    if event.exact:
        try:
            return s3().head_object(Bucket=event.bucket, Key=event.key, VersionId=event.version_id)
        except ClientError as error:
            if _code(error) not in _VERSION_REFUSED:
                raise
            logger.info("version gone since its event: indexing the current state", extra={"source": event.source})
    try:
        return s3().head_object(Bucket=event.bucket, Key=event.key)
    except ClientError as error:
        if _code(error) in _MISSING:
            return None
        raise


def read_chunks(event: S3Event, found: dict) -> list[Chunk]:
    """The chunks of the object version ``found`` describes; ``PoisonDocument`` for what no retry fixes."""
    source = event.source
    suffix = PurePosixPath(event.key).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise PoisonDocument(
            f"{source}: unsupported file type {suffix or '(none)'}; supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}"
        )
    if found["ContentLength"] > MAX_OBJECT_BYTES:
        raise PoisonDocument(f"{source}: {found['ContentLength']} bytes is over the {MAX_OBJECT_BYTES}-byte limit")
    version = found.get("VersionId")
    try:
        metadata = coerce_metadata(found.get("Metadata", {}), source)
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / f"object{suffix}"
            extra = {"VersionId": version} if _versioned(version) else None
            s3().download_file(event.bucket, event.key, str(path), ExtraArgs=extra)
            documents = load_file(path, source=source, metadata=metadata)
        return split_documents(
            documents,
            int_setting(names.CHUNK_SIZE, DEFAULT_CHUNK_SIZE),
            int_setting(names.CHUNK_OVERLAP, DEFAULT_CHUNK_OVERLAP),
        )
    except (UsageError, ValueError) as error:  # the document itself: its metadata, its bytes, its text
        if transient(error):
            raise
        raise PoisonDocument(_reason(source, error)) from None


def _reason(source: str, error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text if text.startswith(source) else f"{source}: {type(error).__name__}: {text}"


def transient(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) is one a retry may not meet: throttling, a network error, a 5xx."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError
    from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
    from opensearchpy.exceptions import TransportError

    from genai_runtime.rag.opensearch import IndexingFailed

    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ClientError):
            status = current.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if _code(current).lower() in _TRANSIENT_CODES or status == 429 or status >= 500:
                return True
        if isinstance(current, BotoConnectionError | HTTPClientError | OpenSearchConnectionError | IndexingFailed):
            return True
        if isinstance(current, ConnectionError | TimeoutError):
            return True
        if isinstance(current, TransportError) and isinstance(current.status_code, int):
            if current.status_code == 429 or current.status_code >= 500:
                return True
        if getattr(current, "retryable", False):  # genai_runtime.errors.DependencyError
            return True
        current = current.__cause__ or current.__context__
    return False


# ---- one event
def sync_event(event: S3Event, budget: Budget) -> dict:
    """Make the index hold what ``event`` says of its object; returns what changed (``changed``: anything)."""
    source = event.source
    index = vector_index()
    rows: list[Row] | None = index.rows(source) if isinstance(index, GenerationalIndex) else None
    if rows is not None and event.sequencer is not None and is_stale(rows, event.sequencer):
        plan = plan_source(index, source, None, sequencer=event.sequencer, rows=rows)
        apply_plans(index, None, [plan])
        changed = bool(plan.report.rows_deleted)
        return {"source": source, "skipped": "older than the state the index holds", "changed": changed}
    found = head(event)
    if found is None:  # gone: its chunks go, and (in a GenerationalIndex) its tombstone stays
        if rows is None:
            deleted = remove_source(index, source)
            index.save()
            return {"source": source, "deleted": deleted, "changed": bool(deleted)}
        plan = plan_source(index, source, None, sequencer=event.sequencer, rows=rows)
        apply_plans(index, None, [plan])
        report = plan.report
        return {
            "source": source,
            "deleted": report.deleted,
            "changed": bool(report.rows_written or report.rows_deleted),
        }
    chunks = read_chunks(event, found)
    try:
        report = sync_source(
            index,
            embeddings(),
            source,
            chunks,
            sequencer=event.sequencer,
            version_id=found.get("VersionId"),
            rows=rows,
            check=budget.check,
            embed_batch=EMBED_BATCH,
        )
    except (UsageError, ValueError) as error:  # what the document holds, refused (not a passing failure)
        if transient(error):
            raise
        raise PoisonDocument(_reason(source, error)) from None
    index.save()
    return {
        "source": source,
        "version_id": found.get("VersionId"),
        "added": report.added,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "deleted": report.deleted,
        "changed": bool(report.rows_written or report.rows_deleted),
    }


def dead_letter(record: SQSRecord, reason: str) -> None:
    sqs().send_message(
        QueueUrl=setting(names.DEAD_LETTER_QUEUE_URL),
        MessageBody=record.body,
        MessageAttributes={
            "reason": {"DataType": "String", "StringValue": reason[:1000]},
            "source_message_id": {"DataType": "String", "StringValue": record.message_id},
        },
    )


def reconcile_later(record: SQSRecord) -> None:
    """Deliver this notification again once the index's refresh interval has passed (an eventually
    consistent index: what concurrent deliveries wrote is then visible to be collected)."""
    attribute = (record.message_attributes or {}).get(RECONCILE_ATTRIBUTE) or {}
    done = int(attribute.get("stringValue") or 0)
    if done >= MAX_RECONCILES:
        return
    sqs().send_message(
        QueueUrl=setting(names.INGEST_QUEUE_URL),
        MessageBody=record.body,
        DelaySeconds=RECONCILE_DELAY_S,
        MessageAttributes={RECONCILE_ATTRIBUTE: {"DataType": "Number", "StringValue": str(done + 1)}},
    )


def record_handler(record: SQSRecord, lambda_context=None) -> None:
    budget = start_record(lambda_context)
    try:
        changed = False
        for event in s3_objects(record):
            result = sync_event(event, budget)
            changed = result.pop("changed") or changed
            logger.info("synced", extra=result)
        if changed and getattr(vector_index(), "eventually_consistent", False):
            reconcile_later(record)
    except PoisonDocument as error:
        logger.warning("poison document sent to the dead-letter queue", extra={"reason": str(error)})
        dead_letter(record, str(error))
    except OutOfTime as error:
        if not budget.alone:
            logger.warning("record left for SQS to redeliver", extra={"reason": str(error)})
            raise
        reason = (
            f"message {record.message_id}: indexing needs more time than the function has: {error} "
            "(the rows written so far are kept); raise the function's timeout or split the document"
        )
        logger.warning("document over the time budget sent to the dead-letter queue", extra={"reason": reason})
        dead_letter(record, reason)


@logger.inject_lambda_context
def handler(event: dict, context) -> dict:
    _Invocation.records = 0
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
