"""Ingestion: S3 notifications arrive through SQS; each object is synced to the vector index.

The handler looks at the object's *current* state rather than the event's verb, so events that
arrive late or twice do no harm: an object that exists is (re)indexed, one that is gone has its
chunks removed. Chunk ids derive from ``s3://bucket/key`` and position, so a retry overwrites.

Failures split in two. A transient one (throttling, a network error) fails the SQS record, which
SQS redelivers and, after ``maxReceiveCount`` attempts, moves to the dead-letter queue. A poison
document (unsupported type, unparsable, too large) is sent to the dead-letter queue at once with
the reason as a message attribute, and the record succeeds so it is not retried in vain.
"""

from __future__ import annotations

import json
import tempfile
from functools import lru_cache
from pathlib import Path, PurePosixPath
from urllib.parse import unquote_plus

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.exceptions import ClientError

from genai_contracts import names
from genai_runtime.errors import UsageError
from genai_runtime.rag.chunking import split_documents
from genai_runtime.rag.documents import SUPPORTED_SUFFIXES, coerce_metadata, load_file
from genai_runtime.rag.embeddings import embeddings_from_spec
from genai_runtime.rag.index import VectorIndex, open_index
from genai_runtime.rag.ingest import remove_source, sync_source

from ._config import int_setting, setting

logger = Logger(service=names.RAG_INGEST_SERVICE)
processor = BatchProcessor(event_type=EventType.SQS)
MAX_OBJECT_BYTES = 50 * 1024 * 1024


class PoisonDocument(Exception):
    """A document no retry can fix."""


@lru_cache(maxsize=1)
def s3():
    return boto3.client("s3")


@lru_cache(maxsize=1)
def sqs():
    return boto3.client("sqs")


@lru_cache(maxsize=1)
def vector_index() -> VectorIndex:
    return open_index(setting(names.INDEX_URL), setting(names.EMBEDDINGS), create=True)


def sync_object(bucket: str, key: str) -> dict:
    """Make the index match the object as it is now; returns what changed."""
    source = f"s3://{bucket}/{key}"
    index = vector_index()
    try:
        head = s3().head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            deleted = remove_source(index, source)
            index.save()
            return {"source": source, "deleted": deleted}
        raise
    suffix = PurePosixPath(key).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise PoisonDocument(
            f"{source}: unsupported file type {suffix or '(none)'}; supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}"
        )
    if head["ContentLength"] > MAX_OBJECT_BYTES:
        raise PoisonDocument(f"{source}: {head['ContentLength']} bytes is over the {MAX_OBJECT_BYTES}-byte limit")
    try:
        metadata = coerce_metadata(head.get("Metadata", {}), source)
    except UsageError as error:
        raise PoisonDocument(str(error)) from None
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / f"object{suffix}"
        s3().download_file(bucket, key, str(path))
        try:
            documents = load_file(path, source=source, metadata=metadata)
        except UsageError as error:
            raise PoisonDocument(str(error)) from None
    chunks = split_documents(documents, int_setting(names.CHUNK_SIZE, 512), int_setting(names.CHUNK_OVERLAP, 100))
    report = sync_source(index, embeddings_from_spec(setting(names.EMBEDDINGS)), source, chunks)
    index.save()
    return {
        "source": source,
        "added": report.added,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "deleted": report.deleted,
    }


def s3_objects(record: SQSRecord) -> list[tuple[str, str]]:
    try:
        notification = json.loads(record.body)
    except json.JSONDecodeError:
        raise PoisonDocument(f"message {record.message_id} is not an S3 notification (not JSON)") from None
    if notification.get("Event") == "s3:TestEvent":
        return []
    try:
        return [(r["s3"]["bucket"]["name"], unquote_plus(r["s3"]["object"]["key"])) for r in notification["Records"]]
    except (KeyError, TypeError):
        raise PoisonDocument(f"message {record.message_id} is not an S3 notification (no Records[].s3)") from None


def dead_letter(record: SQSRecord, reason: str) -> None:
    sqs().send_message(
        QueueUrl=setting(names.DEAD_LETTER_QUEUE_URL),
        MessageBody=record.body,
        MessageAttributes={
            "reason": {"DataType": "String", "StringValue": reason[:1000]},
            "source_message_id": {"DataType": "String", "StringValue": record.message_id},
        },
    )


def record_handler(record: SQSRecord) -> None:
    try:
        for bucket, key in s3_objects(record):
            logger.info("synced", extra=sync_object(bucket, key))
    except PoisonDocument as error:
        logger.warning("poison document sent to the dead-letter queue", extra={"reason": str(error)})
        dead_letter(record, str(error))


@logger.inject_lambda_context
def handler(event: dict, context) -> dict:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
