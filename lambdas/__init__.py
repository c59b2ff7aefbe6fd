"""Lambda handlers. Each module is one function's entry point; all share the RAG image
(``containers/lambda/Dockerfile``) and call the same ``genai_runtime`` code the CLI runs."""
