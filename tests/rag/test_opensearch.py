"""The OpenSearch adapter at the HTTP level: the exact mapping, bulk bodies and query DSL it sends."""

from __future__ import annotations

import json

import pytest
from opensearchpy import Connection

from genai_runtime.errors import UsageError
from genai_runtime.rag.chunking import Chunk
from genai_runtime.rag.opensearch import HYBRID_PIPELINE, OpenSearchIndex, hybrid_pipeline_body, index_body
from genai_runtime.rag.search import SearchOptions

HIT = {
    "_id": "c1",
    "_score": 0.9,
    "_source": {
        "text": "chunk one",
        "metadata": {"source": "s3://b/a.md", "year": 2022, "content_hash": "h1"},
        "vector_field": [1.0, 0.0],
    },
}
HIT2 = {
    "_id": "c2",
    "_score": 0.8,
    "_source": {
        "text": "chunk two",
        "metadata": {"source": "s3://b/a.md", "year": 2022, "content_hash": "h2"},
        "vector_field": [0.9, 0.1],
    },
}


class Recorder(Connection):
    """An opensearch-py connection that records each request and answers like a k-NN domain."""

    sent: list[tuple[str, str, dict, object]] = []
    index_exists = False

    def perform_request(self, method, url, params=None, body=None, timeout=None, ignore=(), headers=None):
        if isinstance(body, bytes):
            body = body.decode()
        if isinstance(body, str) and "\n" in body.strip():
            body = [json.loads(line) for line in body.strip().splitlines()]
        elif isinstance(body, str):
            body = json.loads(body)
        Recorder.sent.append((method, url, dict(params or {}), body))
        path = url.split("?")[0]
        if method == "HEAD":
            status, reply = (200 if Recorder.index_exists else 404), {}
        elif path == "/docs" and method == "GET":
            status, reply = (200, {"docs": {}}) if Recorder.index_exists else (404, {"error": "no index"})
        elif path == "/docs" and method == "PUT":
            Recorder.index_exists = True
            status, reply = 200, {"acknowledged": True}
        elif path == "/_bulk":
            items = [
                {next(iter(line)): {"_id": line[next(iter(line))]["_id"], "status": 200}}
                for line in body
                if "_id" in next(iter(line.values()))
            ]
            status, reply = 200, {"errors": False, "items": items}
        elif path.endswith("/_search"):
            status, reply = (
                200,
                {
                    "hits": {"hits": [HIT, HIT2]},
                    "aggregations": {"sources": {"buckets": [{"key": "s3://b/a.md", "doc_count": 2}]}},
                },
            )
        elif path.endswith("/_mapping"):
            status, reply = 200, {"docs": index_body(2, metadata_fields={"year": "integer"})}
        else:
            status, reply = 200, {}
        if status >= 300 and status not in ignore and not (method == "HEAD"):
            self._raise_error(status, json.dumps(reply))
        return status, {}, json.dumps(reply)


@pytest.fixture
def index():
    Recorder.sent = []
    Recorder.index_exists = False
    return OpenSearchIndex.from_url(
        "https://search-vectors.us-east-1.es.amazonaws.com/docs",
        "local",
        http_auth=("user", "pass"),
        connection_class=Recorder,
        metadata_fields={"year": "integer"},
    )


def requests(method=None, suffix=None):
    return [
        r
        for r in Recorder.sent
        if (method is None or r[0] == method) and (suffix is None or r[1].split("?")[0].endswith(suffix))
    ]


def test_first_upsert_creates_the_knn_index_then_bulk_indexes_with_chunk_ids(index):
    chunks = [
        Chunk("c1", "chunk one", {"source": "s3://b/a.md", "chunk": 0, "content_hash": "h1", "year": 2022}),
        Chunk("c2", "chunk two", {"source": "s3://b/a.md", "chunk": 1, "content_hash": "h2", "year": 2022}),
    ]
    index.upsert(chunks, [[1.0, 0.0], [0.0, 1.0]])
    (create,) = requests("PUT", "/docs")
    mapping = create[3]
    assert mapping["settings"]["index"]["knn"] is True
    assert mapping["mappings"]["properties"]["vector_field"] == {
        "type": "knn_vector",
        "dimension": 2,
        "method": {
            "name": "hnsw",
            "engine": "faiss",
            "space_type": "innerproduct",
            "parameters": {"m": 16, "ef_construction": 512},
        },
    }
    assert mapping["mappings"]["properties"]["text"] == {"type": "text"}
    metadata = mapping["mappings"]["properties"]["metadata"]["properties"]
    assert metadata["source"] == {"type": "keyword"} and metadata["year"] == {"type": "integer"}
    (bulk,) = requests("POST", "/_bulk")
    assert bulk[3] == [
        {"index": {"_index": "docs", "_id": "c1"}},
        {"vector_field": [1.0, 0.0], "text": "chunk one", "metadata": chunks[0].metadata},
        {"index": {"_index": "docs", "_id": "c2"}},
        {"vector_field": [0.0, 1.0], "text": "chunk two", "metadata": chunks[1].metadata},
    ]
    index.upsert(chunks[:1], [[1.0, 0.0]])
    assert len(requests("PUT", "/docs")) == 1  # created once


def test_delete_sends_bulk_deletes_by_id(index):
    index.delete(["c1", "c2"])
    (bulk,) = requests("POST", "/_bulk")
    assert bulk[3] == [{"delete": {"_index": "docs", "_id": "c1"}}, {"delete": {"_index": "docs", "_id": "c2"}}]
    assert bulk[2].get("refresh") in (b"true", "true")


def test_similarity_query_is_knn_with_an_efficient_filter(index):
    found = index.search("q", [0.6, 0.8], SearchOptions(k=2, search_type="similarity", filter={"year": 2022}))
    (search,) = requests("POST", "/_search")
    assert search[3] == {
        "size": 2,
        "_source": {"excludes": ["vector_field"]},
        "query": {
            "knn": {
                "vector_field": {
                    "vector": [0.6, 0.8],
                    "k": 2,
                    "filter": {"bool": {"filter": [{"term": {"metadata.year": 2022}}]}},
                }
            }
        },
    }
    assert [(f.id, f.score, f.source) for f in found] == [("c1", 0.9, "s3://b/a.md"), ("c2", 0.8, "s3://b/a.md")]


def test_mmr_fetches_fetch_k_with_vectors_and_reranks_locally(index):
    found = index.search("q", [1.0, 0.0], SearchOptions(k=1, fetch_k=10, search_type="mmr"))
    (search,) = requests("POST", "/_search")
    assert search[3] == {"size": 10, "query": {"knn": {"vector_field": {"vector": [1.0, 0.0], "k": 10}}}}
    assert [f.id for f in found] == ["c1"]


def test_hybrid_query_runs_through_the_rrf_search_pipeline(index):
    index.search("spot training", [1.0, 0.0], SearchOptions(k=3, fetch_k=20, filter={"year": 2022}))
    (search,) = requests("POST", "/_search")
    assert search[2] == {"search_pipeline": HYBRID_PIPELINE}
    year = {"term": {"metadata.year": 2022}}
    assert search[3]["query"] == {
        "hybrid": {
            "queries": [
                {"bool": {"must": [{"match": {"text": {"query": "spot training"}}}], "filter": [year]}},
                {"knn": {"vector_field": {"vector": [1.0, 0.0], "k": 20, "filter": {"bool": {"filter": [year]}}}}},
            ]
        }
    }
    assert hybrid_pipeline_body()["phase_results_processors"][0]["score-ranker-processor"]["combination"] == {
        "technique": "rrf",
        "rank_constant": 60,
    }


def test_what_ingestion_reads_hashes_sources_and_fields(index):
    assert index.chunk_hashes("s3://b/a.md") == {"c1": "h1", "c2": "h2"}
    (search,) = requests("POST", "/_search")
    assert search[3] == {
        "size": 10000,
        "_source": ["metadata.content_hash"],
        "query": {"term": {"metadata.source": "s3://b/a.md"}},
    }
    assert index.sources() == {"s3://b/a.md"}
    assert "year" in index.metadata_fields() and "content_hash" not in index.metadata_fields()


def test_serverless_refuses_hybrid_and_bad_urls_are_refused():
    serverless = OpenSearchIndex.from_url(
        "https://abc.us-east-1.aoss.amazonaws.com/docs", "local", http_auth=("u", "p"), connection_class=Recorder
    )
    with pytest.raises(UsageError, match="hybrid needs a managed OpenSearch domain"):
        serverless.search("q", [1.0], SearchOptions())
    with pytest.raises(UsageError, match="over https only"):
        OpenSearchIndex.from_url("http://example.com/docs", "local", http_auth=("u", "p"))
    with pytest.raises(UsageError, match="dimension=0 is invalid"):
        index_body(0)
    with pytest.raises(UsageError, match="space_type='dot' is invalid"):
        index_body(384, space_type="dot")
    with pytest.raises(UsageError, match="metadata field year='int' is invalid"):
        index_body(384, metadata_fields={"year": "int"})
