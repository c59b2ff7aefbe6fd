"""The deployed vector index: an OpenSearch k-NN index, with the same interface as ``FaissIndex``.

Documents are written in langchain ``OpenSearchVectorSearch``'s layout (``vector_field``, ``text`` and a
``metadata`` object), by our own ``_bulk`` requests. The index itself is created by
``genai_contracts.vector_index.index_body`` (the VectorStore construct's custom resource calls the same
function), so ``metadata.source`` is a keyword and filters run inside the HNSW search (faiss engine).
Hybrid search sends OpenSearch's ``hybrid`` query through a search pipeline that fuses the keyword and
vector rankings by reciprocal rank fusion, as ``FaissIndex`` does locally.

**One scheme for both services.** A vector search collection of OpenSearch Serverless takes no document
id: "For time series and vector search collections, you can't index by custom document ID or update by
upsert requests. This operation is reserved for search use cases. You can update by document ID instead."
(OpenSearch Service developer guide, "Choosing a collection type"). So no request here sends an ``_id``:
OpenSearch generates it, and a row names itself by fields (``metadata.chunk_id``, ``metadata.row_id``,
``metadata.sequencer``; ``genai_contracts.vector_index``). Ingestion reads a source's rows by term on
``metadata.source`` and deletes rows by the ids those reads return (``DELETE <index>/_doc/<id>`` and
``POST <index>/_bulk`` are what the guide's "Supported operations" list for ``aoss:WriteDocument``; no
``_delete_by_query``, no ``refresh``). ``genai_runtime.rag.ingest`` builds the generations on top
(``GenerationalIndex``): new rows first, old ones deleted after, so a crash never loses a document.

**Reads past 10,000 hits.** A search returns at most ``index.max_result_window`` (10,000) hits, so every
read that can be larger pages: ``search_after`` over a sort on a unique keyword (``metadata.row_id``)
inside a point in time (PIT), which both services support: managed domains from OpenSearch 2.5
("Point in time in Amazon OpenSearch Service"), Serverless through ``POST /<index>/_search/point_in_time``
("Point in Time (PIT) with search_after is recommended pagination method in Amazon OpenSearch
Serverless", "Using Pit with Amazon OpenSearch Serverless"). A PIT is lost when a node restarts
("There's no resiliency for PIT"), so a scan that loses its PIT, or cannot open one (permissions), goes
on with plain ``search_after`` from the last key: the key is unique and never changes, so no row is
skipped. The sources of the index come from a ``composite`` aggregation, paged by ``after_key``.

**Visibility.** A write is searchable only after a refresh (a managed domain refreshes each second and
takes ``_refresh``; a Serverless collection every 10 to 60 seconds, and takes none). On a managed domain
``refresh()`` makes what this writer wrote visible before it reads again; on Serverless
``eventually_consistent`` tells the ingestion Lambda to read once more after the refresh interval.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from genai_contracts import vector_index
from genai_contracts.vector_index import (
    BOOKKEEPING_FIELDS,
    CHUNK_ID_FIELD,
    METADATA_FIELD,
    ROW_ID_FIELD,
    SEQUENCER_FIELD,
    STATE_FIELD,
    TEXT_FIELD,
    VECTOR_FIELD,
    VERSION_ID_FIELD,
)

from ..errors import UsageError
from .chunking import Chunk
from .embeddings import VectorsOnly
from .ingest import STATE_DELETED, STATE_PRESENT, NewRow, Row
from .search import RRF_K, Retrieved, SearchOptions, mmr_select

HYBRID_PIPELINE = "genai-hybrid"
MAX_HITS = 10_000
"""``index.max_result_window``: the most hits one search returns (``from + size``), on both services."""
PAGE_SIZE = 1_000
"""Hits per page when ingestion reads rows (vectors included for reuse: 1,000 x 1,024 floats is ~10 MB)."""
SOURCES_PAGE = 1_000
BULK_ROWS = 500
BULK_BYTES = 8 * 1024 * 1024
"""A ``_bulk`` request's most rows and bytes (the services refuse bodies past their HTTP limit)."""
PIT_KEEP_ALIVE = "2m"
_SOURCE = f"{METADATA_FIELD}.source"
_ROW_FIELDS = [f"{METADATA_FIELD}.{name}" for name in (*BOOKKEEPING_FIELDS, "content_hash")]
logger = logging.getLogger(__name__)


class IndexingRejected(UsageError):
    """OpenSearch refused rows for what they hold (a mapping conflict, a wrong dimension): no retry fixes it."""


class IndexingFailed(RuntimeError):
    """OpenSearch failed rows for a passing reason (HTTP 429 or 5xx): the same request may succeed later."""


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


# Several windows of one passage may rank together: ask for this many windows per passage wanted.
WINDOWS_PER_PASSAGE = 4


def search_body(vector: Sequence[float], options: SearchOptions, question: str | None = None) -> dict:
    """The query DSL for one search (``question`` only for hybrid), in windows: ``search`` keeps each
    passage's best."""
    windows = min(max(options.k * WINDOWS_PER_PASSAGE, options.k), MAX_HITS)
    if options.search_type == "hybrid":
        keyword: dict = {"match": {TEXT_FIELD: {"query": question}}}
        if options.filter:
            keyword = {"bool": {"must": [keyword], **filter_clause(options.filter)["bool"]}}
        return {
            "size": windows,
            "_source": {"excludes": [VECTOR_FIELD]},
            "query": {"hybrid": {"queries": [keyword, knn_query(vector, options.fetch_k, options.filter)]}},
        }
    if options.search_type == "similarity":
        return {
            "size": windows,
            "_source": {"excludes": [VECTOR_FIELD]},
            "query": knn_query(vector, windows, options.filter),
        }
    # MMR needs the candidates' vectors; newer Serverless collections leave them out unless asked.
    size = max(options.fetch_k, options.k)
    return {
        "size": size,
        "_source": {"includes": [VECTOR_FIELD, TEXT_FIELD, METADATA_FIELD]},
        "query": knn_query(vector, size, options.filter),
    }


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


def _metadata(hit: dict) -> dict:
    return hit.get("_source", {}).get(METADATA_FIELD) or {}


def _best_per_passage(found: list[Retrieved], k: int) -> list[Retrieved]:
    """Each passage once, at its best window's rank (``retrievers.passage_key``, as the FAISS index)."""
    from .retrievers import passage_key

    seen: set[str] = set()
    kept = []
    for item in found:
        key = passage_key(item.metadata, item.id)
        if key not in seen:
            seen.add(key)
            kept.append(item)
    return kept[:k]


def _shown(metadata: Mapping[str, Any]) -> dict:
    """Metadata as a search result shows it: without ingestion's bookkeeping."""
    return {key: value for key, value in metadata.items() if key not in BOOKKEEPING_FIELDS}


def _row(hit: dict, legacy: bool = False) -> Row:
    metadata = _metadata(hit)
    state = metadata.get(STATE_FIELD)
    chunk_id = None if state else metadata.get(CHUNK_ID_FIELD) or hit.get("_source", {}).get("id") or hit["_id"]
    return Row(
        handle=hit["_id"],
        key=hit["_id"] if legacy else metadata.get(ROW_ID_FIELD, hit["_id"]),
        chunk_id=chunk_id,
        content_hash=None if state else metadata.get("content_hash"),
        sequencer=metadata.get(SEQUENCER_FIELD, ""),  # rows written before sequencers: the oldest generation
        version_id=metadata.get(VERSION_ID_FIELD),
        deleted=state == STATE_DELETED,
        state=bool(state),
    )


@dataclass
class _Pit:
    """The point in time one read runs in, or none (not supported, not permitted, or lost)."""

    id: str | None = None
    pages: int = field(default=0)


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
        self._pit_supported: bool | None = None
        self._exists = False

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
            timeout=30,
            **client_options,
        )
        serverless = parsed.hostname.endswith(".aoss.amazonaws.com")
        return cls(store, index_name, embedding_model, serverless=serverless, metadata_fields=metadata_fields)

    @property
    def client(self):
        return self.store.client

    @property
    def eventually_consistent(self) -> bool:
        """Whether what this writer wrote may stay invisible to its own next read (Serverless: no refresh)."""
        return self.serverless

    def ensure_index(self, dimension: int) -> bool:
        """Create the index if it is missing (the construct normally has); True when created."""
        if self._exists or self.client.indices.exists(index=self.index_name):
            self._exists = True
            return False
        self.client.indices.create(
            index=self.index_name, body=index_body(dimension, metadata_fields=self._metadata_fields)
        )
        self._exists = True
        return True

    def refresh(self) -> None:
        """Make this writer's writes searchable before it reads again (a managed domain; Serverless takes none)."""
        if not self.serverless:
            self.client.indices.refresh(index=self.index_name)

    # ---- paged reads
    @contextmanager
    def _point_in_time(self) -> Iterator[_Pit]:
        pit = _Pit()
        if self._pit_supported is not False:
            from opensearchpy.exceptions import TransportError

            try:
                response = self.client.transport.perform_request(
                    "POST",
                    f"/{self.index_name}/_search/point_in_time",
                    params={"keep_alive": PIT_KEEP_ALIVE},
                )
                pit.id = response["pit_id"]
                self._pit_supported = True
            except TransportError as error:
                if not isinstance(error.status_code, int):  # a connection error: not an answer about PITs
                    raise
                logger.info("no point in time (%s): paging with search_after alone", error.status_code)
                self._pit_supported = False
        try:
            yield pit
        finally:
            if pit.id is not None:
                self._close_point_in_time(pit.id)

    def _close_point_in_time(self, pit_id: str) -> None:
        from opensearchpy.exceptions import TransportError

        try:
            self.client.transport.perform_request("DELETE", "/_search/point_in_time", body={"pit_id": [pit_id]})
        except TransportError:  # it expires by itself after PIT_KEEP_ALIVE
            logger.info("could not close point in time; it expires in %s", PIT_KEEP_ALIVE)

    def _scan(self, pit: _Pit, query: dict, sort: list, source: Any, page: int = PAGE_SIZE) -> Iterator[dict]:
        """Every hit of ``query``, page by page: ``search_after`` on ``sort`` (unique), inside ``pit`` if any."""
        from opensearchpy.exceptions import NotFoundError

        after = None
        while True:
            body: dict = {"size": page, "query": query, "sort": sort, "_source": source, "track_total_hits": False}
            if after is not None:
                body["search_after"] = after
            if pit.id is not None:
                body["pit"] = {"id": pit.id, "keep_alive": PIT_KEEP_ALIVE}
                try:
                    response = self.client.search(body=body)
                except NotFoundError:  # the PIT is gone (a node restarted): go on without one
                    logger.info("point in time lost after %d pages; paging on with search_after", pit.pages)
                    pit.id = None
                    continue
                pit.id = response.get("pit_id", pit.id)
            else:
                response = self.client.search(index=self.index_name, body=body)
            pit.pages += 1
            hits = response["hits"]["hits"]
            yield from hits
            if len(hits) < page:
                return
            after = hits[-1]["sort"]

    def rows(self, source: str) -> list[Row]:
        """Every row ``source`` has: chunks of each generation, state rows, and rows of the old layout."""
        term = {"term": {_SOURCE: source}}
        has_key = {"exists": {"field": f"{METADATA_FIELD}.{ROW_ID_FIELD}"}}
        rows: list[Row] = []
        with self._point_in_time() as pit:
            keyed = {"bool": {"filter": [term, has_key]}}
            by_key = [{f"{METADATA_FIELD}.{ROW_ID_FIELD}": "asc"}]
            rows.extend(_row(hit) for hit in self._scan(pit, keyed, by_key, _ROW_FIELDS))
            # Rows written before the row key existed (one generation, ids were chunk ids or generated):
            # paged by their position and hash, which they all carry.
            legacy = {"bool": {"filter": [term], "must_not": [has_key]}}
            by_position = [{f"{METADATA_FIELD}.chunk": "asc"}, {f"{METADATA_FIELD}.content_hash": "asc"}]
            rows.extend(_row(hit, legacy=True) for hit in self._scan(pit, legacy, by_position, [*_ROW_FIELDS, "id"]))
        return rows

    def stored_vectors(self, handles: Sequence[str]) -> dict[str, list[float]]:
        """The vectors of these rows (by ``Row.handle``); a row that is gone is left out."""
        found: dict[str, list[float]] = {}
        for start in range(0, len(handles), PAGE_SIZE):
            batch = list(handles[start : start + PAGE_SIZE])
            response = self.client.search(
                index=self.index_name,
                body={"size": len(batch), "query": {"ids": {"values": batch}}, "_source": [VECTOR_FIELD]},
            )
            for hit in response["hits"]["hits"]:
                vector = hit.get("_source", {}).get(VECTOR_FIELD)
                if vector:
                    found[hit["_id"]] = vector
        return found

    def chunk_hashes(self, source: str) -> dict[str, str]:
        """Chunk id -> content hash of what ``source`` holds (its newest generation's where several are left)."""
        from .ingest import sequencer_key

        held: dict[str, tuple[tuple, str]] = {}
        for row in self.rows(source):
            if row.chunk_id is None or row.content_hash is None:
                continue
            order = sequencer_key(row.sequencer)
            if row.chunk_id not in held or held[row.chunk_id][0] < order:
                held[row.chunk_id] = (order, row.content_hash)
        return {chunk_id: content for chunk_id, (_, content) in held.items()}

    def sources(self) -> set[str]:
        """Sources with chunks (a source whose newest state is its tombstone has none)."""
        found: set[str] = set()
        after = None
        while True:
            composite: dict = {"size": SOURCES_PAGE, "sources": [{"source": {"terms": {"field": _SOURCE}}}]}
            if after is not None:
                composite["after"] = after
            response = self.client.search(
                index=self.index_name,
                body={
                    "size": 0,
                    "query": {"bool": {"must_not": [{"exists": {"field": f"{METADATA_FIELD}.{STATE_FIELD}"}}]}},
                    "aggs": {"sources": {"composite": composite}},
                },
            )
            aggregation = response["aggregations"]["sources"]
            found.update(bucket["key"]["source"] for bucket in aggregation["buckets"])
            after = aggregation.get("after_key")
            if len(aggregation["buckets"]) < SOURCES_PAGE or after is None:
                return found

    def metadata_fields(self) -> set[str]:
        if self._known_fields is None:
            mapping = self.client.indices.get_mapping(index=self.index_name)
            properties = next(iter(mapping.values()))["mappings"]["properties"]
            held = set(properties.get(METADATA_FIELD, {}).get("properties", {}))
            # A Serverless index maps the metadata fields by dotted names (AWS::OpenSearchServerless::Index).
            held |= {name.split(".", 1)[1] for name in properties if name.startswith(f"{METADATA_FIELD}.")}
            self._known_fields = held - {"content_hash", *BOOKKEEPING_FIELDS}
        return self._known_fields

    # ---- writes
    def write_rows(self, rows: Sequence[NewRow]) -> None:
        """Index new rows (chunk rows with their vectors, state rows without), in as many bulks as they need."""
        if not rows:
            return
        dimension = next((len(row.vector) for row in rows if row.vector), None)
        if dimension is not None:
            self.ensure_index(dimension)
        actions: list[dict] = []
        size = 0
        for row in rows:
            document = self._document(row)
            actions += [{"index": {"_index": self.index_name}}, document]
            size += len(json.dumps(document)) + 40
            if len(actions) >= 2 * BULK_ROWS or size >= BULK_BYTES:
                self._bulk(actions)
                actions, size = [], 0
        if actions:
            self._bulk(actions)

    @staticmethod
    def _document(row: NewRow) -> dict:
        bookkeeping = {ROW_ID_FIELD: f"{row.chunk_id or 'state'}.{row.sequencer}.{uuid.uuid4().hex[:16]}"}
        bookkeeping[SEQUENCER_FIELD] = row.sequencer
        if row.version_id is not None:
            bookkeeping[VERSION_ID_FIELD] = row.version_id
        if row.chunk is None:
            state = STATE_DELETED if row.deleted else STATE_PRESENT
            return {METADATA_FIELD: {"source": row.source, STATE_FIELD: state, **bookkeeping}}
        # A user field of a bookkeeping name never reaches the row (a "state" would make it a state row).
        own = {key: value for key, value in row.chunk.metadata.items() if key not in BOOKKEEPING_FIELDS}
        metadata = {**own, CHUNK_ID_FIELD: row.chunk.id, **bookkeeping}
        return {VECTOR_FIELD: list(row.vector or ()), TEXT_FIELD: row.chunk.text, METADATA_FIELD: metadata}

    def delete_rows(self, handles: Sequence[str]) -> None:
        """Delete rows by ``Row.handle`` (the ids OpenSearch gave them); rows already gone are fine."""
        for start in range(0, len(handles), BULK_ROWS):
            self._bulk([{"delete": {"_index": self.index_name, "_id": h}} for h in handles[start : start + BULK_ROWS]])

    def _bulk(self, actions: list[dict]) -> None:
        response = self.client.bulk(body=actions)
        if not response.get("errors"):
            return
        rejected: list[str] = []
        failed: list[str] = []
        for item in response.get("items", []):
            (operation, result), *_ = item.items()
            status = result.get("status", 200)
            if status < 300 or (operation == "delete" and status == 404):
                continue
            reason = result.get("error", {})
            text = f"{operation} {status}: {reason.get('type', '')}: {reason.get('reason', reason)}"
            (failed if status == 429 or status >= 500 else rejected).append(text)
        if failed:
            raise IndexingFailed(f"OpenSearch failed {len(failed)} rows, e.g. {failed[0]}"[:1000])
        if rejected:
            raise IndexingRejected(f"OpenSearch refused {len(rejected)} rows, e.g. {rejected[0]}"[:1000])

    # ---- the VectorIndex interface of a keyed index, on rows
    def upsert(self, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]) -> None:
        """Hold exactly these chunks under their ids: write them, then delete the rows they replace."""
        if not chunks:
            return
        from .ingest import sequencer_key

        previous: list[Row] = []
        sequencers: dict[str, str] = {}
        for source in sorted({chunk.source for chunk in chunks}):
            rows = self.rows(source)
            previous += rows
            sequencers[source] = max((r.sequencer for r in rows), key=sequencer_key, default="")
        self.write_rows(
            [
                NewRow(c.source, sequencers[c.source], None, chunk=c, vector=list(v))
                for c, v in zip(chunks, vectors, strict=True)
            ]
        )
        replaced = {chunk.id for chunk in chunks}
        self.delete_rows([row.handle for row in previous if row.chunk_id in replaced])

    def delete(self, ids: Sequence[str]) -> None:
        """Delete every row of these chunk ids, whatever generation wrote it."""
        wanted = list(dict.fromkeys(ids))
        handles: list[str] = []
        with self._point_in_time() as pit:
            for start in range(0, len(wanted), PAGE_SIZE):
                query = {"terms": {f"{METADATA_FIELD}.{CHUNK_ID_FIELD}": wanted[start : start + PAGE_SIZE]}}
                sort = [{f"{METADATA_FIELD}.{ROW_ID_FIELD}": "asc"}]
                handles += [hit["_id"] for hit in self._scan(pit, query, sort, False)]
        self.delete_rows(handles)
        self.refresh()

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
                _metadata(hit).get(CHUNK_ID_FIELD) or hit["_id"],
                hit["_source"].get(TEXT_FIELD, ""),
                float(hit["_score"]),
                _shown(_metadata(hit)),
            )
            for hit in hits
        ]
        if options.search_type != "mmr":
            return _best_per_passage(found, options.k)
        pairs = [(item, hit["_source"][VECTOR_FIELD]) for item, hit in zip(found, hits, strict=True)]
        return _best_per_passage(mmr_select(vector, pairs, len(pairs), options.lambda_mult), options.k)
