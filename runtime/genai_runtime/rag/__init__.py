"""Retrieval-augmented generation: load, chunk, embed, index, retrieve, augment, generate.

Modules by concept, each importing its heavy libraries only when used:

    documents   files (text, Markdown, HTML, PDF) and S3 objects -> langchain ``Document``s
    chunking    splitting with stable chunk ids (source + position) and content hashes
    embeddings  local MiniLM, a SageMaker embedding endpoint, Bedrock Titan
    search      the search request (similarity / MMR / hybrid, k, filters), validated
    faiss_index the embedded vector index (FAISS, JSON docstore, no pickle)
    opensearch  the deployed vector index (OpenSearch k-NN, the same interface)
    ingest      idempotent ingestion: added / updated / unchanged / deleted
    prompts     the RAG prompt template
    generate    generators: a ``genai serve`` URL, a SageMaker LMI endpoint, Bedrock
    chain       retrieve -> augment -> generate, with sources and scores
"""
