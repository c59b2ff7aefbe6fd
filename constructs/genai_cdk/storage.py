"""KMS-encrypted, TLS-only S3 buckets with server access logs, as every construct here creates them."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from .nag import acknowledge

ACCESS_LOGS_BY_POLICY = "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy"


def prefer_bucket_policy_access_logs(scope: Construct) -> None:
    """Deliver access logs by bucket policy, not the legacy LogDeliveryWrite ACL (call before adding children)."""
    scope.node.set_context(ACCESS_LOGS_BY_POLICY, True)


def secure_bucket(
    scope: Construct,
    construct_id: str,
    *,
    key: kms.IKey,
    logs_prefix: str,
    removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    **bucket_props,
) -> s3.Bucket:
    """A versioned bucket encrypted with ``key``, TLS-only, no public access, its access logs in a sibling bucket."""
    access_logs = s3.Bucket(
        scope,
        f"{construct_id}AccessLogs",
        encryption=s3.BucketEncryption.S3_MANAGED,  # log delivery cannot write SSE-KMS objects
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        removal_policy=RemovalPolicy.RETAIN,  # audit data
    )
    acknowledge(
        access_logs,
        "AwsSolutions-S1",
        "This bucket receives another bucket's server access logs; logging it to itself would loop.",
    )
    return s3.Bucket(
        scope,
        construct_id,
        encryption=s3.BucketEncryption.KMS,
        encryption_key=key,
        bucket_key_enabled=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        versioned=True,
        server_access_logs_bucket=access_logs,
        server_access_logs_prefix=logs_prefix,
        removal_policy=removal_policy,
        **bucket_props,
    )
