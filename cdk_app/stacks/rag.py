"""RAG: the vector store, the ingestion pipeline and the query API of the environment."""

from __future__ import annotations

from aws_cdk import CfnOutput
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from constructs import Construct

from genai_cdk import IngestionPipeline, KnowledgeBase, LmiEndpoint, RagApi, TextGenerator, Throttle, VectorStore

from ..config import EnvironmentConfig
from .base import EnvironmentStack

KNOWLEDGE_BASE_PREFIX = "knowledge-base/"


class RagStack(EnvironmentStack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        vpc: ec2.IVpc,
        llm: LmiEndpoint | None = None,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, config=config, **kwargs)
        rag = config.rag
        store = rag.vector_store
        # An existing environment key (kms.key_arn) must already let CloudWatch Logs and S3 use it.
        key = kms.Key.from_key_arn(self, "Key", config.kms.key_arn) if config.kms.key_arn else None
        self.vector_store = VectorStore(
            self,
            "VectorStore",
            vpc=vpc,
            dimension=store.dimension,
            index_name=store.index_name,
            metadata_fields=store.metadata_fields,
            deployment=store.build(),
            encryption_key=key,
        )
        embeddings = rag.embeddings.build()
        self.ingestion = IngestionPipeline(
            self,
            "Ingestion",
            vector_store=self.vector_store,
            vpc=vpc,
            embeddings=embeddings,
            documents_prefix=rag.documents_prefix,
            chunk_size=rag.chunk_size,
            chunk_overlap=rag.chunk_overlap,
            max_concurrency=rag.max_concurrency,
        )
        generator = None
        if rag.generator == "inference-endpoint":
            generator = TextGenerator.lmi_endpoint(llm)
        elif rag.generator:
            generator = TextGenerator.bedrock(rag.generator.removeprefix("bedrock:"))
        self.api = RagApi(
            self,
            "Api",
            vector_store=self.vector_store,
            vpc=vpc,
            embeddings=embeddings,
            generator=generator,
            throttle=Throttle(rag.throttle_rate_limit, rag.throttle_burst_limit),
            waf=rag.waf,
            default_search_type=rag.default_search_type,
        )
        self.knowledge_base = None
        if config.agents is not None and config.agents.knowledge_base:
            # Beside its store (it could live in the agents stack as well: a role from another stack gets its own
            # data-access policy on its side of the reference). It reads KNOWLEDGE_BASE_PREFIX of the documents
            # bucket, the ingestion pipeline rag.documents_prefix: never the same objects (checked at synth).
            self.knowledge_base = KnowledgeBase(
                self,
                "KnowledgeBase",
                vector_store=self.vector_store,
                documents=self.ingestion.bucket,
                documents_prefix=KNOWLEDGE_BASE_PREFIX,
                embedding_model_id=embeddings_model_id(rag),
            )
        CfnOutput(self, "DocumentsBucket", value=self.ingestion.bucket.bucket_name)
        CfnOutput(self, "DocumentsPrefix", value=rag.documents_prefix or "(the whole bucket)")
        CfnOutput(self, "QueryUrl", value=self.api.url)
        CfnOutput(self, "IndexUrl", value=self.vector_store.index_url)


def embeddings_model_id(rag) -> str:
    """The knowledge base embeds with the RAG section's Bedrock model (Titan v2 by default)."""
    return rag.embeddings.bedrock_model or "amazon.titan-embed-text-v2:0"
