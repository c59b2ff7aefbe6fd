"""Amazon Bedrock: model request/response bodies per family, a retrying client, custom-model jobs.

bodies         request and response bodies per model family (Titan, Claude, Llama, Cohere, SDXL)
client         invoke_model (and streaming), Converse, embeddings, images; typed errors (retries: genai_runtime.aws)
customization  validate a prompt/completion dataset, upload it, run a customization job to its end
"""
