"""Names a construct and its Lambda handler must spell alike: environment variables and service names.

The constructs (``genai_cdk``) set these variables on each function and the handlers (``lambdas``)
read them; ``genai_runtime``'s local runs set some of them too. Which function gets which:

========================  ======================================================================
``IngestionPipeline``     INDEX_URL, EMBEDDINGS, CHUNK_SIZE, CHUNK_OVERLAP, DEAD_LETTER_QUEUE_URL, INGEST_QUEUE_URL
``RagApi``                INDEX_URL, EMBEDDINGS, GENERATOR (optional), MAX_NEW_TOKENS, DEFAULT_SEARCH_TYPE
``ClaimsActionGroup``     CLAIMS_TABLE
``AgentApi``              AGENT_ID, AGENT_ALIAS_ID
========================  ======================================================================

Every function also gets ``POWERTOOLS_SERVICE_NAME``, one of the ``*_SERVICE`` names below, which
its handler's Powertools ``Logger`` uses too.
"""

from __future__ import annotations

INDEX_URL = "INDEX_URL"
"""The vector index: ``https://ENDPOINT/INDEX`` (``VectorStore.index_url``)."""
EMBEDDINGS = "EMBEDDINGS"
"""The embedding model spec (``EmbeddingModel.spec``: ``sagemaker:ENDPOINT`` or ``bedrock:MODEL_ID``)."""
GENERATOR = "GENERATOR"
"""The text generator spec (``TextGenerator.spec``); unset: retrieval only."""
MAX_NEW_TOKENS = "MAX_NEW_TOKENS"
CHUNK_SIZE = "CHUNK_SIZE"
CHUNK_OVERLAP = "CHUNK_OVERLAP"
DEAD_LETTER_QUEUE_URL = "DEAD_LETTER_QUEUE_URL"
INGEST_QUEUE_URL = "INGEST_QUEUE_URL"
"""The ingestion queue itself: where the function re-sends a notification, delayed, to reconcile an index
that is only eventually consistent (OpenSearch Serverless)."""
DEFAULT_SEARCH_TYPE = "DEFAULT_SEARCH_TYPE"
"""The search type of a query that names none: one the vector store can run (Serverless: no hybrid)."""
CLAIMS_TABLE = "CLAIMS_TABLE"
"""The DynamoDB table of insurance claims the claims action group reads and updates."""
AGENT_ID = "AGENT_ID"
AGENT_ALIAS_ID = "AGENT_ALIAS_ID"
POWERTOOLS_SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"
"""Read by Powertools itself: the ``service`` of every log line and metric."""

ENVIRONMENT_VARIABLES: tuple[str, ...] = (
    INDEX_URL,
    EMBEDDINGS,
    GENERATOR,
    MAX_NEW_TOKENS,
    CHUNK_SIZE,
    CHUNK_OVERLAP,
    DEAD_LETTER_QUEUE_URL,
    INGEST_QUEUE_URL,
    DEFAULT_SEARCH_TYPE,
    CLAIMS_TABLE,
    AGENT_ID,
    AGENT_ALIAS_ID,
    POWERTOOLS_SERVICE_NAME,
)

RAG_INGEST_SERVICE = "rag-ingest"
RAG_QUERY_SERVICE = "rag-query"
OPENSEARCH_INDEX_SERVICE = "opensearch-index"
CLAIMS_ACTION_GROUP_SERVICE = "claims-action-group"
AGENT_API_SERVICE = "agent-api"
