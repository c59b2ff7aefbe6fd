"""``AgentApi``: ``POST /invoke`` on API Gateway -> ``InvokeAgent`` on a ``BedrockAgent``'s alias.

The front is a ``JsonPostApi`` (IAM or Cognito auth, a JSON-schema request model, throttling,
access logs, optional WAF); the VPC Lambda runs ``lambdas.agent_api`` and may invoke this one
agent alias only.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from genai_contracts import names
from genai_contracts.api_gateway import request_schema
from genai_contracts.api_requests import InvokeRequest

from ._validation import invalid
from .bedrock_agent import BedrockAgent
from .functions import vpc_function
from .lambda_image import AGENT_API_HANDLER
from .rest_api import JsonPostApi, Throttle


class AgentApi(Construct):
    """Escape hatches: ``front`` (``api``, ``method``...), ``function``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        agent: BedrockAgent,
        vpc: ec2.IVpc,
        encryption_key: kms.IKey | None = None,
        throttle: Throttle | None = None,
        user_pool: cognito.IUserPool | None = None,
        waf: bool = False,
        code: lambda_.DockerImageCode | None = None,
    ) -> None:
        """
        :param agent: the ``BedrockAgent`` whose alias the API invokes.
        :param vpc: the VPC whose private subnets the function runs in.
        :param encryption_key: KMS key for the function's environment and the API's logs; default the agent's key.
        :param throttle: stage and usage-plan limits; default ``Throttle()``.
        :param user_pool: authorize callers with this Cognito user pool instead of IAM.
        :param waf: attach a WAF web ACL (managed common and bad-input rules, a per-IP rate limit); default off.
        :param code: the function's image; default built from the installed packages. It runs
            ``lambdas.agent_api.handler``.
        """
        super().__init__(scope, construct_id)
        if not isinstance(agent, BedrockAgent):
            raise invalid("agent", agent, "pass a BedrockAgent.")
        key = encryption_key or agent.key
        self.function = vpc_function(
            self,
            "Function",
            code=code,
            handler=AGENT_API_HANDLER,
            vpc=vpc,
            key=key,
            timeout=Duration.seconds(30),
            memory_size=512,
            environment={
                names.AGENT_ID: agent.agent_id,
                names.AGENT_ALIAS_ID: agent.alias_id,
                names.POWERTOOLS_SERVICE_NAME: names.AGENT_API_SERVICE,
            },
        )
        agent.grant_invoke(self.function)
        self.front = JsonPostApi(
            self,
            "Front",
            function=self.function,
            path="invoke",
            request_schema=request_schema(InvokeRequest),
            model_name=InvokeRequest.__name__,
            key=key,
            description=f"{self.node.path}: Bedrock agent",
            throttle=throttle,
            user_pool=user_pool,
            waf=waf,
        )

    @property
    def url(self) -> str:
        return self.front.url

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        return self.front.grant_invoke(grantee)
