"""``KnowledgeBase``: a Knowledge Base for Amazon Bedrock over a Serverless ``VectorStore``.

Bedrock ingests the documents of an S3 bucket (its data source) into the vector store's index,
embedding them with a Bedrock model, and agents retrieve from it. Its role may invoke that one
embedding model, read that bucket, and write that index (through ``VectorStore.grant_write``).
Bedrock knowledge bases write to OpenSearch Serverless collections; a managed-domain store is
refused with the reason.

The data source reads ``documents_prefix`` only. On a bucket an ``IngestionPipeline`` also indexes, the
two prefixes must be disjoint (checked at synth time): the knowledge base and the pipeline write
different layouts into the store, and a document under both would be indexed twice.
"""

from __future__ import annotations

from typing import cast

from aws_cdk import Names, Stack
from aws_cdk import aws_bedrock as bedrock
from aws_cdk import aws_iam as iam
from aws_cdk import aws_opensearchserverless as aoss
from aws_cdk import aws_s3 as s3
from constructs import Construct

from genai_contracts.vector_index import BEDROCK_METADATA_FIELD, TEXT_FIELD, VECTOR_FIELD

from ._validation import invalid
from .bedrock_agent import KnowledgeBaseAttachment
from .bedrock_iam import EMBEDDING_MODELS, bedrock_service_role, foundation_model_arn, parse_model_id
from .ingestion_pipeline import overlapping_prefix
from .nag import allow
from .vector_store import VectorStore

EMBEDDING_DIMENSIONS = {model_id: output.dimensions for model_id, output in EMBEDDING_MODELS.items()}


class KnowledgeBase(Construct):
    """Escape hatches: ``knowledge_base``, ``data_source``, ``role``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vector_store: VectorStore,
        documents: s3.IBucket,
        documents_prefix: str = "",
        embedding_model_id: str = "amazon.titan-embed-text-v2:0",
        description: str = "Documents to answer questions from",
    ) -> None:
        """
        :param vector_store: a ``VectorStore`` with ``ServerlessDeployment()`` whose ``dimension`` the embedding
            model produces (Titan v2: 1024, 512 or 256).
        :param documents: the bucket the S3 data source ingests.
        :param documents_prefix: ingest only keys under this prefix; default the whole bucket. On an
            ``IngestionPipeline``'s bucket it must not overlap the pipeline's ``documents_prefix``.
        :param embedding_model_id: the Bedrock embedding model: ``amazon.titan-embed-text-v2:0`` (default),
            ``amazon.titan-embed-text-v1``, ``cohere.embed-english-v3`` or ``cohere.embed-multilingual-v3``.
        :param description: of the knowledge base, and what tells the agent when to retrieve from it.
        """
        super().__init__(scope, construct_id)
        if not isinstance(vector_store, VectorStore):
            raise invalid("vector_store", vector_store, "pass a VectorStore.")
        if not vector_store.serverless:
            raise invalid(
                "vector_store",
                "a managed domain",
                "Bedrock knowledge bases here write to OpenSearch Serverless: build the VectorStore "
                "with deployment=ServerlessDeployment().",
            )
        if not isinstance(documents_prefix, str):
            raise invalid("documents_prefix", documents_prefix, "give a key prefix such as 'knowledge-base/'.")
        _check_disjoint(self, documents, documents_prefix)
        parse_model_id("embedding_model_id", embedding_model_id, profiles=False)
        dimensions = EMBEDDING_DIMENSIONS.get(embedding_model_id)
        if dimensions is None:
            raise invalid(
                "embedding_model_id", embedding_model_id, f"choose one of {', '.join(sorted(EMBEDDING_DIMENSIONS))}."
            )
        if vector_store.dimension not in dimensions:
            raise invalid(
                "embedding_model_id",
                embedding_model_id,
                f"it embeds into {dimensions} dimensions but the vector store holds {vector_store.dimension}.",
            )
        stack = Stack.of(self)
        model_arn = foundation_model_arn(stack, embedding_model_id)
        # Bedrock embeds at the model's default size unless told otherwise: say so when the store holds another.
        embedding_configuration = None
        if vector_store.dimension != EMBEDDING_MODELS[embedding_model_id].default:
            embedding_configuration = bedrock.CfnKnowledgeBase.EmbeddingModelConfigurationProperty(
                bedrock_embedding_model_configuration=bedrock.CfnKnowledgeBase.BedrockEmbeddingModelConfigurationProperty(
                    dimensions=vector_store.dimension
                )
            )
        self.role = bedrock_service_role(self, "Role", "knowledge-base", "Bedrock knowledge base: embeds and indexes")
        self.role.add_to_policy(iam.PolicyStatement(actions=["bedrock:InvokeModel"], resources=[model_arn]))
        self.role.add_to_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[documents.bucket_arn]))
        allow(
            self.role,
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[documents.arn_for_objects(f"{documents_prefix}*")]
            ),
            "The knowledge base ingests whichever documents land under its prefix: objects are not known in advance.",
        )
        if documents.encryption_key is not None:
            self.role.add_to_policy(
                iam.PolicyStatement(actions=["kms:Decrypt"], resources=[documents.encryption_key.key_arn])
            )
        vector_store.grant_write(self.role)
        self.knowledge_base = bedrock.CfnKnowledgeBase(
            self,
            "KnowledgeBase",
            name=Names.unique_resource_name(self, max_length=100, separator="-"),
            description=description,
            role_arn=self.role.role_arn,
            knowledge_base_configuration=bedrock.CfnKnowledgeBase.KnowledgeBaseConfigurationProperty(
                type="VECTOR",
                vector_knowledge_base_configuration=bedrock.CfnKnowledgeBase.VectorKnowledgeBaseConfigurationProperty(
                    embedding_model_arn=model_arn, embedding_model_configuration=embedding_configuration
                ),
            ),
            storage_configuration=bedrock.CfnKnowledgeBase.StorageConfigurationProperty(
                type="OPENSEARCH_SERVERLESS",
                opensearch_serverless_configuration=bedrock.CfnKnowledgeBase.OpenSearchServerlessConfigurationProperty(
                    collection_arn=cast(aoss.CfnCollection, vector_store.collection).attr_arn,
                    vector_index_name=vector_store.index_name,
                    field_mapping=bedrock.CfnKnowledgeBase.OpenSearchServerlessFieldMappingProperty(
                        vector_field=VECTOR_FIELD, text_field=TEXT_FIELD, metadata_field=BEDROCK_METADATA_FIELD
                    ),
                ),
            ),
        )
        # The index and the data-access policy naming this role (in this stack when the store is in another) first.
        self.knowledge_base.node.add_dependency(vector_store.index_resource, vector_store.access_policy_for(self.role))
        self.data_source = bedrock.CfnDataSource(
            self,
            "Documents",
            knowledge_base_id=self.knowledge_base.attr_knowledge_base_id,
            name="documents",
            data_deletion_policy="RETAIN",
            data_source_configuration=bedrock.CfnDataSource.DataSourceConfigurationProperty(
                type="S3",
                s3_configuration=bedrock.CfnDataSource.S3DataSourceConfigurationProperty(
                    bucket_arn=documents.bucket_arn, inclusion_prefixes=[documents_prefix] if documents_prefix else None
                ),
            ),
            vector_ingestion_configuration=bedrock.CfnDataSource.VectorIngestionConfigurationProperty(
                chunking_configuration=bedrock.CfnDataSource.ChunkingConfigurationProperty(
                    chunking_strategy="FIXED_SIZE",
                    fixed_size_chunking_configuration=bedrock.CfnDataSource.FixedSizeChunkingConfigurationProperty(
                        max_tokens=300, overlap_percentage=20
                    ),
                )
            ),
        )
        self.attachment = KnowledgeBaseAttachment(
            self.knowledge_base.attr_knowledge_base_id, self.knowledge_base.attr_knowledge_base_arn, description
        )


def _check_disjoint(scope: Construct, documents: s3.IBucket, prefix: str) -> None:
    """An IngestionPipeline's bucket (it creates its own, so it exists before this) and a prefix overlapping
    the pipeline's are refused: the same objects indexed twice, in two layouts."""
    taken = overlapping_prefix(scope, documents, prefix)
    if taken is None:
        return
    raise ValueError(
        f"documents_prefix={prefix!r} is invalid: an IngestionPipeline indexes {taken or 'the whole bucket'!r} "
        f"of {documents.node.path} into a vector store too; give the knowledge base and the pipeline disjoint "
        "prefixes (e.g. IngestionPipeline(documents_prefix='documents/'), KnowledgeBase(documents_prefix="
        "'knowledge-base/')), or separate buckets."
    )
