"""An encrypted SNS topic that CloudWatch alarms can publish to."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct


def encrypted_alarm_topic(scope: Construct, construct_id: str, key: kms.IKey, display_name: str) -> sns.Topic:
    """A TLS-only topic encrypted with ``key``, whose key policy lets CloudWatch alarms publish."""
    topic = sns.Topic(scope, construct_id, master_key=key, enforce_ssl=True, display_name=display_name)
    # No-op for an imported key: its owner must grant cloudwatch.amazonaws.com the same.
    key.add_to_resource_policy(
        iam.PolicyStatement(
            actions=["kms:Decrypt", "kms:GenerateDataKey*"],
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            resources=["*"],
        )
    )
    return topic
