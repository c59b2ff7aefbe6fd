"""``BedrockGovernance``: model invocation logging, private endpoints, and alarms on Bedrock usage.

- Invocation logging to CloudWatch Logs and S3 (both KMS-encrypted). CloudFormation has no
  resource for it, so an ``AwsCustomResource`` calls ``PutModelInvocationLoggingConfiguration``
  (and ``DeleteModelInvocationLoggingConfiguration`` on delete). It is account- and region-wide:
  one per account and region.
- Interface VPC endpoints for ``bedrock-runtime`` and ``bedrock-agent-runtime`` with private DNS,
  reachable on 443 from the VPC only.
- Per model: alarms on throttles, server and client errors, p99 latency, and token and invocation
  volumes (``BedrockAlarms``), all to one encrypted topic.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import custom_resources as cr
from constructs import Construct

from ._validation import invalid, require_int
from .functions import allow_logs_delivery
from .nag import acknowledge, acknowledge_policy_wildcards, allow
from .notifications import encrypted_alarm_topic
from .storage import prefer_bucket_policy_access_logs, secure_bucket

NAMESPACE = "AWS/Bedrock"
_MODEL_ID = re.compile(r"^(?:(?:us|eu|apac|global)\.)?[a-z0-9-]+\.[a-z0-9.:-]+$")


@dataclass(frozen=True)
class BedrockAlarms:
    """Thresholds per model (per 5 minutes unless noted); None turns an alarm off."""

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
    """Escape hatches: ``log_group``, ``bucket``, ``logging_role``, ``logging_configuration``, ``endpoints``,
    ``alarms`` (by ``(model_id, metric)``), ``alarm_topic``."""

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
    ) -> None:
        """
        :param vpc: where to add the bedrock-runtime and bedrock-agent-runtime endpoints; None: no endpoints.
        :param model_ids: Bedrock model ids to alarm on.
        :param alarms: thresholds; default ``BedrockAlarms()``.
        :param encryption_key: KMS key for logs, the bucket and the topic; default a new rotated key.
        """
        super().__init__(scope, construct_id)
        prefer_bucket_policy_access_logs(self)
        alarms = alarms or BedrockAlarms()
        if not isinstance(alarms, BedrockAlarms):
            raise invalid("alarms", alarms, "pass BedrockAlarms(...).")
        alarms.validate()
        for model_id in model_ids:
            if not isinstance(model_id, str) or not _MODEL_ID.match(model_id):
                raise invalid("model_ids", model_id, "give Bedrock model ids such as amazon.titan-text-express-v1.")
        stack = Stack.of(self)
        self.key = encryption_key or kms.Key(
            self, "Key", enable_key_rotation=True, description=f"{self.node.path}: Bedrock invocation logs"
        )
        allow_logs_delivery(self.key)
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
        self.logging_configuration = self._invocation_logging(stack)
        self.endpoints = self._endpoints(vpc) if vpc is not None else {}
        self.alarm_topic = alarm_topic or encrypted_alarm_topic(
            self, "AlarmTopic", self.key, f"{self.node.path}: Bedrock usage"
        )
        self.alarms: dict[tuple[str, str], cloudwatch.Alarm] = {}
        for model_id in model_ids:
            self._alarm_model(model_id, alarms)

    def _invocation_logging(self, stack: Stack) -> cr.AwsCustomResource:
        config = {
            "loggingConfig": {
                "cloudWatchConfig": {
                    "logGroupName": self.log_group.log_group_name,
                    "roleArn": self.logging_role.role_arn,
                    "largeDataDeliveryS3Config": {"bucketName": self.bucket.bucket_name, "keyPrefix": "large-data"},
                },
                "s3Config": {"bucketName": self.bucket.bucket_name, "keyPrefix": "invocations"},
                "textDataDeliveryEnabled": True,
                "imageDataDeliveryEnabled": True,
                "embeddingDataDeliveryEnabled": True,
            }
        }
        call = cr.AwsSdkCall(
            service="bedrock",
            action="putModelInvocationLoggingConfiguration",
            parameters=config,
            physical_resource_id=cr.PhysicalResourceId.of(f"bedrock-invocation-logging-{stack.region}"),
        )
        resource = cr.AwsCustomResource(
            self,
            "InvocationLogging",
            on_create=call,
            on_update=call,
            on_delete=cr.AwsSdkCall(service="bedrock", action="deleteModelInvocationLoggingConfiguration"),
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [
                    iam.PolicyStatement(
                        actions=[
                            "bedrock:PutModelInvocationLoggingConfiguration",
                            "bedrock:DeleteModelInvocationLoggingConfiguration",
                        ],
                        resources=["*"],
                    ),
                    iam.PolicyStatement(actions=["iam:PassRole"], resources=[self.logging_role.role_arn]),
                ]
            ),
            install_latest_aws_sdk=False,
        )
        for policy in resource.node.find_all():
            if isinstance(policy, iam.CfnPolicy):
                acknowledge_policy_wildcards(
                    policy,
                    "Model invocation logging is an account-and-region setting "
                    "with no resource ARN; the role may set and delete it only.",
                )
        # The singleton function of AwsCustomResource lives at stack level.
        for child in stack.node.children:
            if child.node.id.startswith("AWS679f53fac002430cb0da5b7982bd2287"):
                acknowledge(
                    child,
                    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                    "AWSLambdaBasicExecutionRole]",
                    "aws-cdk-lib's AwsCustomResource function writes its own logs with the basic policy.",
                )
                acknowledge(child, "AwsSolutions-L1", "aws-cdk-lib pins AwsCustomResource's runtime; upgraded with it.")
                child.node.default_child.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})
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
