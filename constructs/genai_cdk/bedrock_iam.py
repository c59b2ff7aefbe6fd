"""IAM for Bedrock: foundation-model ARNs, and roles only Bedrock in this account can assume."""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct


def foundation_model_arn(stack: Stack, model_id: str) -> str:
    return stack.format_arn(
        service="bedrock",
        account="",
        resource="foundation-model",
        resource_name=model_id,
        arn_format=ArnFormat.SLASH_RESOURCE_NAME,
    )


def bedrock_service_role(scope: Construct, construct_id: str, resource_kind: str, description: str) -> iam.Role:
    """A role for Bedrock acting as one of this account's ``resource_kind`` (agent, knowledge-base...)."""
    stack = Stack.of(scope)
    source_arn = stack.format_arn(
        service="bedrock", resource=resource_kind, resource_name="*", arn_format=ArnFormat.SLASH_RESOURCE_NAME
    )
    return iam.Role(
        scope,
        construct_id,
        description=description,
        assumed_by=iam.ServicePrincipal(
            "bedrock.amazonaws.com",
            conditions={"StringEquals": {"aws:SourceAccount": stack.account}, "ArnLike": {"aws:SourceArn": source_arn}},
        ),
    )
