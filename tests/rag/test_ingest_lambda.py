"""The ingestion Lambda end to end: moto S3 (a versioned bucket) and SQS, the OpenSearch fake of each service.

Deliveries come in any order, twice, in batches, with the process killed after any bulk request and
the record redelivered; the index must end as a clean in-order run leaves it. Embeddings are
langchain-core's ``DeterministicFakeEmbedding`` (the same text, the same vector).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from unittest import mock
from urllib.parse import quote_plus

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.embeddings import DeterministicFakeEmbedding

from genai_runtime.rag.opensearch import OpenSearchIndex, index_body
from tests.lambda_events import CONTEXT

from .opensearch_fake import FakeOpenSearch, normalized

HOSTS = {True: "abc123.us-east-1.aoss.amazonaws.com", False: "search-vectors.us-east-1.es.amazonaws.com"}
DIMENSION = 8
SEQUENCER_STEP = 0x5F  # 5F, BE, 11D, ...: lengths differ, so only left-padded comparison orders them


class CountingEmbeddings(DeterministicFakeEmbedding):
    """Counts the texts it embeds; a text containing ``SLOW`` advances ``clock`` by ``slow_ms``."""

    embedded: int = 0
    clock: list = [0]
    slow_ms: int = 0
    failure: object = None

    def embed_documents(self, texts):
        if isinstance(self.failure, Exception):
            raise self.failure
        self.embedded += len(texts)
        for text in texts:
            if "SLOW" in text:
                self.clock[0] += self.slow_ms
        return super().embed_documents(texts)


@dataclass
class World:
    """One deployment: a versioned bucket, the ingestion queue and its DLQ, an OpenSearch service."""

    serverless: bool
    chunk_size: int = 60
    fake: FakeOpenSearch = field(init=False)
    events: list[dict] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def __enter__(self) -> World:
        from moto import mock_aws

        from lambdas import rag_ingest

        stack = self._stack
        stack.enter_context(
            mock.patch.dict(
                os.environ,
                {
                    "AWS_DEFAULT_REGION": "us-east-1",
                    "AWS_ACCESS_KEY_ID": "testing",
                    "AWS_SECRET_ACCESS_KEY": "testing",
                    "INDEX_URL": f"https://{HOSTS[self.serverless]}/documents",
                    "EMBEDDINGS": "local",
                    "CHUNK_SIZE": str(self.chunk_size),
                    "CHUNK_OVERLAP": "0",
                },
            )
        )
        stack.enter_context(mock_aws())
        import boto3

        self.s3 = boto3.client("s3")
        self.sqs = boto3.client("sqs")
        self.s3.create_bucket(Bucket="docs")
        self.s3.put_bucket_versioning(Bucket="docs", VersioningConfiguration={"Status": "Enabled"})
        self.dlq = self.sqs.create_queue(QueueName="ingest-dlq")["QueueUrl"]
        self.queue = self.sqs.create_queue(QueueName="ingest")["QueueUrl"]
        os.environ["DEAD_LETTER_QUEUE_URL"] = self.dlq
        os.environ["INGEST_QUEUE_URL"] = self.queue
        self.fake = FakeOpenSearch(serverless=self.serverless)
        self.fake.create_index("documents", index_body(DIMENSION, metadata_fields={"year": "integer"}))
        self.index = OpenSearchIndex.from_url(
            os.environ["INDEX_URL"], "local", http_auth=("u", "p"), connection_class=self.fake.connection_class()
        )
        self.embeddings = CountingEmbeddings(size=DIMENSION)
        self.embeddings.clock = [0]
        for cached in (rag_ingest.s3, rag_ingest.sqs, rag_ingest.vector_index, rag_ingest.embeddings):
            cached.cache_clear()
        stack.enter_context(mock.patch.object(rag_ingest, "vector_index", lambda: self.index))
        stack.enter_context(mock.patch.object(rag_ingest, "embeddings", lambda: self.embeddings))
        stack.enter_context(mock.patch.object(rag_ingest, "RECONCILE_DELAY_S", 0))
        stack.callback(rag_ingest.s3.cache_clear)
        stack.callback(rag_ingest.sqs.cache_clear)
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    # ---- S3, and the notifications S3 would send
    def _sequencer(self) -> str:
        return format(SEQUENCER_STEP * (len(self.events) + 1), "X")

    def put(self, key: str, body: str, metadata: dict | None = None) -> dict:
        response = self.s3.put_object(Bucket="docs", Key=key, Body=body.encode(), Metadata=metadata or {})
        self.versions.append(response["VersionId"])
        return self._event("ObjectCreated:Put", key, response["VersionId"], len(body))

    def delete(self, key: str) -> dict:
        response = self.s3.delete_object(Bucket="docs", Key=key)
        marker = response.get("VersionId") or f"marker-{len(self.events)}"  # moto makes none for a missing key; S3 does
        return self._event("ObjectRemoved:DeleteMarkerCreated", key, marker, 0)

    def _event(self, name: str, key: str, version_id: str, size: int) -> dict:
        record = {
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "eventName": name,
            "s3": {
                "bucket": {"name": "docs"},
                "object": {
                    "key": quote_plus(key),
                    "size": size,
                    "versionId": version_id,
                    "sequencer": self._sequencer(),
                },
            },
        }
        event = {"Records": [record]}
        self.events.append(event)
        return event

    # ---- the Lambda
    def deliver(self, bodies: list, context=CONTEXT, attributes: list[dict] | None = None) -> list[str]:
        """One invocation with these message bodies; returns the bodies SQS must redeliver."""
        from lambdas.rag_ingest import handler

        records = [
            {
                "messageId": f"m{n}",
                "receiptHandle": f"r{n}",
                "body": body if isinstance(body, str) else json.dumps(body),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": (attributes or [{}] * len(bodies))[n],
                "md5OfBody": "x",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ingest",
                "awsRegion": "us-east-1",
            }
            for n, body in enumerate(bodies)
        ]
        from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

        try:
            response = handler({"Records": records}, context)
        except BatchProcessingError:  # every record failed: the invocation fails, SQS redelivers them all
            return [record["body"] for record in records]
        failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
        return [records[int(m[1:])]["body"] for m in sorted(failed, key=lambda m: int(m[1:]))]

    def settle(self) -> int:
        """Time passes: the index refreshes, and the delayed reconcile messages are delivered (until none)."""
        delivered = 0
        for _ in range(20):
            self.fake.refresh()
            messages = self.sqs.receive_message(
                QueueUrl=self.queue, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
            ).get("Messages", [])
            if not messages:
                return delivered
            for message in messages:
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])
            attributes = [
                {
                    k: {"stringValue": v["StringValue"], "dataType": v["DataType"]}
                    for k, v in m.get("MessageAttributes", {}).items()
                }
                for m in messages
            ]
            left = self.deliver([m["Body"] for m in messages], attributes=attributes)
            assert not left, left
            delivered += len(messages)
        raise AssertionError("reconciling never ended")

    def dead_letters(self) -> list[dict]:
        messages = self.sqs.receive_message(QueueUrl=self.dlq, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
        return messages.get("Messages", [])

    # ---- what the index holds
    def documents(self) -> list[str]:
        """The index's documents, comparable across worlds (version ids by upload order, no row keys)."""
        names = {version: f"v{n}" for n, version in enumerate(self.versions)}
        docs = self.fake.documents("documents")
        for doc in docs:
            metadata = doc.get("metadata", {})
            if "version_id" in metadata:
                metadata["version_id"] = names.get(metadata["version_id"], metadata["version_id"])
        return normalized(docs)

    def texts(self, key: str) -> list[str]:
        source = f"s3://docs/{key}"
        return sorted(
            d["text"]
            for d in self.fake.documents("documents")
            if d.get("metadata", {}).get("source") == source and "text" in d
        )


CONTENT = {
    "put0": "First version.\n\nIt has two paragraphs about LoRA adapters.",
    "put1": "Second version.\n\nLoRA adapters, rewritten.\n\nAnd a third paragraph on QLoRA.",
    "put2": "First version.\n\nIt has two paragraphs about LoRA adapters.",  # put0's text, a new version
}


def apply(world: World, ops) -> None:
    for key, op in ops:
        if op == "delete":
            world.delete(key)
        else:
            world.put(key, CONTENT[op])


# ---- any order, duplicates, crashes: the index a clean run leaves


def clean_run(serverless: bool, ops) -> list[str]:
    with World(serverless) as world:
        apply(world, ops)
        for event in world.events:
            assert not world.deliver([event])
        world.settle()
        return world.documents()


@st.composite
def deliveries(draw, count: int):
    """Every event at least once, some twice, in any order, in batches of 1-3, each batch maybe killed."""
    order = draw(st.permutations(range(count)))
    extra = draw(st.lists(st.integers(0, count - 1), max_size=count))
    for position, event in zip(
        draw(st.lists(st.integers(0, 2 * count), min_size=len(extra), max_size=len(extra))), extra, strict=True
    ):
        order = [*order[:position], event, *order[position:]]
    batches, rest = [], list(order)
    while rest:
        size = draw(st.integers(1, 3))
        fault = draw(st.one_of(st.none(), st.tuples(st.sampled_from(["crash", "lost_ack"]), st.integers(1, 6))))
        batches.append((rest[:size], fault))
        rest = rest[size:]
    return batches


OPS = st.lists(
    st.tuples(st.sampled_from(["a.md", "b notes.md"]), st.sampled_from(["put0", "put1", "put2", "delete"])),
    min_size=1,
    max_size=5,
)


@pytest.mark.parametrize("serverless", [True, False], ids=["serverless", "managed"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(ops=OPS, data=st.data())
def test_any_order_duplicates_and_kills_leave_the_index_a_clean_run_leaves(serverless, ops, data):
    expected = clean_run(serverless, ops)
    with World(serverless) as world:
        apply(world, ops)
        batches = data.draw(deliveries(len(world.events)))
        redeliver: list = []
        for indices, fault in batches:
            bodies = redeliver + [world.events[i] for i in indices]
            if fault is not None:
                kind, offset = fault
                target = world.fake.crash_after_bulk if kind == "crash" else world.fake.lose_ack_after_bulk
                target.clear()
                target.add(world.fake.bulks + offset)
            redeliver = world.deliver(bodies)
            world.fake.crash_after_bulk.clear()
            world.fake.lose_ack_after_bulk.clear()
            world.fake.refresh()  # SQS redelivers after the visibility timeout, well past a refresh
        for _ in range(5):
            if not redeliver:
                break
            redeliver = world.deliver(redeliver)
            world.fake.refresh()
        assert not redeliver
        world.settle()
        assert not world.dead_letters()
        assert world.documents() == expected


# ---- the cases one at a time


@pytest.fixture(params=[True, False], ids=["serverless", "managed"])
def world(request):
    with World(request.param) as w:
        yield w


def test_an_upload_event_indexes_exactly_its_version_and_a_late_older_one_changes_nothing(world):
    first = world.put("a.md", CONTENT["put0"])
    second = world.put("a.md", CONTENT["put1"])
    assert not world.deliver([first])  # v1 is not current any more: what is indexed is still v1
    world.fake.refresh()
    assert "First version." in " ".join(world.texts("a.md"))
    assert not world.deliver([second])
    world.fake.refresh()
    newest = world.texts("a.md")
    assert not world.deliver([first])  # late, and older
    world.settle()
    assert world.texts("a.md") == newest and "Second version." in " ".join(newest)
    rows = [d["metadata"] for d in world.fake.documents("documents")]
    assert {m["version_id"] for m in rows if "text" in m or "chunk_id" in m} == {world.versions[1]}


def test_a_delete_leaves_a_tombstone_that_a_late_older_upload_cannot_pass(world):
    put = world.put("a.md", CONTENT["put0"])
    gone = world.delete("a.md")
    assert not world.deliver([gone])
    world.fake.refresh()
    assert not world.deliver([put])
    world.settle()
    (tombstone,) = world.fake.documents("documents")
    assert tombstone["metadata"]["state"] == "deleted" and "vector_field" not in tombstone
    assert world.index.sources() == set()


def test_a_document_of_more_than_ten_thousand_chunks_resyncs_without_embedding_and_goes_whole(monkeypatch):
    lines = "\n".join(f"line {n:05d} of a long manual" for n in range(10_500))
    with World(serverless=True, chunk_size=40) as world:
        first = world.put("manual.txt", lines)
        assert not world.deliver([first])
        world.settle()
        chunks = len(world.texts("manual.txt"))
        assert chunks > 10_000 and world.embeddings.embedded == chunks
        again = world.put("manual.txt", lines)  # a re-upload: a new version, the same text
        assert not world.deliver([again])
        world.settle()
        assert world.embeddings.embedded == chunks  # every vector reused
        assert len(world.texts("manual.txt")) == chunks  # and not one duplicate left
        gone = world.delete("manual.txt")
        assert not world.deliver([gone])
        world.settle()
        assert world.texts("manual.txt") == [] and world.index.sources() == set()


def test_serverless_syncs_are_reconciled_once_the_refresh_interval_has_passed(world):
    assert not world.deliver([world.put("a.md", CONTENT["put0"])])
    messages = world.sqs.receive_message(QueueUrl=world.queue, MessageAttributeNames=["All"]).get("Messages", [])
    if not world.serverless:
        assert not messages  # a managed domain's writes are visible at once (refresh)
        return
    (message,) = messages
    assert message["MessageAttributes"]["genai-reconcile"]["StringValue"] == "1"


# ---- the time budget


class Clock:
    """A Lambda context whose remaining time is ``budget_ms`` less what the fake clock has spent."""

    def __init__(self, world: World, budget_ms: int) -> None:
        self.world, self.budget_ms = world, budget_ms
        for name in ("function_name", "memory_limit_in_mb", "aws_request_id", "function_version"):
            setattr(self, name, getattr(CONTEXT, name))
        self.invoked_function_arn = CONTEXT.invoked_function_arn
        self.log_group_name, self.log_stream_name = CONTEXT.log_group_name, CONTEXT.log_stream_name

    def get_remaining_time_in_millis(self) -> int:
        return self.budget_ms - self.world.embeddings.clock[0]


SLOW = "\n\n".join(f"SLOW paragraph {n} of a document that takes long to embed." for n in range(12))


def test_a_slow_document_fails_alone_for_sqs_to_retry_and_its_batch_mates_are_not_lost(world, monkeypatch):
    from lambdas import rag_ingest

    monkeypatch.setattr(rag_ingest, "EMBED_BATCH", 2)
    world.embeddings.slow_ms = 60_000
    good, slow, late = (
        world.put("good.md", CONTENT["put0"]),
        world.put("slow.md", SLOW),
        world.put("late.md", CONTENT["put1"]),
    )
    left = world.deliver([good, slow, late], context=Clock(world, 300_000))
    assert left == [json.dumps(slow), json.dumps(late)]  # the slow one ran out; the next was not started
    assert not world.dead_letters()
    world.fake.refresh()
    assert world.texts("good.md") and not world.texts("late.md")
    written = len(world.texts("slow.md"))
    assert written > 0  # what it wrote is kept, and the next delivery goes on from there
    world.embeddings.clock[0] = 0
    world.embeddings.slow_ms = 0
    spent = world.embeddings.embedded
    assert not world.deliver([slow, late], context=Clock(world, 300_000))
    world.settle()
    slow_chunks = len(
        [
            d
            for d in world.fake.documents("documents")
            if d.get("metadata", {}).get("source", "").endswith("slow.md") and "text" in d
        ]
    )
    assert world.embeddings.embedded - spent < slow_chunks + len(world.texts("late.md"))


def test_a_document_that_alone_needs_more_than_the_whole_budget_is_dead_lettered_with_the_reason(world, monkeypatch):
    from lambdas import rag_ingest

    monkeypatch.setattr(rag_ingest, "EMBED_BATCH", 2)
    world.embeddings.slow_ms = 100_000
    slow = world.put("slow.md", SLOW)
    assert not world.deliver([slow], context=Clock(world, 300_000))
    (dead,) = world.dead_letters()
    reason = dead["MessageAttributes"]["reason"]["StringValue"]
    assert "needs more time than the function has" in reason and "ms of the invocation left" in reason


# ---- what is poison, what is transient


def test_document_errors_are_poison_and_throttling_is_transient(world, monkeypatch):
    from botocore.exceptions import ClientError

    from lambdas import rag_ingest

    real = rag_ingest.coerce_metadata

    def strict(raw, origin):
        if raw.get("year") == "--5":
            raise ValueError("invalid literal for int() with base 10: '--5'")
        return real(raw, origin)

    monkeypatch.setattr(rag_ingest, "coerce_metadata", strict)
    dashes = world.put("dashes.md", CONTENT["put0"], metadata={"year": "--5"})
    mapped = world.put("mapped.md", CONTENT["put0"], metadata={"year": "abc"})  # the index maps year as integer
    assert not world.deliver([dashes, mapped])
    reasons = sorted(m["MessageAttributes"]["reason"]["StringValue"] for m in world.dead_letters())
    assert len(reasons) == 2
    assert reasons[0].startswith("s3://docs/dashes.md: ValueError: invalid literal for int()")
    assert reasons[1].startswith("s3://docs/mapped.md") and "mapper_parsing_exception" in reasons[1]

    throttled = ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "InvokeModel")

    world.embeddings.failure = throttled
    flaky = world.put("flaky.md", CONTENT["put1"])
    assert world.deliver([flaky]) == [json.dumps(flaky)]  # SQS retries it
    assert not world.dead_letters()


BAD = {
    "bad JSON": lambda world: "not json",
    "not an S3 notification": lambda world: {"Records": [{"eventName": "x"}]},
    "bad metadata": lambda world: world.put("bad meta.md", CONTENT["put0"], metadata={"1st": "x"}),
    "unsupported type": lambda world: world.put("sheet.xlsx", "cells"),
}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    good=st.integers(1, 4),
    bad=st.sampled_from(sorted(BAD)),
    position=st.integers(0, 4),
    serverless=st.booleans(),
)
def test_one_malformed_record_is_reported_alone_and_the_good_ones_are_indexed(good, bad, position, serverless):
    with World(serverless) as world:
        bodies = [world.put(f"doc {n}.md", f"Document {n}.\n\nAbout adapters, number {n}.") for n in range(good)]
        position = min(position, good)
        bodies.insert(position, BAD[bad](world))
        assert not world.deliver(bodies)
        (dead,) = world.dead_letters()
        assert dead["MessageAttributes"]["source_message_id"]["StringValue"] == f"m{position}"
        assert dead["MessageAttributes"]["reason"]["StringValue"]
        world.settle()
        assert world.index.sources() == {f"s3://docs/doc {n}.md" for n in range(good)}
        for n in range(good):
            assert world.texts(f"doc {n}.md")


# ---- truly concurrent deliveries, interleaved request by request


class Interleaving:
    """Lets threads reach OpenSearch one request at a time, in the order ``schedule`` names them."""

    def __init__(self, schedule: list[int], threads: int) -> None:
        import threading

        self.schedule, self.position = schedule, 0
        self.alive = set(range(threads))
        self.turn = threading.Condition()
        self.local = threading.local()

    def gate(self) -> None:
        me = self.local.number
        with self.turn:
            while self.position < len(self.schedule) and len(self.alive) > 1:
                chosen = self.schedule[self.position]
                if chosen not in self.alive:
                    self.position += 1
                    continue
                if chosen == me:
                    self.position += 1
                    break
                self.turn.wait(timeout=0.05)
            self.turn.notify_all()

    def done(self) -> None:
        with self.turn:
            self.alive.discard(self.local.number)
            self.turn.notify_all()


@pytest.mark.parametrize("serverless", [True, False], ids=["serverless", "managed"])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(st.sampled_from(["put0", "put1", "put2", "delete"]), min_size=2, max_size=3),
    schedule=st.lists(st.integers(0, 2), min_size=10, max_size=60),
)
def test_concurrent_deliveries_for_one_key_converge_whatever_the_interleaving(serverless, ops, schedule):
    import threading

    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    from lambdas import rag_ingest

    keyed = [("a.md", op) for op in ops]
    expected = clean_run(serverless, keyed)
    with World(serverless) as world:
        apply(world, keyed)
        interleaving = Interleaving(schedule, len(world.events))
        lock = threading.Lock()
        handle = world.fake.handle

        def gated(*args):
            interleaving.gate()
            with lock:
                return handle(*args)

        indexes: dict[int, OpenSearchIndex] = {}
        for n in range(len(world.events)):  # one index (one client) per concurrent invocation
            indexes[n] = OpenSearchIndex.from_url(
                os.environ["INDEX_URL"], "local", http_auth=("u", "p"), connection_class=world.fake.connection_class()
            )
        failures: list[BaseException] = []

        def invocation(number: int, body: dict) -> None:
            interleaving.local.number = number
            try:
                event = {"Records": [{**_sqs_record(number, body)}]}
                response = process_partial_response(
                    event=event,
                    record_handler=rag_ingest.record_handler,
                    processor=BatchProcessor(event_type=EventType.SQS),
                    context=CONTEXT,
                )
                assert response == {"batchItemFailures": []}
            except BaseException as error:  # noqa: BLE001 - reported below
                failures.append(error)
            finally:
                interleaving.done()

        with (
            mock.patch.object(world.fake, "handle", gated),
            mock.patch.object(rag_ingest, "vector_index", lambda: indexes[interleaving.local.number]),
        ):
            threads = [threading.Thread(target=invocation, args=(n, body)) for n, body in enumerate(world.events)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
        assert not failures, failures
        world.settle()
        assert world.documents() == expected


def _sqs_record(number: int, body) -> dict:
    return {
        "messageId": f"m{number}",
        "receiptHandle": f"r{number}",
        "body": json.dumps(body),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "x",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ingest",
        "awsRegion": "us-east-1",
    }
