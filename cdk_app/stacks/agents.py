"""Agents: the Bedrock agent with the claims action group, its API, and Bedrock governance."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from constructs import Construct

from genai_cdk import (
    AgentApi,
    BedrockAgent,
    BedrockGovernance,
    ClaimsActionGroup,
    KnowledgeBaseAttachment,
    Throttle,
)

from ..config import EnvironmentConfig
from .base import EnvironmentStack


class AgentsStack(EnvironmentStack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        vpc: ec2.IVpc,
        knowledge_base: KnowledgeBaseAttachment | None = None,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, config=config, **kwargs)
        agents = config.agents
        key = kms.Key.from_key_arn(self, "Key", config.kms.key_arn) if config.kms.key_arn else None
        self.claims = ClaimsActionGroup(self, "Claims", vpc=vpc, encryption_key=key)
        self.agent = BedrockAgent(
            self,
            "Agent",
            foundation_model=agents.foundation_model,
            instruction=agents.instruction,
            action_groups=[self.claims.action_group],
            guardrail=agents.guardrail.build() if agents.guardrail else None,
            knowledge_bases=[knowledge_base] if knowledge_base else (),
            idle_session_ttl=Duration.minutes(agents.idle_session_minutes),
            encryption_key=key,
        )
        self.api = AgentApi(
            self,
            "Api",
            agent=self.agent,
            vpc=vpc,
            throttle=Throttle(agents.throttle_rate_limit, agents.throttle_burst_limit),
            waf=agents.waf,
        )
        models = list(dict.fromkeys([agents.foundation_model, *agents.alarm_models]))
        self.governance = BedrockGovernance(
            self,
            "Governance",
            vpc=vpc,
            model_ids=models,
            encryption_key=key,
            owns_invocation_logging=agents.owns_invocation_logging,
        )
        CfnOutput(self, "AgentId", value=self.agent.agent_id)
        CfnOutput(self, "AgentAliasId", value=self.agent.alias_id)
        CfnOutput(self, "InvokeUrl", value=self.api.url)
