"""``BedrockGovernance``: model invocation logging, private endpoints, and alarms on Bedrock usage.

- Invocation logging to CloudWatch Logs and S3 (both KMS-encrypted), when this construct owns it
  (``owns_invocation_logging=True``). CloudFormation has no resource for it, so a custom resource
  (``lambdas.bedrock_invocation_logging``) calls ``PutModelInvocationLoggingConfiguration``. It is one
  setting per account and Region: one ``BedrockGovernance`` per account and Region in an app, and its
  delete leaves logging on unless ``remove_logging_on_delete=True`` and this stack turned it on.
- Interface VPC endpoints for ``bedrock-runtime`` and ``bedrock-agent-runtime`` with private DNS,
  reachable on 443 from the VPC only.
- Per model: alarms on throttles, server and client errors, p99 latency, and token and invocation
  volumes (``BedrockAlarms``), all to one encrypted topic.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from aws_cdk import CfnResource, CustomResource, Duration, RemovalPolicy, Stack, Token
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import custom_resources as cr
from constructs import Construct

from ._validation import invalid, require_int
from .bedrock_iam import parse_model_id
from .functions import allow_logs_delivery
from .lambda_image import package_folder
from .nag import acknowledge, acknowledge_policy_wildcards, allow
from .notifications import encrypted_alarm_topic
from .storage import prefer_bucket_policy_access_logs, secure_bucket

NAMESPACE = "AWS/Bedrock"
LOGGING_HANDLER_MODULE = "bedrock_invocation_logging"  # lambdas/bedrock_invocation_logging.py


@dataclass(frozen=True)
class BedrockAlarms:
    """Thresholds per model (per 5 minutes unless noted); None turns an alarm off.

    :param throttles: ``InvocationThrottles``; default 1.
    :param server_errors: ``InvocationServerErrors``; default 1.
    :param client_errors: ``InvocationClientErrors``; default 10.
    :param latency_p99_ms: ``InvocationLatency`` p99 in milliseconds; default 30,000.
    :param invocations: ``Invocations``, a spend and abuse guard; default 10,000.
    :param input_tokens_per_hour: ``InputTokenCount`` per hour; default 5,000,000.
    :param output_tokens_per_hour: ``OutputTokenCount`` per hour; default 1,000,000.
    """

    throttles: int | None = 1
    server_errors: int | None = 1
    client_errors: int | None = 10
    latency_p99_ms: int | None = 30_000
    invocations: int | None = 10_000
    input_tokens_per_hour: int | None = 5_000_000
    output_tokens_per_hour: int | None = 1_000_000

    def validate(self) -> None:
        for name, value in vars(self).items():
            if value is not None:
                require_int(f"alarms.{name}", value, minimum=1)


class BedrockGovernance(Construct):
    """Escape hatches: ``log_group``, ``bucket``, ``logging_role``, ``logging_configuration`` (None unless
    ``owns_invocation_logging``), ``endpoints``, ``alarms`` (by ``(model_id, metric)``), ``alarm_topic``.

    One per account and Region in an app: a second one for the same account and Region raises, naming
    the first one's path.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc | None = None,
        model_ids: Sequence[str] = (),
        alarms: BedrockAlarms | None = None,
        encryption_key: kms.IKey | None = None,
        alarm_topic: sns.ITopic | None = None,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
        owns_invocation_logging: bool = False,
        remove_logging_on_delete: bool = False,
    ) -> None:
        """
        :param vpc: where to add the bedrock-runtime and bedrock-agent-runtime endpoints; None: no endpoints.
        :param model_ids: Bedrock model ids (or cross-Region inference profile ids) to alarm on.
        :param alarms: thresholds; default ``BedrockAlarms()``.
        :param encryption_key: KMS key for logs, the bucket and the topic; default a new rotated key.
        :param alarm_topic: where the alarms notify; default a new KMS-encrypted topic.
        :param log_retention: how long its log groups (invocation logs included) keep entries; default one year.
        :param owns_invocation_logging: this stack sets the account's invocation logging (for this Region) to
            its own log group and bucket, replacing whatever was set. Default False: say so explicitly, since
            it is one setting per account and Region that other stacks and teams may own.
        :param remove_logging_on_delete: on delete, switch invocation logging off, but only if this stack
            turned it on (it was off before) and it still logs to this stack's destinations. Default False:
            deleting the stack leaves logging on.
        """
        super().__init__(scope, construct_id)
        self._claim_account_and_region()
        for name, flag in (
            ("owns_invocation_logging", owns_invocation_logging),
            ("remove_logging_on_delete", remove_logging_on_delete),
        ):
            if not isinstance(flag, bool):
                raise invalid(name, flag, "give True or False.")
        if remove_logging_on_delete and not owns_invocation_logging:
            raise invalid(
                "remove_logging_on_delete",
                True,
                "only the owner of invocation logging can remove it; set owns_invocation_logging=True as well, "
                "or leave remove_logging_on_delete unset.",
            )
        prefer_bucket_policy_access_logs(self)
        alarms = alarms or BedrockAlarms()
        if not isinstance(alarms, BedrockAlarms):
            raise invalid("alarms", alarms, "pass BedrockAlarms(...).")
        alarms.validate()
        if isinstance(model_ids, str):
            raise invalid("model_ids", model_ids, "give a list of model ids, not one string.")
        for model_id in model_ids:
            parse_model_id("model_ids", model_id)
        stack = Stack.of(self)
        self.key = encryption_key or kms.Key(
            self, "Key", enable_key_rotation=True, description=f"{self.node.path}: Bedrock invocation logs"
        )
        allow_logs_delivery(self.key)
        self.log_group: logs.LogGroup | None = None
        self.bucket: s3.Bucket | None = None
        self.logging_role: iam.Role | None = None
        self.logging_configuration: CustomResource | None = None
        if owns_invocation_logging:
            self._logging_destinations(stack, log_retention)
            self.logging_configuration = self._invocation_logging(stack, log_retention, remove_logging_on_delete)
        self.endpoints = self._endpoints(vpc) if vpc is not None else {}
        self.alarm_topic = alarm_topic or encrypted_alarm_topic(
            self, "AlarmTopic", self.key, f"{self.node.path}: Bedrock usage"
        )
        self.alarms: dict[tuple[str, str], cloudwatch.Alarm] = {}
        for model_id in model_ids:
            self._alarm_model(model_id, alarms)

    def _claim_account_and_region(self) -> None:
        """Refuse a second ``BedrockGovernance`` for this account and Region in the app (unresolved: any)."""
        mine = _account_and_region(self)
        for other in self.node.root.node.find_all():
            if other is self or not isinstance(other, BedrockGovernance):
                continue
            theirs = _account_and_region(other)
            if all(a is None or b is None or a == b for a, b in zip(mine, theirs, strict=True)):
                account, region = (a or b or "(unresolved)" for a, b in zip(mine, theirs, strict=True))
                raise invalid(
                    "BedrockGovernance",
                    self.node.path,
                    f"{other.node.path} already governs account {account} in {region} in this app; model "
                    "invocation logging is one setting per account and Region: add these model_ids to that one.",
                )

    def _logging_destinations(self, stack: Stack, log_retention: logs.RetentionDays) -> None:
        self.log_group = logs.LogGroup(
            self,
            "InvocationLogs",
            encryption_key=self.key,
            retention=log_retention,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.bucket = secure_bucket(self, "InvocationLogBucket", key=self.key, logs_prefix="invocation-logs/")
        source = {
            "StringEquals": {"aws:SourceAccount": stack.account},
            "ArnLike": {"aws:SourceArn": f"arn:{stack.partition}:bedrock:{stack.region}:{stack.account}:*"},
        }
        self.bucket.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("bedrock.amazonaws.com")],
                actions=["s3:PutObject"],
                resources=[self.bucket.arn_for_objects("AWSLogs/*")],
                conditions=source,
            )
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("bedrock.amazonaws.com")],
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=["*"],
                conditions=source,
            )
        )
        self.logging_role = iam.Role(
            self,
            "LoggingRole",
            assumed_by=iam.ServicePrincipal("bedrock.amazonaws.com", conditions=source),
            description="Bedrock writes invocation logs to CloudWatch",
        )
        allow(
            self.logging_role,
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn, f"{self.log_group.log_group_arn}:log-stream:*"],
            ),
            "Bedrock names its log streams itself; the grant stays inside this one log group.",
        )

    def _invocation_logging(
        self, stack: Stack, log_retention: logs.RetentionDays, remove_on_delete: bool
    ) -> CustomResource:
        # Set by _logging_destinations, which runs first.
        log_group, bucket = cast(logs.LogGroup, self.log_group), cast(s3.Bucket, self.bucket)
        logging_role = cast(iam.Role, self.logging_role)
        config = {
            "cloudWatchConfig": {
                "logGroupName": log_group.log_group_name,
                "roleArn": logging_role.role_arn,
                "largeDataDeliveryS3Config": {"bucketName": bucket.bucket_name, "keyPrefix": "large-data"},
            },
            "s3Config": {"bucketName": bucket.bucket_name, "keyPrefix": "invocations"},
            "textDataDeliveryEnabled": True,
            "imageDataDeliveryEnabled": True,
            "embeddingDataDeliveryEnabled": True,
        }
        role = iam.Role(
            self,
            "InvocationLoggingFunctionRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Sets this account's Bedrock model invocation logging (one setting per Region)",
        )
        allow(
            role,
            iam.PolicyStatement(
                actions=[
                    "bedrock:GetModelInvocationLoggingConfiguration",
                    "bedrock:PutModelInvocationLoggingConfiguration",
                    "bedrock:DeleteModelInvocationLoggingConfiguration",
                ],
                resources=["*"],
            ),
            "Model invocation logging is an account-and-Region setting with no resource ARN; "
            "the role may read, set and delete it only.",
        )
        role.add_to_policy(iam.PolicyStatement(actions=["iam:PassRole"], resources=[logging_role.role_arn]))
        function_logs = logs.LogGroup(
            self,
            "InvocationLoggingFunctionLogs",
            encryption_key=self.key,
            retention=log_retention,
            removal_policy=RemovalPolicy.RETAIN,
        )
        function_logs.grant_write(role)
        function = lambda_.Function(
            self,
            "InvocationLoggingFunction",
            description=f"{self.node.path}: Bedrock model invocation logging (custom resource)",
            runtime=lambda_.Runtime.PYTHON_3_14,
            handler=f"{LOGGING_HANDLER_MODULE}.on_event",
            # Only the handler file (boto3 comes with the runtime), located in the installed ``lambdas`` package.
            code=lambda_.Code.from_asset(
                str(package_folder("lambdas")), exclude=["*", f"!{LOGGING_HANDLER_MODULE}.py"]
            ),
            role=role,
            timeout=Duration.minutes(1),
            log_group=function_logs,
        )
        # cfn-lint W3005: aws-cdk-lib adds a DependsOn the role that the Role GetAtt already implies.
        cast(CfnResource, function.node.default_child).add_metadata(
            "cfn-lint", {"config": {"ignore_checks": ["W3005"]}}
        )
        provider = cr.Provider(self, "InvocationLoggingProvider", on_event_handler=function)
        framework = provider.node.find_child("framework-onEvent")
        cast(CfnResource, framework.node.default_child).add_metadata(
            "cfn-lint", {"config": {"ignore_checks": ["W3005"]}}
        )
        for policy in provider.node.find_all():
            if isinstance(policy, iam.CfnPolicy):
                acknowledge_policy_wildcards(
                    policy,
                    "The CDK provider framework may invoke every version of the "
                    "invocation-logging function (its ARN with :*), and nothing else.",
                )
        for rule, reason in (
            (
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
                "The CDK provider framework's own function writes its logs with the AWS managed basic execution role.",
            ),
            ("AwsSolutions-L1", "The CDK provider framework pins its own function's runtime; aws-cdk-lib upgrades it."),
        ):
            acknowledge(provider, rule, reason)
        resource = CustomResource(
            self,
            "InvocationLogging",
            service_token=provider.service_token,
            resource_type="Custom::BedrockInvocationLogging",
            properties={
                "LoggingConfig": stack.to_json_string(config),  # booleans must reach Bedrock as booleans
                "RemoveOnDelete": "true" if remove_on_delete else "false",
            },
        )
        # Bedrock checks that it may write there when the setting is put: the grants come first (the
        # references already order the bucket, the roles and the function before it).
        resource.node.add_dependency(bucket.policy, logging_role.node.find_child("DefaultPolicy"))
        return resource

    def _endpoints(self, vpc: ec2.IVpc) -> dict[str, ec2.InterfaceVpcEndpoint]:
        group = ec2.SecurityGroup(
            self,
            "EndpointSecurityGroup",
            vpc=vpc,
            allow_all_outbound=False,
            description="Bedrock endpoints: HTTPS from the VPC",
        )
        group.add_ingress_rule(ec2.Peer.ipv4(vpc.vpc_cidr_block), ec2.Port.tcp(443), "HTTPS from the VPC")
        acknowledge(
            group,
            "AwsSolutions-EC23",
            "Ingress is the VPC's own CIDR block, a CloudFormation reference "
            "cdk-nag cannot resolve; nothing outside the VPC is allowed.",
        )
        services = {
            "bedrock-runtime": ec2.InterfaceVpcEndpointAwsService.BEDROCK_RUNTIME,
            "bedrock-agent-runtime": ec2.InterfaceVpcEndpointAwsService.BEDROCK_AGENT_RUNTIME,
        }
        # In this construct's scope, not the VPC's: the endpoints belong with the workload that uses them.
        return {
            name: ec2.InterfaceVpcEndpoint(
                self,
                f"{name.title().replace('-', '')}Endpoint",
                vpc=vpc,
                service=service,
                private_dns_enabled=True,
                security_groups=[group],
                subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            )
            for name, service in services.items()
        }

    def metric(
        self, model_id: str, metric_name: str, statistic: str = "Sum", period: Duration | None = None
    ) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=NAMESPACE,
            metric_name=metric_name,
            dimensions_map={"ModelId": model_id},
            statistic=statistic,
            period=period or Duration.minutes(5),
        )

    def _alarm_model(self, model_id: str, alarms: BedrockAlarms) -> None:
        hour = Duration.hours(1)
        checks = [
            (
                "InvocationThrottles",
                "Sum",
                None,
                alarms.throttles,
                "throttled: raise quotas or use provisioned throughput",
            ),
            ("InvocationServerErrors", "Sum", None, alarms.server_errors, "Bedrock server errors"),
            ("InvocationClientErrors", "Sum", None, alarms.client_errors, "requests refused: check callers"),
            ("InvocationLatency", "p99", None, alarms.latency_p99_ms, "p99 latency (ms) above threshold"),
            ("Invocations", "Sum", None, alarms.invocations, "unusual invocation volume"),
            ("InputTokenCount", "Sum", hour, alarms.input_tokens_per_hour, "input tokens per hour above budget"),
            ("OutputTokenCount", "Sum", hour, alarms.output_tokens_per_hour, "output tokens per hour above budget"),
        ]
        safe = re.sub(r"[^A-Za-z0-9]", "", model_id)
        for metric_name, statistic, period, threshold, why in checks:
            if threshold is None:
                continue
            alarm = cloudwatch.Alarm(
                self,
                f"{safe}{metric_name}",
                metric=self.metric(model_id, metric_name, statistic, period),
                threshold=threshold,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=f"{model_id}: {why}",
            )
            alarm.add_alarm_action(cw_actions.SnsAction(self.alarm_topic))
            self.alarms[(model_id, metric_name)] = alarm


def _account_and_region(scope: Construct) -> tuple[str | None, str | None]:
    stack = Stack.of(scope)
    account, region = (None if Token.is_unresolved(v) else v for v in (stack.account, stack.region))
    return account, region
