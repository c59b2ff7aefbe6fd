"""Acknowledging cdk-nag findings (cdk-nag 3 rides on CDK's native ``Validations``).

Every acknowledgment carries the reason the finding is acceptable. cdk-nag 3 matches a
finding only by its full id (``AwsSolutions-IAM5[Resource::*]``), so ``allow`` names each
wildcard of a statement exactly as cdk-nag flattens it.
"""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import Acknowledgment, Stack, Validations
from aws_cdk import aws_iam as iam
from constructs import IConstruct


def acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
    """Record that ``rule_id`` is accepted on ``scope`` (and its children) for ``reason``."""
    if not reason or len(reason) < 20:
        raise ValueError(f"acknowledging {rule_id} needs a real reason, got {reason!r}.")
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))


def allow(role: iam.IRole, statement: iam.PolicyStatement, wildcard_reason: str | None = None) -> None:
    """Add ``statement`` to ``role`` and acknowledge its wildcards with ``wildcard_reason``.

    A statement with wildcards but no reason is a bug in the caller: it raises.
    """
    role.add_to_principal_policy(statement)
    findings = wildcard_findings(Stack.of(role), statement)
    if findings and not wildcard_reason:
        raise ValueError(f"statement {statement.actions} has wildcards {findings} but no reason was given.")
    # One finding id (e.g. Resource::*) can come from several statements: keep every reason.
    reasons: dict[str, list[str]] = role.__dict__.setdefault("_genai_cdk_wildcard_reasons", {})
    for finding in findings:
        rule_id = f"AwsSolutions-IAM5[{finding}]"
        known = reasons.setdefault(rule_id, [])
        if wildcard_reason not in known:
            known.append(wildcard_reason or "")
        acknowledge(role, rule_id, " ".join(known))


def acknowledge_policy_wildcards(policy: IConstruct, reason: str) -> None:
    """Acknowledge every IAM5 finding of a policy someone else wrote (e.g. an aws-cdk-lib provider)."""
    stack = Stack.of(policy)
    document = stack.resolve(policy.policy_document) or {}
    for statement in document.get("Statement", []):
        if statement.get("Effect") != "Allow":
            continue
        actions = statement.get("Action", [])
        resources = statement.get("Resource", [])
        findings = [f"Action::{a}" for a in (actions if isinstance(actions, list) else [actions]) if "*" in a]
        for resource in resources if isinstance(resources, list) else [resources]:
            flat = flatten_cfn_reference(resource)
            if "*" in flat:
                findings.append(f"Resource::{flat}")
        for finding in findings:
            acknowledge(policy, f"AwsSolutions-IAM5[{finding}]", reason)


def wildcard_findings(stack: Stack, statement: iam.PolicyStatement) -> list[str]:
    """The IAM5 finding ids cdk-nag raises for ``statement``."""
    findings = [f"Action::{a}" for a in statement.actions if "*" in a]
    for resource in statement.resources:
        flat = flatten_cfn_reference(stack.resolve(resource))
        if "*" in flat:
            findings.append(f"Resource::{flat}")
    return findings


def flatten_cfn_reference(node: Any) -> str:
    """cdk-nag's rendering of a CloudFormation value: ``<Logical.Attr>``, ``<AWS::Partition>``..."""
    if node is None:
        return ""
    if isinstance(node, str):
        return node.replace("${", "<").replace("}", ">")
    if isinstance(node, dict):
        if "Fn::Join" in node:
            delimiter, items = node["Fn::Join"]
            return delimiter.join(flatten_cfn_reference(item) for item in items)
        if "Fn::Sub" in node:
            return flatten_cfn_reference(node["Fn::Sub"])
        if "Fn::GetAtt" in node:
            resource, attribute = node["Fn::GetAtt"]
            return f"<{flatten_cfn_reference(resource)}.{flatten_cfn_reference(attribute)}>"
        if "Fn::ImportValue" in node:
            return flatten_cfn_reference(node["Fn::ImportValue"])
        if "Ref" in node:
            return f"<{flatten_cfn_reference(node['Ref'])}>"
    return json.dumps(node, separators=(",", ":"))
