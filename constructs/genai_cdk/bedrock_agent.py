"""``BedrockAgent``: an Agent for Amazon Bedrock with Lambda action groups, an alias and a guardrail.

``CfnAgent`` (foundation model, instruction, idle session TTL, customer-managed KMS key, action
groups each a Lambda executor plus its OpenAPI schema, knowledge bases, guardrail) and
``CfnAgentAlias``. The agent's role may invoke exactly its one foundation model (plus apply its
guardrail and retrieve from its knowledge bases); each action-group function may be invoked by
Bedrock for this agent's ARN only. ``GuardrailPolicy`` builds a ``CfnGuardrail`` (content filters,
denied topics, PII redaction) and a published version the agent uses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aws_cdk import Duration, Names, Stack
from aws_cdk import aws_bedrock as bedrock
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from ._validation import invalid, require_choice
from .bedrock_iam import INVOKE_ACTIONS, bedrock_service_role, grant_invoke_model, parse_model_id

_NAME = re.compile(r"^[0-9a-zA-Z_-]{1,100}$")
CONTENT_FILTERS = ("HATE", "INSULTS", "SEXUAL", "VIOLENCE", "MISCONDUCT", "PROMPT_ATTACK")
STRENGTHS = ("NONE", "LOW", "MEDIUM", "HIGH")
PII_ACTIONS = ("ANONYMIZE", "BLOCK")
MIN_INSTRUCTION = 40  # Bedrock's own lower bound
MAX_INSTRUCTION = 4000


@dataclass(frozen=True)
class ActionGroup:
    """A Lambda executor and the OpenAPI schema that tells the agent what it can call.

    :param name: the action group's name, 1-100 letters, digits, ``_`` or ``-`` (unique per agent).
    :param function: the Lambda function Bedrock invokes with the agent's action-group events.
    :param api_schema: the OpenAPI 3 document (a dict) of the operations the function serves.
    :param description: what the group is for, shown to the agent; default none.
    """

    name: str
    function: lambda_.IFunction
    api_schema: dict
    description: str = ""

    @classmethod
    def from_schema_file(
        cls, name: str, function: lambda_.IFunction, path: str | Path, description: str = ""
    ) -> ActionGroup:
        """An ``ActionGroup`` whose ``api_schema`` is read from the OpenAPI JSON file at ``path``."""
        try:
            schema = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise invalid("api_schema", str(path), f"give a readable OpenAPI JSON file ({error}).") from None
        return cls(name, function, schema, description)

    def validate(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise invalid("action_groups.name", self.name, "use 1-100 letters, digits, _ or -.")
        if not isinstance(self.api_schema, dict) or not str(self.api_schema.get("openapi", "")).startswith("3."):
            raise invalid(
                f"action_groups[{self.name}].api_schema",
                type(self.api_schema).__name__,
                "give an OpenAPI 3 document (a dict with openapi: 3.x and paths).",
            )
        if not self.api_schema.get("paths"):
            raise invalid(f"action_groups[{self.name}].api_schema", "paths={}", "the schema has no operations.")
        if not hasattr(self.function, "function_arn"):
            raise invalid(f"action_groups[{self.name}].function", self.function, "pass a Lambda function.")


@dataclass(frozen=True)
class DeniedTopic:
    """A topic the guardrail refuses, in both directions.

    :param name: the topic's name, e.g. ``InvestmentAdvice``.
    :param definition: what the topic covers, at most 200 characters.
    :param examples: sample phrases of the topic; default none.
    """

    name: str
    definition: str
    examples: tuple[str, ...] = ()


@dataclass(frozen=True)
class GuardrailPolicy:
    """Content filters at one strength, denied topics, and PII entities masked (or blocked).

    :param content_filter_strength: ``NONE``, ``LOW``, ``MEDIUM`` or ``HIGH`` (default) for every content filter
        (hate, insults, sexual, violence, misconduct, prompt attacks).
    :param denied_topics: ``DeniedTopic`` items; default none.
    :param pii_entities: Bedrock PII entity types to handle; default names, e-mail and postal addresses, phone,
        US social security and card numbers.
    :param pii_action: ``ANONYMIZE`` (default) or ``BLOCK``.
    :param blocked_input_message: the answer to a blocked prompt, 1-500 characters.
    :param blocked_output_message: the answer in place of a blocked response, 1-500 characters.
    """

    content_filter_strength: str = "HIGH"
    denied_topics: tuple[DeniedTopic, ...] = ()
    pii_entities: tuple[str, ...] = (
        "NAME",
        "EMAIL",
        "PHONE",
        "ADDRESS",
        "US_SOCIAL_SECURITY_NUMBER",
        "CREDIT_DEBIT_CARD_NUMBER",
    )
    pii_action: str = "ANONYMIZE"
    blocked_input_message: str = "Sorry, I can't help with that request."
    blocked_output_message: str = "Sorry, I can't provide that answer."

    def validate(self) -> None:
        require_choice("guardrail.content_filter_strength", self.content_filter_strength, STRENGTHS)
        require_choice("guardrail.pii_action", self.pii_action, PII_ACTIONS)
        for topic in self.denied_topics:
            if not isinstance(topic, DeniedTopic) or not topic.name or not 1 <= len(topic.definition) <= 200:
                raise invalid(
                    "guardrail.denied_topics",
                    topic,
                    "give DeniedTopic(name, definition of at most 200 characters, examples).",
                )
        for message in (self.blocked_input_message, self.blocked_output_message):
            if not 1 <= len(message) <= 500:
                raise invalid("guardrail.blocked_message", message, "give 1-500 characters.")

    def build(self, scope: Construct, key: kms.IKey) -> tuple[bedrock.CfnGuardrail, bedrock.CfnGuardrailVersion]:
        strength = self.content_filter_strength
        filters = [
            bedrock.CfnGuardrail.ContentFilterConfigProperty(
                type=kind,
                input_strength=strength,
                output_strength="NONE" if kind == "PROMPT_ATTACK" else strength,  # prompt attacks are input-only
            )
            for kind in CONTENT_FILTERS
        ]
        guardrail = bedrock.CfnGuardrail(
            scope,
            "Guardrail",
            name=Names.unique_resource_name(scope, max_length=50, separator="-"),
            blocked_input_messaging=self.blocked_input_message,
            blocked_outputs_messaging=self.blocked_output_message,
            kms_key_arn=key.key_arn,
            content_policy_config=bedrock.CfnGuardrail.ContentPolicyConfigProperty(filters_config=filters),
            topic_policy_config=bedrock.CfnGuardrail.TopicPolicyConfigProperty(
                topics_config=[
                    bedrock.CfnGuardrail.TopicConfigProperty(
                        name=t.name, definition=t.definition, type="DENY", examples=list(t.examples) or None
                    )
                    for t in self.denied_topics
                ]
            )
            if self.denied_topics
            else None,
            sensitive_information_policy_config=bedrock.CfnGuardrail.SensitiveInformationPolicyConfigProperty(
                pii_entities_config=[
                    bedrock.CfnGuardrail.PiiEntityConfigProperty(type=entity, action=self.pii_action)
                    for entity in self.pii_entities
                ]
            )
            if self.pii_entities
            else None,
        )
        version = bedrock.CfnGuardrailVersion(
            scope, "GuardrailVersion", guardrail_identifier=guardrail.attr_guardrail_id
        )
        return guardrail, version


@dataclass(frozen=True)
class KnowledgeBaseAttachment:
    """A knowledge base the agent may retrieve from (a ``KnowledgeBase``'s ``attachment`` is one).

    :param knowledge_base_id: the knowledge base's id.
    :param knowledge_base_arn: its ARN, for the agent role's ``bedrock:Retrieve``.
    :param description: when the agent should use it; default "Documents to answer questions from".
    """

    knowledge_base_id: str
    knowledge_base_arn: str
    description: str = field(default="Documents to answer questions from")


class BedrockAgent(Construct):
    """An agent, its alias, its role scoped to one model, and its action groups wired for it alone.

    Minimal use::

        claims = ClaimsActionGroup(self, "Claims", vpc=vpc)
        agent = BedrockAgent(self, "Agent", foundation_model="anthropic.claude-3-haiku-20240307-v1:0",
                             instruction="You are an insurance agent ...", action_groups=[claims.action_group])
        agent.grant_invoke(api_function)

    Escape hatches: ``agent``, ``alias``, ``role``, ``key``, ``guardrail``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        foundation_model: str,
        instruction: str,
        action_groups: Sequence[ActionGroup] = (),
        guardrail: GuardrailPolicy | None = None,
        knowledge_bases: Sequence[KnowledgeBaseAttachment] = (),
        idle_session_ttl: Duration | None = None,
        encryption_key: kms.IKey | None = None,
        agent_name: str | None = None,
        alias_name: str = "live",
        description: str | None = None,
    ) -> None:
        """
        :param foundation_model: a Bedrock model id (``anthropic.claude-3-haiku-20240307-v1:0``), a cross-Region
            inference profile id (``us.anthropic...``) or the ARN of either; checked against the documented format.
        :param instruction: what the agent does and how (40-4000 characters).
        :param action_groups: Lambda executors with their OpenAPI schemas.
        :param guardrail: a ``GuardrailPolicy`` to create and attach; default none.
        :param knowledge_bases: knowledge bases the agent may retrieve from.
        :param idle_session_ttl: how long a session lives without input (1-60 minutes); default 10 minutes.
        :param encryption_key: KMS key for the agent's sessions and the guardrail; default a new rotated key.
        :param agent_name: default derived from the construct path.
        :param alias_name: the alias applications invoke.
        :param description: the agent's description; default none.
        """
        super().__init__(scope, construct_id)
        idle_session_ttl = idle_session_ttl or Duration.minutes(10)
        self.validate_props(foundation_model, instruction, action_groups, guardrail, idle_session_ttl, alias_name)
        stack = Stack.of(self)
        self.key = encryption_key or kms.Key(
            self, "Key", enable_key_rotation=True, description=f"{self.node.path}: agent sessions and guardrail"
        )
        self.role = bedrock_service_role(self, "Role", "agent", "Bedrock agent: invokes its one foundation model")
        grant_invoke_model(self.role, parse_model_id("foundation_model", foundation_model, arns=True), INVOKE_ACTIONS)
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[self.key.key_arn])
        )
        self.guardrail = self.guardrail_version = None
        guardrail_configuration = None
        if guardrail is not None:
            self.guardrail, self.guardrail_version = guardrail.build(self, self.key)
            self.role.add_to_policy(
                iam.PolicyStatement(actions=["bedrock:ApplyGuardrail"], resources=[self.guardrail.attr_guardrail_arn])
            )
            guardrail_configuration = bedrock.CfnAgent.GuardrailConfigurationProperty(
                guardrail_identifier=self.guardrail.attr_guardrail_id,
                guardrail_version=self.guardrail_version.attr_version,
            )
        for knowledge_base in knowledge_bases:
            self.role.add_to_policy(
                iam.PolicyStatement(actions=["bedrock:Retrieve"], resources=[knowledge_base.knowledge_base_arn])
            )
        self.agent = bedrock.CfnAgent(
            self,
            "Agent",
            agent_name=agent_name or Names.unique_resource_name(self, max_length=100, separator="-"),
            foundation_model=foundation_model,
            instruction=instruction,
            description=description,
            idle_session_ttl_in_seconds=int(idle_session_ttl.to_seconds()),
            customer_encryption_key_arn=self.key.key_arn,
            agent_resource_role_arn=self.role.role_arn,
            auto_prepare=True,
            guardrail_configuration=guardrail_configuration,
            action_groups=[
                bedrock.CfnAgent.AgentActionGroupProperty(
                    action_group_name=group.name,
                    description=group.description or None,
                    action_group_state="ENABLED",
                    action_group_executor=bedrock.CfnAgent.ActionGroupExecutorProperty(
                        lambda_=group.function.function_arn
                    ),
                    api_schema=bedrock.CfnAgent.APISchemaProperty(payload=json.dumps(group.api_schema)),
                )
                for group in action_groups
            ]
            or None,
            knowledge_bases=[
                bedrock.CfnAgent.AgentKnowledgeBaseProperty(
                    knowledge_base_id=kb.knowledge_base_id, description=kb.description, knowledge_base_state="ENABLED"
                )
                for kb in knowledge_bases
            ]
            or None,
        )
        # The role's policy (not only the role) must exist before CloudFormation prepares the agent.
        self.agent.node.add_dependency(self.role.node.find_child("DefaultPolicy"))
        for group in action_groups:
            self._allow_invoke(group, stack)
        self.alias = bedrock.CfnAgentAlias(
            self,
            "Alias",
            agent_id=self.agent.attr_agent_id,
            agent_alias_name=alias_name,
            description=f"{alias_name}: the alias applications invoke",
        )

    def _allow_invoke(self, group: ActionGroup, stack: Stack) -> None:
        """Let Bedrock invoke ``group.function`` for this agent's ARN only.

        The agent references the function (its executor), so the permission, which references the
        agent, lives on the agent's side: on the function for a function of this stack, in this
        construct for a function of another stack (whose stack must not reference the agent's).
        """
        if Stack.of(group.function).node.path == stack.node.path:
            group.function.add_permission(
                f"InvokedBy{Names.unique_id(self)}{group.name}",
                principal=iam.ServicePrincipal("bedrock.amazonaws.com"),
                source_arn=self.agent.attr_agent_arn,
                source_account=stack.account,
            )
            return
        lambda_.CfnPermission(
            self,
            f"InvokePermission{group.name}",
            action="lambda:InvokeFunction",
            function_name=group.function.function_arn,
            principal="bedrock.amazonaws.com",
            source_arn=self.agent.attr_agent_arn,
            source_account=stack.account,
        )

    @staticmethod
    def validate_props(foundation_model, instruction, action_groups, guardrail, idle_session_ttl, alias_name) -> None:
        parse_model_id("foundation_model", foundation_model, arns=True)
        if not isinstance(instruction, str) or not MIN_INSTRUCTION <= len(instruction) <= MAX_INSTRUCTION:
            raise invalid(
                "instruction",
                instruction if not isinstance(instruction, str) else f"{len(instruction)} chars",
                f"Bedrock needs {MIN_INSTRUCTION}-{MAX_INSTRUCTION} characters of instruction.",
            )
        names = set()
        for group in action_groups:
            if not isinstance(group, ActionGroup):
                raise invalid("action_groups", group, "pass ActionGroup(...) items.")
            group.validate()
            if group.name in names:
                raise invalid("action_groups", group.name, "action group names must be unique.")
            names.add(group.name)
        if guardrail is not None:
            if not isinstance(guardrail, GuardrailPolicy):
                raise invalid("guardrail", guardrail, "pass a GuardrailPolicy(...).")
            guardrail.validate()
        seconds = idle_session_ttl.to_seconds()
        if not 60 <= seconds <= 3600:
            raise invalid("idle_session_ttl", f"{seconds:.0f} s", "give 1 to 60 minutes.")
        if not isinstance(alias_name, str) or not _NAME.match(alias_name):
            raise invalid("alias_name", alias_name, "use 1-100 letters, digits, _ or -.")

    @property
    def agent_id(self) -> str:
        return self.agent.attr_agent_id

    @property
    def alias_id(self) -> str:
        return self.alias.attr_agent_alias_id

    @property
    def alias_arn(self) -> str:
        return self.alias.attr_agent_alias_arn

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        """``InvokeAgent`` on this agent's alias, and nothing else."""
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=["bedrock:InvokeAgent"], resource_arns=[self.alias_arn]
        )
