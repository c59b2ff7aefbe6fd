"""The ingestion and query Lambdas on moto (S3, SQS), with a FAISS index and real embeddings."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.lambda_events import CONTEXT, api_gateway_post

from .conftest import CORPUS


@pytest.fixture
def aws(monkeypatch, tmp_path):
    from moto import mock_aws

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        import boto3

        boto3.client("s3").create_bucket(Bucket="docs")
        dlq = boto3.client("sqs").create_queue(QueueName="ingest-dlq")["QueueUrl"]
        monkeypatch.setenv("INDEX_URL", str(tmp_path / "index"))
        monkeypatch.setenv("EMBEDDINGS", "local")
        monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", dlq)
        from lambdas import rag_ingest

        for cached in (rag_ingest.s3, rag_ingest.sqs, rag_ingest.vector_index):
            cached.cache_clear()
        yield SimpleNamespace(s3=boto3.client("s3"), sqs=boto3.client("sqs"), dlq=dlq, index=tmp_path / "index")


def notification(key: str, event: str = "ObjectCreated:Put") -> dict:
    return {"Records": [{"eventName": event, "s3": {"bucket": {"name": "docs"}, "object": {"key": key}}}]}


def sqs_event(*bodies) -> dict:
    return {
        "Records": [
            {
                "messageId": f"m{n}",
                "receiptHandle": f"r{n}",
                "body": body if isinstance(body, str) else json.dumps(body),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "x",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ingest",
                "awsRegion": "us-east-1",
            }
            for n, body in enumerate(bodies)
        ]
    }


def held(aws) -> dict[str, int]:
    from genai_runtime.rag.faiss_index import FaissIndex

    index = FaissIndex.open(aws.index, "local")
    return {source: len(index.chunk_hashes(source)) for source in index.sources()}


def test_a_batch_with_poison_documents_indexes_the_rest_and_dead_letters_the_poison(aws):
    from lambdas.rag_ingest import handler

    aws.s3.put_object(
        Bucket="docs", Key="guides/lora notes.md", Body=(CORPUS / "lora.md").read_bytes(), Metadata={"year": "2021"}
    )
    aws.s3.put_object(Bucket="docs", Key="inferentia.html", Body=(CORPUS / "inferentia.html").read_bytes())
    aws.s3.put_object(Bucket="docs", Key="sheet.xlsx", Body=b"not a document")
    aws.s3.put_object(Bucket="docs", Key="broken.pdf", Body=b"%PDF-1.4 broken")
    event = sqs_event(
        notification("guides/lora+notes.md"),
        notification("inferentia.html"),
        notification("sheet.xlsx"),
        notification("broken.pdf"),
        "not json",
        {"Event": "s3:TestEvent"},
    )
    assert handler(event, CONTEXT) == {"batchItemFailures": []}

    chunks = held(aws)
    assert set(chunks) == {"s3://docs/guides/lora notes.md", "s3://docs/inferentia.html"}
    dead = aws.sqs.receive_message(QueueUrl=aws.dlq, MaxNumberOfMessages=10, MessageAttributeNames=["All"])["Messages"]
    reasons = sorted(m["MessageAttributes"]["reason"]["StringValue"] for m in dead)
    assert len(reasons) == 3
    assert reasons[0] == "message m4 is not an S3 notification (not JSON)"
    assert reasons[1].startswith("s3://docs/broken.pdf: cannot read .pdf file")
    assert reasons[2].startswith("s3://docs/sheet.xlsx: unsupported file type .xlsx")

    from genai_runtime.rag.faiss_index import FaissIndex

    index = FaissIndex.open(aws.index, "local")
    assert {d.metadata.get("year") for d in index._documents().values() if "lora" in d.metadata["source"]} == {2021}

    # A retry of the whole batch (or a re-upload) duplicates nothing.
    assert handler(event, CONTEXT) == {"batchItemFailures": []}
    assert held(aws) == chunks


def test_a_deleted_object_loses_its_chunks_whatever_the_event_order(aws):
    from lambdas.rag_ingest import handler

    aws.s3.put_object(Bucket="docs", Key="dpo.md", Body=(CORPUS / "dpo.md").read_bytes())
    handler(sqs_event(notification("dpo.md")), CONTEXT)
    assert held(aws)["s3://docs/dpo.md"] >= 1
    aws.s3.delete_object(Bucket="docs", Key="dpo.md")
    # The late "created" event arrives after the delete: the object's state, not the verb, decides.
    handler(sqs_event(notification("dpo.md", "ObjectRemoved:Delete"), notification("dpo.md")), CONTEXT)
    assert held(aws) == {}


def test_a_transient_failure_fails_only_its_record_for_sqs_to_retry(aws, monkeypatch):
    from lambdas import rag_ingest

    aws.s3.put_object(Bucket="docs", Key="a.md", Body=b"# A\nAlpha document.")
    aws.s3.put_object(Bucket="docs", Key="b.md", Body=b"# B\nBravo document.")
    real = rag_ingest.sync_source

    def flaky(index, embeddings, source, chunks, **options):
        if source.endswith("b.md"):
            raise ConnectionError("embedding endpoint timed out")
        return real(index, embeddings, source, chunks, **options)

    monkeypatch.setattr(rag_ingest, "sync_source", flaky)
    response = rag_ingest.handler(sqs_event(notification("a.md"), notification("b.md")), CONTEXT)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert set(held(aws)) == {"s3://docs/a.md"}
    assert "Messages" not in aws.sqs.receive_message(QueueUrl=aws.dlq)  # retried by SQS, not dead-lettered


# ---- query


@pytest.fixture
def query_env(monkeypatch, corpus_index):
    from lambdas import rag_query

    monkeypatch.setenv("INDEX_URL", str(corpus_index.path))
    monkeypatch.setenv("EMBEDDINGS", "local")
    monkeypatch.delenv("GENERATOR", raising=False)
    cached = rag_query.chain
    cached.cache_clear()
    yield rag_query
    cached.cache_clear()


def api_event(body) -> dict:
    return api_gateway_post("/query", body)


def call(module, body) -> tuple[int, dict]:
    response = module.handler(api_event(body), CONTEXT)
    return response["statusCode"], json.loads(response["body"])


def test_query_returns_sources_with_scores_and_honours_filters(query_env):
    status, body = call(
        query_env,
        {
            "question": "Are shadow variant responses returned to callers?",
            "k": 2,
            "search_type": "mmr",
            "lambda_mult": 0.3,
            "filter": {"year": 2021},
        },
    )
    assert status == 200
    assert body["answer"] is None
    assert Path(body["sources"][0]["source"]).name == "variants.txt"
    assert all(s["metadata"]["year"] == 2021 and isinstance(s["score"], float) for s in body["sources"])


def test_query_generates_through_the_configured_model(query_env, monkeypatch):
    from genai_runtime.rag.chain import RagChain

    prompts = []
    rag = query_env.chain()
    monkeypatch.setattr(
        query_env, "chain", lambda: RagChain(rag.index, rag.embeddings, lambda p: prompts.append(p) or "Thirty-two.")
    )
    status, body = call(query_env, {"question": "How many NeuronCores does a trn1.32xlarge have?"})
    assert status == 200 and body["answer"] == "Thirty-two."
    assert "32 NeuronCores" in prompts[0]
    status, body = call(query_env, {"question": "How many NeuronCores does a trn1.32xlarge have?", "generate": False})
    assert body["answer"] is None and len(prompts) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (None, "has no body"),
        ("{not json", "not JSON"),
        ([1, 2], "must be a JSON object"),
        ({}, "question: Field required"),
        ({"question": "   "}, "question: String should match pattern"),
        ({"question": "x" * 5000}, "question: String should have at most 4000 characters"),
        ({"question": "q", "k": "three"}, "k: Input should be a valid integer"),
        ({"question": "q", "k": 500}, "k: Input should be less than or equal to 50"),
        ({"question": "q", "filter": {"colour": "red"}}, "unknown metadata field(s) colour"),
        ({"question": "q", "filter": {"year": {"$gt": 2020}}}, "filter.year"),
        ({"question": "q", "search_type": "keyword"}, "search_type: Input should be"),
        ({"question": "q", "temperature": 2}, "temperature: Extra inputs are not permitted"),
        ("x" * 20000, "over 16384 bytes"),
    ],
)
def test_bad_queries_get_400_with_a_message(query_env, body, message):
    status, reply = call(query_env, body)
    assert status == 400
    assert message in reply["message"]
