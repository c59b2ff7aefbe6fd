"""``JsonPostApi``: one validated JSON ``POST`` on a REST API in front of a Lambda function.

What every API of this library shares: IAM auth by default (Cognito user pools as an option), a
JSON-schema request model API Gateway enforces before the function runs, stage and usage-plan
throttling, JSON access logs in a KMS-encrypted log group, execution logs, X-Ray, and an optional
WAF web ACL (AWS managed common and bad-input rules plus a per-IP rate limit).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from genai_contracts.api_gateway import DRAFT4, SUPPORTED_KEYWORDS

from ._validation import invalid, require_int
from .functions import allow_logs_delivery
from .nag import acknowledge

_SCHEMA_TYPES = {kind.value.lower(): kind for kind in apigw.JsonSchemaType}
_SCHEMA_MAPS = ("properties", "patternProperties")
_SCHEMA_VALUES = ("additionalProperties", "items")


def json_schema(node: dict, root: bool = True) -> apigw.JsonSchema:
    """A JSON Schema (draft 4) dict as API Gateway's typed ``JsonSchema``.

    Takes the keywords ``genai_contracts.api_gateway.request_schema`` writes (its ``SUPPORTED_KEYWORDS``)
    and refuses any other, so a model never reaches API Gateway with a constraint silently dropped.
    """
    props: dict = {}
    for key, value in node.items():
        if key not in SUPPORTED_KEYWORDS:
            raise invalid("request_schema", key, f"API Gateway models take {', '.join(sorted(SUPPORTED_KEYWORDS))}.")
        name = re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()
        if key == "$schema":
            if value != DRAFT4:
                raise invalid("request_schema", value, f"API Gateway models are JSON Schema draft 4 ({DRAFT4}).")
            continue
        if key == "type":
            value = [_SCHEMA_TYPES[k] for k in value] if isinstance(value, list) else _SCHEMA_TYPES[value]
        elif key in _SCHEMA_MAPS:
            value = {child: json_schema(schema, False) for child, schema in value.items()}
        elif key in _SCHEMA_VALUES and isinstance(value, dict):
            value = json_schema(value, False)
        props[name] = value
    return apigw.JsonSchema(schema=apigw.JsonSchemaVersion.DRAFT4 if root else None, **props)


@dataclass(frozen=True)
class Throttle:
    """Steady requests per second and burst, for the stage and the usage plan.

    :param rate_limit: steady requests per second; default 50.
    :param burst_limit: requests allowed in a burst above it; default 100.
    """

    rate_limit: float = 50
    burst_limit: int = 100

    def validate(self) -> None:
        if (
            isinstance(self.rate_limit, bool)
            or not isinstance(self.rate_limit, int | float)
            or not 0 < self.rate_limit <= 10_000
        ):
            raise invalid("throttle.rate_limit", self.rate_limit, "use 0 < rate <= 10000 requests per second.")
        require_int("throttle.burst_limit", self.burst_limit, minimum=1, maximum=5000)


class JsonPostApi(Construct):
    """``POST /PATH`` with a validated JSON body, handled by ``function``.

    IAM auth (or ``user_pool``), a request model API Gateway enforces, stage and usage-plan throttling,
    KMS-encrypted access logs, X-Ray, optional WAF. ``path`` is the resource (e.g. ``query``),
    ``request_schema`` the body's JSON Schema and ``model_name`` its API Gateway model's name, ``key`` the KMS key
    of the access logs, ``description`` the API's, ``throttle`` a ``Throttle`` (default ``Throttle()``),
    ``user_pool`` a Cognito user pool to authorize with instead of IAM, ``waf`` adds a web ACL (managed common
    and bad-input rules, a per-IP rate limit).

    Escape hatches: ``api``, ``method``, ``access_logs``, ``usage_plan``, ``web_acl``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function: lambda_.IFunction,
        path: str,
        request_schema: dict,
        model_name: str,
        key: kms.IKey,
        description: str,
        throttle: Throttle | None = None,
        user_pool: cognito.IUserPool | None = None,
        waf: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        throttle = throttle or Throttle()
        if not isinstance(throttle, Throttle):
            raise invalid("throttle", throttle, "pass Throttle(rate_limit=..., burst_limit=...).")
        throttle.validate()
        self.path = path
        allow_logs_delivery(key)
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            encryption_key=key,
            retention=logs.RetentionDays.ONE_YEAR,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.api = apigw.RestApi(
            self,
            "Api",
            description=description,
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
            model_name, content_type="application/json", model_name=model_name, schema=json_schema(request_schema)
        )
        validator = self.api.add_request_validator("Body", validate_request_body=True, validate_request_parameters=True)
        auth: dict = {"authorization_type": apigw.AuthorizationType.IAM}
        self.user_pool = user_pool
        if user_pool is not None:
            auth = {
                "authorization_type": apigw.AuthorizationType.COGNITO,
                "authorizer": apigw.CognitoUserPoolsAuthorizer(self, "Authorizer", cognito_user_pools=[user_pool]),
            }
        self.method = self.api.root.add_resource(path.strip("/")).add_method(
            "POST",
            apigw.LambdaIntegration(function, timeout=Duration.seconds(29)),
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

    @property
    def url(self) -> str:
        return self.api.url_for_path(f"/{self.path.strip('/')}")

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        """Allow ``grantee`` to call the method on this stage (IAM auth).

        Refused on an API built with ``user_pool=``: under a Cognito authorizer API Gateway checks the
        caller's user-pool token and ignores ``execute-api:Invoke``, so the grant would change nothing.
        """
        if self.user_pool is not None:
            principal = getattr(grantee, "node", None)
            raise invalid(
                "grant_invoke",
                principal.path if principal is not None else grantee,
                f"{self.node.path} authorizes with Cognito user pool tokens (user_pool=), so API Gateway ignores "
                "IAM permissions; add the caller to the user pool and send its ID (or access) token in the "
                "Authorization header, or build the API without user_pool= for IAM (SigV4) auth.",
            )
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["execute-api:Invoke"],
            resource_arns=[
                self.api.arn_for_execute_api("POST", f"/{self.path.strip('/')}", self.api.deployment_stage.stage_name)
            ],
        )

    def _web_acl(self) -> wafv2.CfnWebACL:
        def visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
            return wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True, metric_name=name, sampled_requests_enabled=True
            )

        def managed(priority: int, name: str) -> wafv2.CfnWebACL.RuleProperty:
            statement = wafv2.CfnWebACL.StatementProperty(
                managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                    vendor_name="AWS", name=name
                )
            )
            return wafv2.CfnWebACL.RuleProperty(
                name=name,
                priority=priority,
                statement=statement,
                override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                visibility_config=visibility(name),
            )

        rate_limit = wafv2.CfnWebACL.RuleProperty(
            name="RateLimitPerIp",
            priority=2,
            action=wafv2.CfnWebACL.RuleActionProperty(block={}),
            statement=wafv2.CfnWebACL.StatementProperty(
                rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(limit=1000, aggregate_key_type="IP")
            ),
            visibility_config=visibility("RateLimitPerIp"),
        )
        acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=visibility(self.path.strip("/") + "-api"),
            rules=[
                managed(0, "AWSManagedRulesCommonRuleSet"),
                managed(1, "AWSManagedRulesKnownBadInputsRuleSet"),
                rate_limit,
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
