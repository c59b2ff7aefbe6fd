"""How documents are cut into passages and embedding windows: one home for the defaults the
``IngestionPipeline`` construct passes to its Lambda (``CHUNK_SIZE``/``CHUNK_OVERLAP``), the CLI offers
and ``genai_runtime.rag.chunking`` applies.

Chosen on the hard set (``bench/data/rag_hard``; ``bench/results/rag.json``): passages of 1200
characters with 150 shared, embedded as 500-character windows with 100 shared (all-MiniLM-L6-v2 reads
256 word pieces; a window and its heading path come to about 140).
"""

DEFAULT_CHUNK_SIZE = 1200
DEFAULT_CHUNK_OVERLAP = 150
EMBED_WINDOW = 500
EMBED_WINDOW_OVERLAP = 100
MAX_CHUNK_SIZE = 100_000
