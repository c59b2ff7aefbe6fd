"""``ClaimsActionGroup``: the book's insurance-claims API as a Bedrock action group, on DynamoDB.

A KMS-encrypted DynamoDB table with point-in-time recovery, a VPC Lambda running
``lambdas.claims_action_group`` (Powertools ``BedrockAgentResolver``) that may only scan and update
that table, and the OpenAPI schema generated from the handler's types (shipped in
``assets/agent_schemas/claims.json``; a test keeps it equal to the generated one).
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from genai_contracts import names

from .bedrock_agent import ActionGroup
from .functions import vpc_function
from .lambda_image import CLAIMS_HANDLER

SCHEMA = Path(__file__).parent / "assets" / "agent_schemas" / "claims.json"
ACTION_GROUP_NAME = "ClaimManagementActionGroup"


class ClaimsActionGroup(Construct):
    """Escape hatches: ``table``, ``function``, ``key``; ``action_group`` goes to ``BedrockAgent``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        encryption_key: kms.IKey | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        code: lambda_.DockerImageCode | None = None,
    ):
        """
        :param vpc: the VPC whose private subnets the function runs in.
        :param encryption_key: KMS key for the table, the function's environment and its logs; default a new
            rotated key.
        :param removal_policy: RETAIN (default) keeps the claims table and its data on stack deletion.
        :param code: the function's image; default built from the installed packages. It runs
            ``lambdas.claims_action_group.handler``.
        """
        super().__init__(scope, construct_id)
        self.key = encryption_key or kms.Key(
            self, "Key", enable_key_rotation=True, description=f"{self.node.path}: claims table and function"
        )
        self.table = dynamodb.Table(
            self,
            "Claims",
            partition_key=dynamodb.Attribute(name="claimId", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=self.key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=removal_policy,
        )
        self.function = vpc_function(
            self,
            "Function",
            code=code,
            handler=CLAIMS_HANDLER,
            vpc=vpc,
            key=self.key,
            timeout=Duration.seconds(30),
            memory_size=512,
            environment={
                names.CLAIMS_TABLE: self.table.table_name,
                names.POWERTOOLS_SERVICE_NAME: names.CLAIMS_ACTION_GROUP_SERVICE,
            },
        )
        role = cast(iam.IRole, self.function.role)  # a Function always has one (it creates it)
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["dynamodb:Scan", "dynamodb:UpdateItem"], resources=[self.table.table_arn])
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"], resources=[self.key.key_arn]
            )
        )
        self.action_group = ActionGroup.from_schema_file(
            ACTION_GROUP_NAME,
            self.function,
            SCHEMA,
            "Lists open insurance claims and sends renewal reminders to policy holders.",
        )
