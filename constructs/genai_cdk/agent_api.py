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

from ._validation import invalid
from .bedrock_agent import BedrockAgent
from .functions import vpc_function
from .lambda_image import AGENT_API_HANDLER
from .rest_api import JsonPostApi, Throttle

# The request model API Gateway enforces; lambdas/agent_api.InvokeRequest is the same in pydantic.
AGENT_REQUEST_SCHEMA = {
    "type": "object",
    "required": ["inputText"],
    "additionalProperties": False,
    "properties": {
        "inputText": {"type": "string", "minLength": 1, "maxLength": 25000, "pattern": "\\S"},
        "sessionId": {"type": "string", "pattern": "^[0-9a-zA-Z._:-]{2,100}$"},
    },
}


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
                "AGENT_ID": agent.agent_id,
                "AGENT_ALIAS_ID": agent.alias_id,
                "POWERTOOLS_SERVICE_NAME": "agent-api",
            },
        )
        agent.grant_invoke(self.function)
        self.front = JsonPostApi(
            self,
            "Front",
            function=self.function,
            path="invoke",
            request_schema=AGENT_REQUEST_SCHEMA,
            model_name="InvokeRequest",
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
