"""Acknowledging cdk-nag findings (cdk-nag 3 rides on CDK's native ``Validations``).

Every acknowledgment carries the reason the finding is acceptable. cdk-nag 3 matches a finding
only by its full id (``AwsSolutions-IAM5[Resource::*]``: no ``appliesTo``, no patterns), and an IAM5
id embeds the resource as cdk-nag flattens the *synthesized* statement. A resource of another stack
renders as ``<stack>:ExportsOutputFnGetAtt...`` there, not as ``<Logical.Arn>``, and that rendering
exists only once CDK has resolved the cross-stack references (after the construct tree is built).

So wildcard findings are not written at construct time. ``allow`` and
``acknowledge_policy_wildcards`` record *which statements or policies* our constructs create (by
construct, not by text) and a validation hook of that construct, which CDK runs after it has
resolved every reference and before cdk-nag runs, resolves exactly those statements in the policy's
own stack, flattens them as cdk-nag does and acknowledges each finding with its reasons. In-stack,
cross-stack and imported (``from_bucket_name``) inputs thus get the id cdk-nag will report.
"""

from __future__ import annotations

import json
from typing import Any, cast

import jsii
from aws_cdk import Acknowledgment, Aspects, CfnResource, Stack, Validations
from aws_cdk import aws_iam as iam
from constructs import Construct, IConstruct, IValidation

_ACKNOWLEDGMENTS_ID = "GenaiCdkNagAcknowledgments"
_CFN_AUDIT_TRAIL = "cdk_nag"  # what cdk-nag's WriteNagSuppressionsToCloudFormationAspect writes


def acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
    """Record that ``rule_id`` is accepted on ``scope`` (and its children) for ``reason``."""
    if not reason or len(reason) < 20:
        raise ValueError(f"acknowledging {rule_id} needs a real reason, got {reason!r}.")
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))


def allow(role: iam.IRole, statement: iam.PolicyStatement, wildcard_reason: str | None = None) -> None:
    """Add ``statement`` to ``role`` and acknowledge its wildcards with ``wildcard_reason``.

    A statement with wildcards but no reason is a bug in the caller: it raises. The findings are
    acknowledged on ``role`` once references are resolved (see the module docstring).
    """
    role.add_to_principal_policy(statement)
    findings = wildcard_findings(Stack.of(role), statement)
    if findings and not wildcard_reason:
        raise ValueError(f"statement {statement.actions} has wildcards {findings} but no reason was given.")
    if findings:
        _acknowledgments(role).statements.append((statement, cast(str, wildcard_reason)))  # set: checked above


def acknowledge_policy_wildcards(policy: IConstruct, reason: str) -> None:
    """Acknowledge every IAM5 finding of a policy someone else wrote (e.g. an aws-cdk-lib provider).

    ``policy`` is an ``iam.CfnPolicy`` (or ``CfnManagedPolicy``); its document is read when the
    references are resolved, so statements added after this call are covered too.
    """
    if not reason or len(reason) < 20:
        raise ValueError(f"acknowledging the wildcards of {policy.node.path} needs a real reason, got {reason!r}.")
    _acknowledgments(policy).policies.append((policy, reason))


def wildcard_findings(stack: Stack, statement: iam.PolicyStatement) -> list[str]:
    """The IAM5 finding ids cdk-nag raises for ``statement`` as ``stack`` renders it now."""
    findings = [f"Action::{a}" for a in statement.actions if "*" in a]
    for resource in statement.resources:
        flat = flatten_cfn_reference(stack.resolve(resource))
        if "*" in flat:
            findings.append(f"Resource::{flat}")
    return findings


def policy_document_findings(document: dict | None) -> list[str]:
    """The IAM5 finding ids of a resolved policy document (cdk-nag's own reading: Allow statements only)."""
    findings: list[str] = []
    for statement in (document or {}).get("Statement", []):
        if statement.get("Effect") != "Allow":
            continue
        findings += [f"Action::{a}" for a in _as_list(statement.get("Action")) if "*" in a]
        for resource in _as_list(statement.get("Resource")):
            flat = flatten_cfn_reference(resource)
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


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


@jsii.implements(IValidation)
class _Acknowledgments(Construct):
    """What to acknowledge on its parent, computed when CDK validates the tree (references resolved).

    A plain construct without resources: it only holds the statements and policies our constructs
    created under that parent and the reasons for their wildcards.
    """

    def __init__(self, scope: IConstruct) -> None:
        super().__init__(cast(Construct, scope), _ACKNOWLEDGMENTS_ID)
        self.statements: list[tuple[iam.PolicyStatement, str]] = []
        self.policies: list[tuple[IConstruct, str]] = []
        self._written: dict[str, str] = {}
        self.node.add_validation(self)

    def validate(self) -> list[str]:
        target = cast(IConstruct, self.node.scope)  # always set: a child of the construct it acknowledges on
        stack = Stack.of(target)
        reasons: dict[str, list[str]] = {}
        for statement, reason in self.statements:
            for finding in wildcard_findings(stack, statement):
                _add_reason(reasons, f"AwsSolutions-IAM5[{finding}]", reason)
        for policy, reason in self.policies:
            document = Stack.of(policy).resolve(cast(Any, policy).policy_document)  # a CfnPolicy/CfnManagedPolicy
            for finding in policy_document_findings(document):
                _add_reason(reasons, f"AwsSolutions-IAM5[{finding}]", reason)
        changed = False
        for rule_id, known in reasons.items():
            # One finding id (e.g. Resource::*) can come from several statements: keep every reason.
            text = " ".join(known)
            if self._written.get(rule_id) != text:
                acknowledge(target, rule_id, text)
                self._written[rule_id] = text
                changed = True
        if changed:
            _refresh_cfn_audit_trail(target)
        return []


def _acknowledgments(scope: IConstruct) -> _Acknowledgments:
    existing = scope.node.try_find_child(_ACKNOWLEDGMENTS_ID)
    return existing if isinstance(existing, _Acknowledgments) else _Acknowledgments(scope)


def _add_reason(reasons: dict[str, list[str]], rule_id: str, reason: str) -> None:
    known = reasons.setdefault(rule_id, [])
    if reason not in known:
        known.append(reason)


def _refresh_cfn_audit_trail(scope: IConstruct) -> None:
    """Write the ``cdk_nag`` template metadata again, now with these acknowledgments.

    ``AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True)`` copies acknowledgments into
    each resource's Metadata from an aspect, which CDK runs before it resolves references, so before
    these exist. Without that aspect above ``scope`` (the option off) nothing is written.
    """
    if not _writes_cfn_audit_trail(scope):
        return
    for node in scope.node.find_all():
        if CfnResource.is_cfn_resource(node):
            rules = _acknowledged_rules(node)
            if rules:
                cast(CfnResource, node).add_metadata(_CFN_AUDIT_TRAIL, {"rules_to_suppress": rules})


def _writes_cfn_audit_trail(scope: IConstruct) -> bool:
    current: IConstruct | None = scope
    while current is not None:
        if any(type(a).__name__ == "WriteNagSuppressionsToCloudFormationAspect" for a in Aspects.of(current).all):
            return True
        current = current.node.scope
    return False


def _acknowledged_rules(node: IConstruct) -> list[dict[str, str]]:
    """Every acknowledgment on ``node`` and its ancestors, nearest first (cdk-nag's aspect's own reading)."""
    rules: dict[str, str] = {}
    current: IConstruct | None = node
    while current is not None:
        here: dict[str, str] = {}  # on one construct, a later acknowledgment of the same id wins
        for entry in current.node.metadata:
            if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY and entry.data:
                for qualified, reason in entry.data.items():
                    rule_id = qualified.split("::", 1)[1] if qualified.lower().startswith("annotation::") else qualified
                    here[rule_id] = reason
        for rule_id, reason in here.items():
            rules.setdefault(rule_id, reason)
        current = current.node.scope
    return [{"id": rule_id, "reason": reason} for rule_id, reason in rules.items()]
