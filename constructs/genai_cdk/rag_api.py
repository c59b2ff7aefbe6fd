"""``RagApi``: ``POST /query`` on API Gateway -> retrieve, augment, generate.

The front is a ``JsonPostApi`` (IAM or Cognito auth, a JSON-schema request model, throttling,
access logs, optional WAF). The function runs ``lambdas.rag_query`` in the VPC with read access to
the ``VectorStore``.

A query that names no ``search_type`` gets the deployment's default (the function's
``DEFAULT_SEARCH_TYPE`` variable): ``similarity``, on either store. OpenSearch Serverless has no
search pipelines and so no hybrid query; a managed domain (2.19) fuses its hybrid query by RRF with
equal weights, and on the hard set (bench/results/rag.json) equal weights score below vectors alone
(hit@3 0.73 vs 0.75; the local hybrid's measured keyword weight 0.1 scores 0.82). Weighted RRF
(``combination.parameters.weights``) needs a newer engine; until then ``hybrid`` is opt-in here.
"""

from __future__ import annotations

from typing import get_args

from aws_cdk import Duration, Stack
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from genai_contracts import names
from genai_contracts.api_gateway import request_schema
from genai_contracts.api_requests import QueryRequest, SearchType

from ._validation import invalid, require_int
from .functions import allow_logs_delivery, vpc_function
from .lambda_image import QUERY_HANDLER
from .rag_models import EmbeddingModel, TextGenerator, require_fit
from .rest_api import JsonPostApi, Throttle
from .vector_store import VectorStore


class RagApi(Construct):
    """A private-by-IAM RAG query API.

    Minimal use::

        api = RagApi(self, "Rag", vector_store=store, vpc=vpc,
                     embeddings=EmbeddingModel.sagemaker("minilm-embeddings"),
                     generator=TextGenerator.lmi_endpoint(llm))
        api.grant_invoke(client_role)

    Escape hatches: ``api``, ``function``, ``access_logs``, ``usage_plan``, ``web_acl``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vector_store: VectorStore,
        vpc: ec2.IVpc,
        embeddings: EmbeddingModel,
        generator: TextGenerator | None = None,
        user_pool: cognito.IUserPool | None = None,
        throttle: Throttle | None = None,
        waf: bool = False,
        max_new_tokens: int = 256,
        default_search_type: SearchType | None = None,
        encryption_key: kms.IKey | None = None,
        code: lambda_.DockerImageCode | None = None,
    ) -> None:
        """
        :param vector_store: what questions are answered from (the function gets ``grant_read``).
        :param vpc: the function runs in its private subnets.
        :param embeddings: the model the store was filled with (same spec as the ``IngestionPipeline``'s).
        :param generator: ``TextGenerator.lmi_endpoint(llm)`` or ``.bedrock(model_id)``; None: retrieval only.
        :param user_pool: authorize with Cognito user pool tokens instead of IAM (SigV4).
        :param throttle: stage and usage-plan limits; default 50 requests/s, burst 100.
        :param waf: attach a WAF web ACL (managed common/bad-input rules, 1,000 requests per 5 minutes per IP).
        :param max_new_tokens: answer length.
        :param default_search_type: what a query naming no ``search_type`` runs (default ``similarity``;
            ``hybrid`` only on a managed domain, whose pipeline fuses with equal weights).
        :param encryption_key: KMS key for logs and the function environment; default the vector store's key.
        :param code: the function image; default built from the installed packages.
            It runs ``lambdas.rag_query.handler``.
        """
        super().__init__(scope, construct_id)
        self.validate_props(vector_store, embeddings, generator, max_new_tokens, default_search_type)
        self.default_search_type = self.search_type_for(vector_store, default_search_type)
        vector_store.require_grantable_from(self)
        stack = Stack.of(self)
        self.key = encryption_key or vector_store.key
        allow_logs_delivery(self.key)
        environment = {
            names.INDEX_URL: vector_store.index_url,
            names.EMBEDDINGS: embeddings.spec,
            names.MAX_NEW_TOKENS: str(max_new_tokens),
            names.DEFAULT_SEARCH_TYPE: self.default_search_type,
            names.POWERTOOLS_SERVICE_NAME: names.RAG_QUERY_SERVICE,
        }
        if generator is not None:
            environment[names.GENERATOR] = generator.spec
        self.function = vpc_function(
            self,
            "Function",
            code=code,
            handler=QUERY_HANDLER,
            vpc=vpc,
            key=self.key,
            timeout=Duration.seconds(30),
            memory_size=1024,
            environment=environment,
        )
        vector_store.grant_read(self.function)
        embeddings.grant(self.function, stack)
        if generator is not None:
            generator.grant(self.function, stack)

        self.front = JsonPostApi(
            self,
            "Front",
            function=self.function,
            path="query",
            request_schema=request_schema(QueryRequest),
            model_name=QueryRequest.__name__,
            key=self.key,
            description=f"{self.node.path}: retrieval-augmented generation",
            throttle=throttle,
            user_pool=user_pool,
            waf=waf,
        )
        self.api, self.access_logs, self.query_method = self.front.api, self.front.access_logs, self.front.method
        self.usage_plan, self.web_acl = self.front.usage_plan, self.front.web_acl

    @staticmethod
    def validate_props(vector_store, embeddings, generator, max_new_tokens, default_search_type=None) -> None:
        require_fit(vector_store, embeddings, "query with the model the store was filled with")
        if generator is not None and not isinstance(generator, TextGenerator):
            raise invalid("generator", generator, "pass TextGenerator.lmi_endpoint(...) or TextGenerator.bedrock(...).")
        require_int("max_new_tokens", max_new_tokens, minimum=1, maximum=4096)
        if default_search_type is not None and default_search_type not in get_args(SearchType):
            raise invalid(
                "default_search_type", default_search_type, f"choose one of {', '.join(get_args(SearchType))}."
            )
        if default_search_type == "hybrid" and vector_store.serverless:
            raise invalid(
                "default_search_type",
                default_search_type,
                "OpenSearch Serverless has no search pipelines, so it cannot run hybrid search; use similarity or mmr "
                "(or a managed-domain VectorStore).",
            )

    @staticmethod
    def search_type_for(vector_store: VectorStore, default_search_type: SearchType | None = None) -> SearchType:
        """The search type of a query that names none: one ``vector_store`` can run."""
        if default_search_type is not None:
            return default_search_type
        return "similarity"  # see the module docstring: measured, and runnable on both stores

    @property
    def url(self) -> str:
        return self.front.url

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        """Allow ``grantee`` to call ``POST /query`` on this stage (IAM auth)."""
        return self.front.grant_invoke(grantee)
