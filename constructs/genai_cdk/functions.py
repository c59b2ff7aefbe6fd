"""A VPC Lambda function as every construct here runs one: own role, own encrypted log group."""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from aws_cdk import Annotations, CfnResource, Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from .lambda_image import lambda_image_code
from .nag import allow

_ENI_ACTIONS = [
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
]


def allow_logs_delivery(key: kms.IKey) -> None:
    """Let CloudWatch Logs in this region use ``key`` (a no-op for an imported key)."""
    stack = Stack.of(key)
    log_groups = f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:*"
    key.add_to_resource_policy(
        iam.PolicyStatement(
            actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
            principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
            resources=["*"],
            conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": log_groups}},
        )
    )


def vpc_function(
    scope: Construct,
    construct_id: str,
    *,
    code: lambda_.DockerImageCode | None,
    handler: str,
    vpc: ec2.IVpc,
    key: kms.IKey,
    environment: Mapping[str, str],
    timeout: Duration,
    memory_size: int = 1024,
    role: iam.Role | None = None,
    vpc_subnets: ec2.SubnetSelection | None = None,
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
) -> lambda_.DockerImageFunction:
    """A container-image function in private subnets, with X-Ray, KMS-encrypted environment and logs.

    ``code`` defaults to the image built from the installed packages (``lambda_image``). Whatever the
    image, the function runs ``handler`` as its command (e.g. ``lambdas.rag_query.handler``), so a
    prebuilt ``DockerImageCode.from_ecr(repository, tag_or_digest=...)`` never runs the image's default
    ``CMD``; a ``cmd=`` given with ``code`` wins, with a synth warning when it is not ``handler``.
    """
    role = role or iam.Role(scope, f"{construct_id}Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    log_group = logs.LogGroup(
        scope, f"{construct_id}Logs", encryption_key=key, retention=log_retention, removal_policy=RemovalPolicy.RETAIN
    )
    security_group = ec2.SecurityGroup(
        scope,
        f"{construct_id}SecurityGroup",
        vpc=vpc,
        allow_all_outbound=False,
        description=f"{construct_id}: HTTPS egress only",
    )
    security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS APIs and OpenSearch")
    function = lambda_.DockerImageFunction(
        scope,
        construct_id,
        code=code if code is not None else lambda_image_code(),
        role=role,
        vpc=vpc,
        vpc_subnets=vpc_subnets or ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
        security_groups=[security_group],
        environment=dict(environment),
        environment_encryption=key,
        timeout=timeout,
        memory_size=memory_size,
        log_group=log_group,
        tracing=lambda_.Tracing.ACTIVE,
    )
    _run_handler(function, handler)
    # cfn-lint W3005: aws-cdk-lib adds a DependsOn the role that the Role GetAtt already implies.
    cast(CfnResource, function.node.default_child).add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})
    log_group.grant_write(role)
    allow(
        role,
        iam.PolicyStatement(actions=_ENI_ACTIONS, resources=["*"]),
        "Lambda creates and removes its VPC network interfaces before they exist; EC2 offers no resource ARN.",
    )
    allow(
        role,
        iam.PolicyStatement(actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"], resources=["*"]),
        "X-Ray trace segments have no resource ARN; these two write-only actions are all tracing needs.",
    )
    key.grant_decrypt(role)  # the encrypted environment; log groups use the key as CloudWatch Logs
    return function


def _run_handler(function: lambda_.DockerImageFunction, handler: str) -> None:
    """Make ``handler`` the image command unless the given code names a command of its own."""
    cfn = cast(lambda_.CfnFunction, function.node.default_child)
    config = cfn.image_config  # None, or the ImageConfigProperty aws-cdk-lib built from the code's cmd/entrypoint
    command = getattr(config, "command", None)
    if command is None:
        cfn.image_config = lambda_.CfnFunction.ImageConfigProperty(
            command=[handler],
            entry_point=getattr(config, "entry_point", None),
            working_directory=getattr(config, "working_directory", None),
        )
    elif list(command) != [handler]:
        Annotations.of(function).add_warning_v2(
            "genai-cdk:lambda-command",
            f"the image runs cmd={list(command)} given with code=, not this function's handler {handler!r}; "
            f"leave cmd unset and the construct sets [{handler!r}].",
        )
