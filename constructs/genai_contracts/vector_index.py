"""The OpenSearch k-NN index: one mapping for the construct, its custom resource and the runtime.

Documents are written in langchain ``OpenSearchVectorSearch``'s layout: ``vector_field``, ``text`` and a
``metadata`` object. ``index_body`` is the index definition: HNSW over the embedding dimension (faiss
engine, so filters run inside the search), ``metadata`` typed field by field so filters and the
ingestion's bookkeeping (``source``, ``content_hash``, ``chunk_id``, ...) are exact. The managed domain's
custom resource (``lambdas.opensearch_index``) and ``genai_runtime.rag.opensearch`` create the index with
it; the ``VectorStore`` construct writes a Serverless collection's ``AWS::OpenSearchServerless::Index``
from it.

The bookkeeping lives in fields, never in ``_id``: OpenSearch Serverless refuses a custom document id
in a vector search collection ("For time series and vector search collections, you can't index by
custom document ID or update by upsert requests. This operation is reserved for search use cases.",
OpenSearch Service developer guide, "Choosing a collection type"). So every row carries its chunk id
(``chunk_id``), a unique key to page by (``row_id``), and the S3 event it came from (``sequencer``,
``version_id``); a source's state row (no vector, no text) records the event's verdict (``state``:
``present`` or ``deleted``, the tombstone that keeps a late older upload out). They are keywords, so
ingestion reads by term and pages with ``search_after`` on ``row_id``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ._validation import invalid

VECTOR_FIELD = "vector_field"
TEXT_FIELD = "text"
METADATA_FIELD = "metadata"
BEDROCK_METADATA_FIELD = "bedrock_metadata"
"""Where a Bedrock knowledge base keeps its own chunk metadata (stored, not indexed)."""
CHUNK_ID_FIELD = "chunk_id"
ROW_ID_FIELD = "row_id"
SEQUENCER_FIELD = "sequencer"
VERSION_ID_FIELD = "version_id"
STATE_FIELD = "state"
BOOKKEEPING_FIELDS: tuple[str, ...] = (CHUNK_ID_FIELD, ROW_ID_FIELD, SEQUENCER_FIELD, VERSION_ID_FIELD, STATE_FIELD)
"""Metadata ingestion keeps for itself (idempotence and event order); never a filter, never shown."""
BASE_METADATA_FIELDS: dict[str, str] = {
    "source": "keyword",
    "chunk": "integer",
    "start_index": "integer",
    "page": "integer",
    "content_hash": "keyword",
    **{name: "keyword" for name in BOOKKEEPING_FIELDS},
}
"""Metadata every chunk carries (ingestion sets it), and the OpenSearch type each is mapped to."""
METADATA_TYPES = ("keyword", "integer", "long", "float", "boolean", "date")
SERVERLESS_METADATA_TYPES = ("keyword", "integer")
"""What ``AWS::OpenSearchServerless::Index`` can map a metadata field to."""
SPACE_TYPES = ("innerproduct", "l2", "cosinesimil")
ENGINES = ("faiss", "lucene")
MAX_DIMENSION = 16_000
FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 512
HNSW_EF_SEARCH = 512


def index_body(
    dimension: int,
    *,
    metadata_fields: Mapping[str, str] | None = None,
    engine: str = "faiss",
    space_type: str = "innerproduct",
    m: int = HNSW_M,
    ef_construction: int = HNSW_EF_CONSTRUCTION,
    ef_search: int = HNSW_EF_SEARCH,
    shards: int = 2,
    replicas: int = 1,
    bedrock_metadata: bool = False,
) -> dict:
    """The k-NN index definition (``PUT /INDEX`` body): HNSW over normalised vectors, metadata typed for filters.

    ``metadata_fields`` adds filterable fields to ``BASE_METADATA_FIELDS``; ``bedrock_metadata`` adds
    the field a Bedrock knowledge base writes. A bad argument raises a ``ValueError`` naming it.
    """
    if isinstance(dimension, bool) or not isinstance(dimension, int) or not 1 <= dimension <= MAX_DIMENSION:
        raise invalid("dimension", dimension, f"give the embedding model's vector size (1..{MAX_DIMENSION})")
    if engine not in ENGINES:
        raise invalid("engine", engine, f"use one of {sorted(ENGINES)} (both filter during search)")
    if space_type not in SPACE_TYPES:
        raise invalid("space_type", space_type, f"use one of {sorted(SPACE_TYPES)}")
    fields = {**BASE_METADATA_FIELDS, **(metadata_fields or {})}
    for name, kind in fields.items():
        if not isinstance(name, str) or not FIELD_NAME.match(name):
            raise invalid("metadata field name", name, "use an identifier: letters, digits and _ (at most 64)")
        if kind not in METADATA_TYPES:
            raise invalid(f"metadata field {name}", kind, f"use one of {sorted(METADATA_TYPES)}")
    properties: dict = {
        VECTOR_FIELD: {
            "type": "knn_vector",
            "dimension": dimension,
            "method": {
                "name": "hnsw",
                "engine": engine,
                "space_type": space_type,
                "parameters": {"m": m, "ef_construction": ef_construction},
            },
        },
        TEXT_FIELD: {"type": "text"},
        METADATA_FIELD: {"properties": {name: {"type": kind} for name, kind in sorted(fields.items())}},
    }
    if bedrock_metadata:
        properties[BEDROCK_METADATA_FIELD] = {"type": "text", "index": False}
    return {
        "settings": {
            "index": {
                "knn": True,
                "knn.algo_param.ef_search": ef_search,
                "number_of_shards": shards,
                "number_of_replicas": replicas,
            }
        },
        "mappings": {"properties": properties},
    }
