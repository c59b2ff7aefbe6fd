"""Lambda handlers. Each module is one function's entry point; all share the RAG image
(``genai_cdk/assets/lambda_image/Dockerfile``) and call the same ``genai_runtime`` code the CLI runs.
The genai-cdk wheel ships this package, and the constructs build the image from the installed copy."""
