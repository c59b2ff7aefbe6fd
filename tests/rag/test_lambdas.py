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
        ({"question": "q", "filter": {"year": 12345678901234567890}}, "filter.year"),
        ('{"question": "q", "filter": {"year": 1e400}}', "filter.year"),
        ('{"question": "q", "filter": {"year": NaN}}', "NaN is not a JSON number"),
        ('{"question": "q", "k": ' + "9" * 5000 + "}", "not JSON this API reads"),
        ("[" * 5000 + "]" * 5000, "not JSON this API reads"),
        ({"question": "q", "filter": {"source": "s" * 2049}}, "filter.source"),
    ],
)
def test_bad_queries_get_400_with_a_message(query_env, body, message):
    status, reply = call(query_env, body)
    assert status == 400
    assert message in reply["message"]


def test_the_body_cap_is_the_largest_query_the_model_accepts_in_any_spelling(query_env):
    from genai_contracts.api_requests import MAX_QUESTION_CHARS, QueryRequest

    emoji = "\U0001f600"  # 4 bytes in UTF-8, 12 as json.dumps writes it (\ud83d\ude00)
    longest = {"question": emoji * MAX_QUESTION_CHARS, "filter": {"source": emoji * 2048}, "generate": False}
    for body in (json.dumps(longest), json.dumps(longest, ensure_ascii=False)):
        assert len(body.encode()) <= QueryRequest.MAX_BODY_BYTES
        status, reply = call(query_env, body)
        assert status == 200, reply
    status, reply = call(query_env, {"question": emoji * (MAX_QUESTION_CHARS + 1)})
    assert status == 400 and f"at most {MAX_QUESTION_CHARS} characters" in reply["message"]
    status, reply = call(query_env, " " * QueryRequest.MAX_BODY_BYTES + json.dumps({"question": "q"}))
    assert status == 413 and f"the largest QueryRequest is {QueryRequest.MAX_BODY_BYTES} bytes" in reply["message"]


class MappedIndex:
    """An OpenSearch-like index: a mapping with typed metadata, and a search that fails as told."""

    embedding_model = "local"
    index_name = "documents"

    def __init__(self, failure: Exception | None = None) -> None:
        self.failure = failure
        self.searched = 0
        index = self

        class Indices:
            def get_mapping(self, index):
                fields = {"source": {"type": "keyword"}, "year": {"type": "integer"}, "draft": {"type": "boolean"}}
                return {index: {"mappings": {"properties": {"metadata": {"properties": fields}}}}}

        self.client = SimpleNamespace(indices=Indices())
        self._index = index

    def metadata_fields(self) -> set[str]:
        return {"source", "year", "draft"}

    def search(self, question, vector, options):
        self.searched += 1
        if self.failure:
            raise self.failure
        return []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2021", "year is an integer field; give an integer from -2147483648 to 2147483647, not '2021'"),
        (True, "not True"),
        (2**40, "not 1099511627776"),
        (2.5, "not 2.5"),
    ],
)
def test_filter_values_the_index_mapping_cannot_hold_are_a_400_before_any_search(
    query_env, monkeypatch, value, message
):
    from genai_runtime.rag.chain import RagChain

    index, embeddings = MappedIndex(), query_env.chain().embeddings
    monkeypatch.setattr(query_env, "chain", lambda: RagChain(index, embeddings))
    status, reply = call(query_env, {"question": "q", "filter": {"year": value}})
    assert status == 400 and message in reply["message"] and index.searched == 0
    status, _ = call(query_env, {"question": "q", "filter": {"year": 2021, "draft": False, "source": "s3://b/k"}})
    assert status == 200 and index.searched == 1


def _opensearch_failures():
    from opensearchpy.exceptions import AuthorizationException, ConnectionTimeout, TransportError

    return [
        (ConnectionTimeout("TIMEOUT", "timed out", None), 503),
        (TransportError(429, "too_many_requests", {}), 503),
        (AuthorizationException(403, "security_exception", {}), 502),
        (TransportError(400, "search_phase_execution_exception", {}), 502),
    ]


@pytest.mark.parametrize(("failure", "status"), _opensearch_failures())
def test_index_failures_are_a_502_or_503_with_a_message(query_env, monkeypatch, failure, status):
    from genai_runtime.rag.chain import RagChain

    index, embeddings = MappedIndex(failure), query_env.chain().embeddings
    monkeypatch.setattr(query_env, "chain", lambda: RagChain(index, embeddings))
    response = query_env.handler(api_event({"question": "q"}), CONTEXT)
    assert response["statusCode"] == status
    assert "the index" in json.loads(response["body"])["message"]
    assert (retry_after(response) is not None) == (status == 503)


def retry_after(response: dict) -> str | None:
    """The Retry-After header of a REST API proxy response (Powertools writes multiValueHeaders)."""
    values = (response.get("multiValueHeaders") or {}).get("Retry-After") or []
    return values[0] if values else (response.get("headers") or {}).get("Retry-After")


def _client(service: str):
    import boto3

    return boto3.client(service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


@pytest.mark.parametrize(
    ("code", "http", "status"),
    [
        ("ModelError", 424, 502),
        ("ThrottlingException", 400, 503),
        ("ServiceUnavailable", 503, 503),
        ("ValidationError", 400, 502),
        ("ModelNotReadyException", 429, 503),
    ],
)
def test_embedding_and_model_endpoint_failures_are_a_502_or_503(query_env, monkeypatch, code, http, status):
    from botocore.stub import Stubber

    from genai_runtime.rag.chain import RagChain
    from genai_runtime.rag.embeddings import SageMakerEmbeddings
    from genai_runtime.rag.generate import BedrockGenerator, SageMakerGenerator
    from lambdas.rag_query import GuardedEmbeddings

    rag = query_env.chain()
    runtime = _client("sagemaker-runtime")
    bedrock = _client("bedrock-runtime")
    failing_embeddings = GuardedEmbeddings(SageMakerEmbeddings("embedder", client=runtime), "sagemaker:embedder")
    cases = [
        RagChain(rag.index, failing_embeddings),
        RagChain(rag.index, rag.embeddings, SageMakerGenerator("llm", client=runtime)),
        RagChain(rag.index, rag.embeddings, BedrockGenerator("anthropic.claude-3-haiku-20240307-v1:0", client=bedrock)),
    ]
    with Stubber(runtime) as sagemaker, Stubber(bedrock) as converse:
        for _ in range(2):
            sagemaker.add_client_error("invoke_endpoint", service_error_code=code, http_status_code=http)
        converse.add_client_error("converse", service_error_code=code, http_status_code=http)
        for case in cases:
            monkeypatch.setattr(query_env, "chain", lambda case=case: case)
            response = query_env.handler(api_event({"question": "What is LoRA?"}), CONTEXT)
            assert response["statusCode"] == status, response
            assert code in json.loads(response["body"])["message"]
            if status == 503:
                assert int(retry_after(response)) >= 1


def test_events_that_are_not_api_gateway_requests_get_a_400_and_other_routes_a_404(query_env):
    for event in (None, [], "x", {}, {"httpMethod": "POST", "path": 3}, {**api_event({"question": "q"}), "headers": 7}):
        response = query_env.handler(event, CONTEXT)
        assert response["statusCode"] == 400 and json.loads(response["body"])["message"]
    response = query_env.handler({**api_event({"question": "q"}), "httpMethod": "GET"}, CONTEXT)
    assert response["statusCode"] == 404 and "POST /query" in json.loads(response["body"])["message"]
    response = query_env.handler({**api_event("e30="), "isBase64Encoded": True}, CONTEXT)  # {} in base64
    assert response["statusCode"] == 400 and "question: Field required" in json.loads(response["body"])["message"]


def full_rest_event(body: dict) -> dict:
    """A REST API proxy event with every field API Gateway sends (Powertools' ``APIGatewayProxyEventModel``)."""
    event = api_event(body)
    event["requestContext"] = {
        **event["requestContext"],
        "accountId": "123456789012",
        "apiId": "abc123",
        "protocol": "HTTP/1.1",
        "requestTime": "01/Dec/2026:10:00:00 +0000",
        "requestTimeEpoch": 1796119200000,
        "resourceId": "r1",
        "identity": {"sourceIp": "10.0.0.1", "userAgent": "test"},
    }
    return event


def test_the_proxy_check_is_a_subset_of_powertools_model_of_the_event(query_env):
    from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventModel

    from lambdas._requests import ProxyEvent, proxy_event_problem

    assert set(ProxyEvent.model_fields) <= set(APIGatewayProxyEventModel.model_fields)
    event = full_rest_event({"question": "What is LoRA?", "generate": False})
    APIGatewayProxyEventModel.model_validate(event)
    assert proxy_event_problem(event) is None
    assert query_env.handler(event, CONTEXT)["statusCode"] == 200


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("INDEX_URL", "", "INDEX_URL is not set"),
        ("EMBEDDINGS", "word2vec", "not word2vec"),
        ("GENERATOR", "ftp://model", "generate='ftp://model' is invalid"),
    ],
)
def test_a_misconfigured_function_is_a_500_with_a_message(query_env, monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    status, reply = call(query_env, {"question": "What is LoRA?"})
    assert status == 500 and "misconfigured" in reply["message"] and message in reply["message"]
