"""The deployed vector index: an OpenSearch k-NN index, with the same interface as ``FaissIndex``.

Documents are written by langchain's ``OpenSearchVectorSearch`` (bulk ``index`` with the chunk id as
``_id``, so a retry overwrites) in its layout: ``vector_field``, ``text`` and a ``metadata`` object.
The index itself is created by ``genai_contracts.vector_index.index_body`` (the VectorStore construct's
custom resource calls the same function), so ``metadata.source`` is a keyword and filters run inside
the HNSW search (faiss engine). Hybrid search sends OpenSearch's ``hybrid`` query through a search pipeline that
fuses the keyword and vector rankings by reciprocal rank fusion, as ``FaissIndex`` does locally.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import urlparse

from genai_contracts import vector_index
from genai_contracts.vector_index import METADATA_FIELD, TEXT_FIELD, VECTOR_FIELD

from ..errors import UsageError
from .chunking import Chunk
from .embeddings import VectorsOnly
from .search import RRF_K, Retrieved, SearchOptions, mmr_select

HYBRID_PIPELINE = "genai-hybrid"
MAX_HITS = 10_000


def index_body(dimension: int, **options) -> dict:
    """``genai_contracts.vector_index.index_body`` (the construct's custom resource creates the same index);
    a bad argument is a ``UsageError``."""
    try:
        return vector_index.index_body(dimension, **options)
    except ValueError as error:
        raise UsageError(str(error)) from None


def hybrid_pipeline_body(rank_constant: int = RRF_K) -> dict:
    """The search pipeline the hybrid query runs through: reciprocal rank fusion (OpenSearch 2.19+)."""
    return {
        "description": "genai-cdk hybrid search: BM25 and k-NN fused by reciprocal rank fusion",
        "phase_results_processors": [
            {"score-ranker-processor": {"combination": {"technique": "rrf", "rank_constant": rank_constant}}}
        ],
    }


def filter_clause(filter: Mapping[str, object]) -> dict:
    return {"bool": {"filter": [{"term": {f"{METADATA_FIELD}.{key}": value}} for key, value in sorted(filter.items())]}}


def knn_query(vector: Sequence[float], k: int, filter: Mapping[str, object]) -> dict:
    knn: dict = {"vector": list(vector), "k": k}
    if filter:
        knn["filter"] = filter_clause(filter)
    return {"knn": {VECTOR_FIELD: knn}}


def search_body(vector: Sequence[float], options: SearchOptions, question: str | None = None) -> dict:
    """The query DSL for one search (``question`` only for hybrid)."""
    if options.search_type == "hybrid":
        keyword: dict = {"match": {TEXT_FIELD: {"query": question}}}
        if options.filter:
            keyword = {"bool": {"must": [keyword], **filter_clause(options.filter)["bool"]}}
        return {
            "size": options.k,
            "_source": {"excludes": [VECTOR_FIELD]},
            "query": {"hybrid": {"queries": [keyword, knn_query(vector, options.fetch_k, options.filter)]}},
        }
    size = options.k if options.search_type == "similarity" else options.fetch_k
    body = {"size": size, "query": knn_query(vector, size, options.filter)}
    if options.search_type == "similarity":
        body["_source"] = {"excludes": [VECTOR_FIELD]}
    return body


def aws_auth(host: str, region: str | None = None):
    """SigV4 for a managed domain (service ``es``) or a Serverless collection (``aoss``)."""
    import boto3
    from opensearchpy import AWSV4SignerAuth

    session = boto3.Session()
    region = region or session.region_name
    if not region:
        raise UsageError("no AWS region for OpenSearch SigV4: set AWS_REGION or pass region")
    credentials = session.get_credentials()
    if credentials is None:
        raise UsageError("no AWS credentials to sign OpenSearch requests: configure a profile or role")
    return AWSV4SignerAuth(credentials, region, "aoss" if host.endswith(".aoss.amazonaws.com") else "es")


class OpenSearchIndex:
    def __init__(
        self,
        store,
        index_name: str,
        embedding_model: str,
        *,
        serverless: bool = False,
        metadata_fields: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store  # langchain OpenSearchVectorSearch; .client is the opensearch-py client
        self.index_name = index_name
        self.embedding_model = embedding_model
        self.serverless = serverless
        self._metadata_fields = dict(metadata_fields or {})
        self._known_fields: set[str] | None = None

    @classmethod
    def from_url(
        cls,
        url: str,
        embedding_model: str,
        *,
        http_auth=None,
        region: str | None = None,
        metadata_fields: Mapping[str, str] | None = None,
        **client_options,
    ) -> OpenSearchIndex:
        """``https://HOST/INDEX``; signs with the ambient AWS credentials unless ``http_auth`` is given."""
        from langchain_community.vectorstores import OpenSearchVectorSearch
        from opensearchpy import RequestsHttpConnection

        parsed = urlparse(url)
        index_name = parsed.path.strip("/")
        if parsed.scheme not in ("https", "http") or not parsed.hostname or not index_name or "/" in index_name:
            raise UsageError(f"index={url!r} is invalid: use https://HOST/INDEX_NAME")
        if parsed.scheme != "https" and parsed.hostname not in ("localhost", "127.0.0.1"):
            raise UsageError(f"index={url!r} is invalid: OpenSearch is reached over https only")
        host = f"{parsed.scheme}://{parsed.netloc}"
        auth = http_auth if http_auth is not None else aws_auth(parsed.hostname, region)
        client_options.setdefault("connection_class", RequestsHttpConnection)
        store = OpenSearchVectorSearch(
            host,
            index_name,
            VectorsOnly(),
            http_auth=auth,
            use_ssl=parsed.scheme == "https",
            verify_certs=parsed.scheme == "https",
            engine="faiss",
            bulk_size=10_000,
            timeout=30,
            **client_options,
        )
        serverless = parsed.hostname.endswith(".aoss.amazonaws.com")
        return cls(store, index_name, embedding_model, serverless=serverless, metadata_fields=metadata_fields)

    @property
    def client(self):
        return self.store.client

    def ensure_index(self, dimension: int) -> bool:
        """Create the index if it is missing (the construct normally has); True when created."""
        if self.client.indices.exists(index=self.index_name):
            return False
        self.client.indices.create(
            index=self.index_name, body=index_body(dimension, metadata_fields=self._metadata_fields)
        )
        return True

    def chunk_hashes(self, source: str) -> dict[str, str]:
        response = self.client.search(
            index=self.index_name,
            body={
                "size": MAX_HITS,
                "_source": [f"{METADATA_FIELD}.content_hash"],
                "query": {"term": {f"{METADATA_FIELD}.source": source}},
            },
        )
        return {hit["_id"]: hit["_source"][METADATA_FIELD]["content_hash"] for hit in response["hits"]["hits"]}

    def sources(self) -> set[str]:
        response = self.client.search(
            index=self.index_name,
            body={
                "size": 0,
                "aggs": {"sources": {"terms": {"field": f"{METADATA_FIELD}.source", "size": MAX_HITS}}},
            },
        )
        return {bucket["key"] for bucket in response["aggregations"]["sources"]["buckets"]}

    def metadata_fields(self) -> set[str]:
        if self._known_fields is None:
            mapping = self.client.indices.get_mapping(index=self.index_name)
            properties = next(iter(mapping.values()))["mappings"]["properties"]
            self._known_fields = set(properties.get(METADATA_FIELD, {}).get("properties", {})) - {"content_hash"}
        return self._known_fields

    def upsert(self, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]) -> None:
        if not chunks:
            return
        self.ensure_index(len(vectors[0]))
        self.store.add_embeddings(
            list(zip([c.text for c in chunks], [list(v) for v in vectors], strict=True)),
            metadatas=[c.metadata for c in chunks],
            ids=[c.id for c in chunks],
            vector_field=VECTOR_FIELD,
            text_field=TEXT_FIELD,
        )

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            self.store.delete(list(ids), refresh_indices=not self.serverless)

    def save(self) -> None:
        """Nothing to do: every bulk request is durable when OpenSearch acknowledges it."""

    def search(self, question: str, vector: Sequence[float], options: SearchOptions) -> list[Retrieved]:
        params = {}
        if options.search_type == "hybrid":
            if self.serverless:
                raise UsageError(
                    "search_type=hybrid needs a managed OpenSearch domain (search pipelines); "
                    "use similarity or mmr with Serverless"
                )
            params["search_pipeline"] = HYBRID_PIPELINE
        response = self.client.search(index=self.index_name, body=search_body(vector, options, question), params=params)
        hits = response["hits"]["hits"]
        found = [
            Retrieved(
                hit["_id"],
                hit["_source"].get(TEXT_FIELD, ""),
                float(hit["_score"]),
                hit["_source"].get(METADATA_FIELD, {}),
            )
            for hit in hits
        ]
        if options.search_type != "mmr":
            return found
        pairs = [(item, hit["_source"][VECTOR_FIELD]) for item, hit in zip(found, hits, strict=True)]
        return mmr_select(vector, pairs, options.k, options.lambda_mult)
