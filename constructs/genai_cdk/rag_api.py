"""``RagApi``: ``POST /query`` on API Gateway -> retrieve, augment, generate.

REST API with IAM auth by default (Cognito user pools as an option), a JSON-schema request model
that API Gateway enforces before the function runs, stage and usage-plan throttling, JSON access
logs in a KMS-encrypted log group, execution logs, X-Ray, and an optional WAF web ACL (AWS managed
common and bad-input rules plus a per-IP rate limit). The function runs ``lambdas.rag_query`` in
the VPC with read access to the ``VectorStore``.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from ._validation import invalid, require_int
from .functions import allow_logs_delivery, vpc_function
from .lambda_image import QUERY_HANDLER, rag_lambda_code
from .nag import acknowledge
from .rag_models import EmbeddingModel, TextGenerator
from .vector_store import VectorStore

# The request model API Gateway enforces (JSON Schema draft 4); lambdas/rag_query.QueryRequest is the
# same contract in pydantic, and a test feeds both the same good and bad requests.
QUERY_REQUEST_SCHEMA = {
    "type": "object",
    "required": ["question"],
    "additionalProperties": False,
    "properties": {
        "question": {"type": "string", "minLength": 1, "maxLength": 4000, "pattern": "\\S"},
        "k": {"type": "integer", "minimum": 1, "maximum": 50},
        "search_type": {"type": "string", "enum": ["similarity", "mmr", "hybrid"]},
        "fetch_k": {"type": "integer", "minimum": 1, "maximum": 1000},
        "lambda_mult": {"type": "number", "minimum": 0, "maximum": 1},
        "filter": {
            "type": "object",
            "maxProperties": 8,
            "additionalProperties": False,
            "patternProperties": {"^[A-Za-z_][A-Za-z0-9_]{0,63}$": {"type": ["string", "number", "boolean"]}},
        },
        "generate": {"type": "boolean"},
    },
}
_SCHEMA_TYPES = {
    "object": apigw.JsonSchemaType.OBJECT,
    "string": apigw.JsonSchemaType.STRING,
    "integer": apigw.JsonSchemaType.INTEGER,
    "number": apigw.JsonSchemaType.NUMBER,
    "boolean": apigw.JsonSchemaType.BOOLEAN,
}


def _json_schema(node: dict, root: bool = True) -> apigw.JsonSchema:
    """``QUERY_REQUEST_SCHEMA`` as API Gateway's typed ``JsonSchema``."""
    kinds = node.get("type")
    kind = [_SCHEMA_TYPES[k] for k in kinds] if isinstance(kinds, list) else _SCHEMA_TYPES.get(kinds)
    props: dict = {}
    if kind is not None:
        props["type"] = kind
    simple = {
        "required": "required",
        "minLength": "min_length",
        "maxLength": "max_length",
        "pattern": "pattern",
        "minimum": "minimum",
        "maximum": "maximum",
        "enum": "enum",
        "maxProperties": "max_properties",
    }
    props.update({simple[key]: value for key, value in node.items() if key in simple})
    if "additionalProperties" in node:
        props["additional_properties"] = node["additionalProperties"]
    if "properties" in node:
        props["properties"] = {name: _json_schema(child, False) for name, child in node["properties"].items()}
    if "patternProperties" in node:
        props["pattern_properties"] = {
            name: _json_schema(child, False) for name, child in node["patternProperties"].items()
        }
    return apigw.JsonSchema(schema=apigw.JsonSchemaVersion.DRAFT4 if root else None, **props)


@dataclass(frozen=True)
class Throttle:
    """Steady requests per second and burst, for the stage and the usage plan."""

    rate_limit: float = 50
    burst_limit: int = 100


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
        :param encryption_key: KMS key for logs and the function environment; default the vector store's key.
        :param code: the function image; default built from this repository.
        """
        super().__init__(scope, construct_id)
        throttle = throttle or Throttle()
        self.validate_props(vector_store, embeddings, generator, throttle, max_new_tokens)
        stack = Stack.of(self)
        self.key = encryption_key or vector_store.key
        allow_logs_delivery(self.key)
        environment = {
            "INDEX_URL": vector_store.index_url,
            "EMBEDDINGS": embeddings.spec,
            "MAX_NEW_TOKENS": str(max_new_tokens),
            "POWERTOOLS_SERVICE_NAME": "rag-query",
        }
        if generator is not None:
            environment["GENERATOR"] = generator.spec
        self.function = vpc_function(
            self,
            "Function",
            code=code or rag_lambda_code(QUERY_HANDLER),
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

        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            encryption_key=self.key,
            retention=logs.RetentionDays.ONE_YEAR,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.api = apigw.RestApi(
            self,
            "Api",
            description=f"{self.node.path}: retrieval-augmented generation",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
            deploy_options=apigw.StageOptions(
                stage_name="v1",
                tracing_enabled=True,
                metrics_enabled=True,
                data_trace_enabled=False,
                logging_level=apigw.MethodLoggingLevel.INFO,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
                throttling_rate_limit=throttle.rate_limit,
                throttling_burst_limit=throttle.burst_limit,
            ),
        )
        model = self.api.add_model(
            "QueryRequest",
            content_type="application/json",
            model_name="QueryRequest",
            schema=_json_schema(QUERY_REQUEST_SCHEMA),
        )
        validator = self.api.add_request_validator("Body", validate_request_body=True, validate_request_parameters=True)
        auth: dict = {"authorization_type": apigw.AuthorizationType.IAM}
        if user_pool is not None:
            auth = {
                "authorization_type": apigw.AuthorizationType.COGNITO,
                "authorizer": apigw.CognitoUserPoolsAuthorizer(self, "Authorizer", cognito_user_pools=[user_pool]),
            }
        self.query_method = self.api.root.add_resource("query").add_method(
            "POST",
            apigw.LambdaIntegration(self.function, timeout=Duration.seconds(29)),
            request_models={"application/json": model},
            request_validator=validator,
            **auth,
        )
        self.usage_plan = self.api.add_usage_plan(
            "UsagePlan",
            throttle=apigw.ThrottleSettings(rate_limit=throttle.rate_limit, burst_limit=throttle.burst_limit),
            api_stages=[apigw.UsagePlanPerApiStage(api=self.api, stage=self.api.deployment_stage)],
        )
        self.web_acl = self._web_acl() if waf else None
        self._acknowledge(user_pool is not None, waf)

    @staticmethod
    def validate_props(vector_store, embeddings, generator, throttle, max_new_tokens) -> None:
        if not isinstance(vector_store, VectorStore):
            raise invalid("vector_store", vector_store, "pass a VectorStore.")
        if not isinstance(embeddings, EmbeddingModel):
            raise invalid(
                "embeddings", embeddings, "pass EmbeddingModel.sagemaker(...) or EmbeddingModel.bedrock(...)."
            )
        if embeddings.dimension != vector_store.dimension:
            raise invalid(
                "embeddings",
                embeddings.spec,
                f"it gives {embeddings.dimension}-dimension vectors but the vector store's index holds "
                f"{vector_store.dimension}; query with the model the store was filled with.",
            )
        if generator is not None and not isinstance(generator, TextGenerator):
            raise invalid("generator", generator, "pass TextGenerator.lmi_endpoint(...) or TextGenerator.bedrock(...).")
        if not isinstance(throttle, Throttle) or not 0 < throttle.rate_limit <= 10_000:
            raise invalid("throttle.rate_limit", getattr(throttle, "rate_limit", throttle), "use 0 < rate <= 10000.")
        require_int("throttle.burst_limit", throttle.burst_limit, minimum=1, maximum=5000)
        require_int("max_new_tokens", max_new_tokens, minimum=1, maximum=4096)

    @property
    def url(self) -> str:
        return self.api.url_for_path("/query")

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        """Allow ``grantee`` to call ``POST /query`` on this stage (IAM auth)."""
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["execute-api:Invoke"],
            resource_arns=[self.api.arn_for_execute_api("POST", "/query", self.api.deployment_stage.stage_name)],
        )

    def _web_acl(self) -> wafv2.CfnWebACL:
        def visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
            return wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True, metric_name=name, sampled_requests_enabled=True
            )

        def managed(priority: int, name: str) -> wafv2.CfnWebACL.RuleProperty:
            return wafv2.CfnWebACL.RuleProperty(
                name=name,
                priority=priority,
                override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                        vendor_name="AWS", name=name
                    )
                ),
                visibility_config=visibility(name),
            )

        acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=visibility("rag-api"),
            rules=[
                managed(0, "AWSManagedRulesCommonRuleSet"),
                managed(1, "AWSManagedRulesKnownBadInputsRuleSet"),
                wafv2.CfnWebACL.RuleProperty(
                    name="RateLimitPerIp",
                    priority=2,
                    action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                            limit=1000, aggregate_key_type="IP"
                        )
                    ),
                    visibility_config=visibility("RateLimitPerIp"),
                ),
            ],
        )
        wafv2.CfnWebACLAssociation(
            self, "WebAclAssociation", web_acl_arn=acl.attr_arn, resource_arn=self.api.deployment_stage.stage_arn
        )
        return acl

    def _acknowledge(self, cognito_auth: bool, waf: bool) -> None:
        if not cognito_auth:
            acknowledge(
                self.api,
                "AwsSolutions-COG4",
                "The API authorizes with IAM (SigV4) by default; pass user_pool= for Cognito tokens.",
            )
        if not waf:
            acknowledge(
                self.api,
                "AwsSolutions-APIG3",
                "WAF is off by configuration (a private, IAM-authorized API in a non-production "
                "environment); pass waf=True to attach the managed rules and per-IP rate limit.",
            )
        acknowledge(
            self.api,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]",
            "API Gateway's account-level logging role must carry this AWS managed policy to write "
            "execution logs; it grants only CloudWatch Logs actions.",
        )
