"""The OpenSearch adapter at the HTTP level: the exact mapping, bulk bodies and query DSL it sends.

Searches are checked against a recorder that answers fixed hits; writes and paged reads against
``opensearch_fake.FakeOpenSearch`` in both its modes (a Serverless vector collection, a managed domain).
"""

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
    hits = [HIT, HIT2]

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
                    "hits": {"hits": Recorder.hits},
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


def test_similarity_query_is_knn_with_an_efficient_filter(index):
    found = index.search("q", [0.6, 0.8], SearchOptions(k=2, search_type="similarity", filter={"year": 2022}))
    (search,) = requests("POST", "/_search")
    assert search[3] == {  # windows: four per passage wanted, each passage kept once at its best
        "size": 8,
        "_source": {"excludes": ["vector_field"]},
        "query": {
            "knn": {
                "vector_field": {
                    "vector": [0.6, 0.8],
                    "k": 8,
                    "filter": {"bool": {"filter": [{"term": {"metadata.year": 2022}}]}},
                }
            }
        },
    }
    assert [(f.id, f.score, f.source) for f in found] == [("c1", 0.9, "s3://b/a.md"), ("c2", 0.8, "s3://b/a.md")]


def test_mmr_fetches_fetch_k_with_vectors_and_reranks_locally(index):
    found = index.search("q", [1.0, 0.0], SearchOptions(k=1, fetch_k=10, search_type="mmr"))
    (search,) = requests("POST", "/_search")
    assert search[3] == {
        "size": 10,
        "_source": {"includes": ["vector_field", "text", "metadata"]},  # newer Serverless omits vectors unasked
        "query": {"knn": {"vector_field": {"vector": [1.0, 0.0], "k": 10}}},
    }
    assert [f.id for f in found] == ["c1"]


def test_windows_of_one_passage_come_back_once(index):
    window = lambda n, score, passage: {  # noqa: E731
        "_id": f"w{n}",
        "_score": score,
        "_source": {"text": f"passage {passage}", "metadata": {"source": "s3://b/a.md", "passage": passage}},
    }
    Recorder.hits = [window(1, 0.9, 0), window(2, 0.85, 0), window(3, 0.8, 1), window(4, 0.7, 0), window(5, 0.6, 2)]
    try:
        found = index.search("q", [1.0, 0.0], SearchOptions(k=2, search_type="similarity"))
    finally:
        Recorder.hits = [HIT, HIT2]
    assert [(f.id, f.text) for f in found] == [("w1", "passage 0"), ("w3", "passage 1")]


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


def test_search_names_hits_by_chunk_id_and_hides_the_bookkeeping(index):
    hit = {
        "_id": "generated-1",
        "_score": 0.5,
        "_source": {
            "text": "t",
            "metadata": {"source": "s", "chunk_id": "c9", "row_id": "r", "sequencer": "0A", "year": 2022},
        },
    }
    Recorder.hits = [hit]
    try:
        (found,) = index.search("q", [1.0, 0.0], SearchOptions(k=1, search_type="similarity"))
    finally:
        Recorder.hits = [HIT, HIT2]
    assert found.id == "c9" and found.metadata == {"source": "s", "year": 2022}


# ---- writes and paged reads, on the fake of each service

MODES = {"serverless": "abc123.us-east-1.aoss.amazonaws.com", "managed": "search-vectors.us-east-1.es.amazonaws.com"}


@pytest.fixture(params=sorted(MODES))
def fake(request):
    from .opensearch_fake import FakeOpenSearch

    service = FakeOpenSearch(serverless=request.param == "serverless")
    service.host = MODES[request.param]
    return service


def open_fake(fake, *, create: bool = True, **options) -> OpenSearchIndex:
    if create:
        fake.create_index("docs", index_body(2, metadata_fields={"year": "integer"}))
    return OpenSearchIndex.from_url(
        f"https://{fake.host}/docs", "fake", http_auth=("u", "p"), connection_class=fake.connection_class(), **options
    )


def chunks_of(source: str, texts: list[str], **extra) -> list[Chunk]:
    from genai_runtime.rag.chunking import chunk_id, content_hash

    out = []
    for position, text in enumerate(texts):
        metadata = {"source": source, "chunk": position, **extra}
        metadata["content_hash"] = content_hash(text, metadata)
        out.append(Chunk(chunk_id(source, position), text, metadata))
    return out


def bulk_lines(fake) -> list[dict]:
    return [line for method, path, _, body in fake.requests if path.endswith("/_bulk") for line in body]


def test_the_mapping_keeps_chunk_id_and_the_bookkeeping_as_keywords():
    mapping = index_body(2, metadata_fields={"year": "integer"})
    metadata = mapping["mappings"]["properties"]["metadata"]["properties"]
    for name in ("source", "chunk_id", "row_id", "sequencer", "version_id", "state", "content_hash"):
        assert metadata[name] == {"type": "keyword"}, name
    assert metadata["year"] == {"type": "integer"} and metadata["chunk"] == {"type": "integer"}


def test_no_write_sends_a_document_id_and_serverless_gets_no_refresh(fake):
    from langchain_core.embeddings import DeterministicFakeEmbedding

    from genai_runtime.rag.ingest import sync_source

    index = open_fake(fake)
    sync_source(index, DeterministicFakeEmbedding(size=2), "s3://b/a.md", chunks_of("s3://b/a.md", ["one", "two"]))
    fake.refresh()
    index.delete([chunks_of("s3://b/a.md", ["one"])[0].id])
    actions = [line for line in bulk_lines(fake) if set(line) <= {"index", "create", "delete", "update"}]
    writes = [next(iter(a.values())) for a in actions if "index" in a or "create" in a]
    assert writes and all("_id" not in action for action in writes)
    assert any("delete" in a for a in actions)  # by the ids the service generated
    documents = [line for line in bulk_lines(fake) if "metadata" in line]
    chunk_rows = [d for d in documents if "vector_field" in d]
    assert {d["metadata"]["chunk_id"] for d in chunk_rows} == {c.id for c in chunks_of("s3://b/a.md", ["one", "two"])}
    assert all(d["text"] in ("one", "two") and len(d["vector_field"]) == 2 for d in chunk_rows)
    assert all(d["metadata"]["row_id"] for d in documents)
    refreshes = [r for r in fake.requests if "refresh" in r[2] or r[1].endswith("/_refresh")]
    assert (not refreshes) if fake.serverless else refreshes
    assert all(not r[1].endswith("/_delete_by_query") for r in fake.requests)
    fake.refresh()
    kept = chunks_of("s3://b/a.md", ["one", "two"])[1]
    assert index.chunk_hashes("s3://b/a.md") == {kept.id: kept.content_hash}


def test_the_fake_refuses_what_the_service_refuses(fake):
    from opensearchpy.exceptions import RequestError

    index = open_fake(fake)
    with pytest.raises(RequestError, match="Result window is too large"):
        index.client.search(index="docs", body={"size": 10_001, "query": {"match_all": {}}})
    response = index.client.bulk(body=[{"index": {"_index": "docs", "_id": "mine"}}, {"text": "x"}])
    assert response["errors"] is fake.serverless  # a custom id: refused by a vector collection only
    if fake.serverless:
        with pytest.raises(RequestError, match="refresh is not supported"):
            index.client.indices.refresh(index="docs")
        with pytest.raises(RequestError, match="search pipelines are not supported"):
            index.client.search(
                index="docs", body={"query": {"hybrid": {"queries": []}}}, params={"search_pipeline": HYBRID_PIPELINE}
            )


def test_reads_page_past_ten_thousand_hits_inside_a_point_in_time(fake):
    from genai_runtime.rag.ingest import NewRow

    index = open_fake(fake)
    many = chunks_of("s3://b/big.md", [f"chunk {n}" for n in range(12_345)])
    index.write_rows([NewRow(c.source, "0A", "v1", chunk=c, vector=[1.0, 0.0]) for c in many])
    fake.refresh()
    fake.requests.clear()
    assert index.chunk_hashes("s3://b/big.md") == {c.id: c.content_hash for c in many}
    searches = [body for _, path, _, body in fake.requests if path.endswith("/_search")]
    assert all(body["size"] <= 10_000 and body["sort"] for body in searches)
    assert sum(1 for body in searches if "pit" in body) >= 13  # 12,345 rows in pages of 1,000
    assert fake.pits == {}  # closed


def test_a_lost_point_in_time_and_none_at_all_still_read_every_row(fake, monkeypatch):
    from genai_runtime.rag.ingest import NewRow

    index = open_fake(fake)
    many = chunks_of("s3://b/big.md", [f"chunk {n}" for n in range(2_500)])
    index.write_rows([NewRow(c.source, "0A", None, chunk=c, vector=[1.0, 0.0]) for c in many])
    fake.refresh()
    real = index._scan

    def losing(pit, *args, **kwargs):  # the PIT vanishes (a node restart) after the first page
        for n, hit in enumerate(real(pit, *args, **kwargs)):
            if n == 1_000:
                fake.lose_pits()
            yield hit

    monkeypatch.setattr(index, "_scan", losing)
    assert len(index.chunk_hashes("s3://b/big.md")) == 2_500
    monkeypatch.undo()
    refusing = open_fake(fake, create=False)
    original = fake.handle
    monkeypatch.setattr(
        fake,
        "handle",
        lambda m, u, p, b: (403, {"error": "no pit"}) if u.endswith("point_in_time") else original(m, u, p, b),
    )
    assert len(refusing.chunk_hashes("s3://b/big.md")) == 2_500
    assert refusing._pit_supported is False


def test_sources_page_through_a_composite_aggregation_and_skip_tombstones(fake):
    from genai_runtime.rag.ingest import NewRow

    index = open_fake(fake)
    rows = [
        NewRow(f"s3://b/{n:05d}.md", "01", None, chunk=chunks_of(f"s3://b/{n:05d}.md", ["x"])[0], vector=[1.0, 0.0])
        for n in range(2_345)
    ]
    rows.append(NewRow("s3://b/gone.md", "02", None, deleted=True))
    index.write_rows(rows)
    fake.refresh()
    fake.requests.clear()
    assert index.sources() == {f"s3://b/{n:05d}.md" for n in range(2_345)}
    pages = [body for _, path, _, body in fake.requests if path.endswith("/_search")]
    assert len(pages) == 3 and all(body["aggs"]["sources"]["composite"]["size"] == 1_000 for body in pages)


def test_metadata_fields_leave_out_the_bookkeeping(fake):
    index = open_fake(fake)
    assert index.metadata_fields() == {"source", "chunk", "start_index", "page", "year"}


def test_rows_the_mapping_refuses_are_a_usage_error_and_a_retry_then_converges(fake):
    from langchain_core.embeddings import DeterministicFakeEmbedding

    from genai_runtime.rag.ingest import sync_source
    from genai_runtime.rag.opensearch import IndexingRejected

    index = open_fake(fake)
    bad = chunks_of("s3://b/a.md", ["one"], year="not a year")
    with pytest.raises(IndexingRejected, match="mapper_parsing_exception"):
        sync_source(index, DeterministicFakeEmbedding(size=2), "s3://b/a.md", bad, sequencer="01")
    assert isinstance(IndexingRejected("x"), UsageError)
