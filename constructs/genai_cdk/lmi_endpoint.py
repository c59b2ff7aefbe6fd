"""``LmiEndpoint``: a SageMaker real-time endpoint serving an LLM with the LMI (DJL Serving) container.

The book's chapter 8 workflow as one construct: model artifact + LMI image + typed options ->
``CfnModel`` per variant -> ``CfnEndpointConfig`` (A/B variants, shadow variant, data capture,
KMS, VPC) -> ``CfnEndpoint`` (blue/green or rolling guardrails with auto-rollback), plus
autoscaling, alarms, an SNS topic, metric helpers and dashboard widgets.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from aws_cdk import ArnFormat, Duration, Names, Stack
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from constructs import Construct

from ._validation import invalid, require_int
from .alarms import EndpointAlarms
from .autoscaling import Autoscaling
from .data_capture import DataCapture
from .instance_types import InstanceSpec, instance_spec
from .lmi_image import Flavor, LmiImage
from .lmi_options import MAX_STARTUP_SECONDS, LmiOptions
from .model_artifact import ModelArtifact
from .nag import allow
from .notifications import encrypted_alarm_topic
from .rollout import Rollout
from .storage import prefer_bucket_policy_access_logs, secure_bucket
from .variant import Variant

NAMESPACE = "AWS/SageMaker"
DEFAULT_VARIANT = "AllTraffic"
_INVOKE_ACTIONS = ["sagemaker:InvokeEndpoint", "sagemaker:InvokeEndpointWithResponseStream"]
_VPC_ACTIONS = [
    "ec2:CreateNetworkInterface",
    "ec2:CreateNetworkInterfacePermission",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
]


@dataclass(frozen=True)
class _ResolvedVariant:
    variant: Variant
    spec: InstanceSpec
    options: LmiOptions
    model: ModelArtifact


class LmiEndpoint(Construct):
    """An LLM behind a SageMaker real-time endpoint, secure and observable by default.

    Minimal use::

        LmiEndpoint(self, "Llm", model=ModelArtifact.from_s3_prefix(bucket, "llama2-7b/"))

    Escape hatches: ``role``, ``key``, ``models``, ``endpoint_config``, ``endpoint``, ``alarms``,
    ``alarm_topic``, ``scalable_targets`` and ``capture_bucket`` are the underlying resources.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        model: ModelArtifact,
        instance_type: str = "ml.g5.2xlarge",
        instance_count: int = 1,
        options: LmiOptions | None = None,
        image: LmiImage | None = None,
        variants: Sequence[Variant] | None = None,
        shadow: Variant | None = None,
        data_capture: DataCapture | None = None,
        autoscaling: Autoscaling | None = None,
        rollout: Rollout | None = None,
        alarms: EndpointAlarms | None = None,
        alarm_topic: sns.ITopic | None = None,
        vpc: ec2.IVpc | None = None,
        vpc_subnets: ec2.SubnetSelection | None = None,
        security_groups: Sequence[ec2.ISecurityGroup] | None = None,
        encryption_key: kms.IKey | None = None,
        network_isolation: bool = False,
        container_startup_timeout: Duration | None = None,
        volume_size_gb: int | None = None,
        endpoint_name: str | None = None,
    ) -> None:
        """
        :param model: the model weights (the one required input).
        :param instance_type: default instance type of every variant, e.g. ``ml.inf2.48xlarge``.
        :param instance_count: instance count of the default single variant (with ``variants``, each has its own).
        :param options: LMI options; ``OPTION_*`` environment of every variant without its own.
        :param image: the LMI image; default: the pinned DLC whose flavor fits each variant's instance type.
        :param variants: production variants for A/B tests; default one variant ``AllTraffic``.
        :param shadow: a shadow variant that receives a copy of production traffic
            (needs exactly one production variant).
        :param data_capture: request/response capture; default on (100 %) when there is a shadow, else off.
        :param autoscaling: target tracking (and optional step scaling) for every production variant without
            an ``autoscaling`` of its own (``Variant(..., autoscaling=...)`` overrides it for that variant).
        :param rollout: deployment guardrail for updates; default blue/green all-at-once with auto-rollback.
        :param alarms: alarm thresholds; default ``EndpointAlarms()``.
        :param alarm_topic: where alarms notify; default a new KMS-encrypted topic.
        :param vpc: run the containers in this VPC (private subnets by default).
        :param vpc_subnets: the subnets of ``vpc`` to use; default its private subnets with egress.
        :param security_groups: default a new group that only allows HTTPS egress.
        :param encryption_key: KMS key for storage volumes, capture data and the topic; default a new rotated key.
        :param network_isolation: forbid the container any outbound network call.
        :param container_startup_timeout: health-check budget; default model loading timeout + 10 minutes (max 1 h).
        :param volume_size_gb: ML storage volume per instance (not for instance types with local NVMe).
        :param endpoint_name: physical name; default derived from the construct path.
        """
        super().__init__(scope, construct_id)
        prefer_bucket_policy_access_logs(self)
        if not isinstance(model, ModelArtifact):
            raise invalid(
                "model", model, "pass ModelArtifact.from_s3_prefix(...), .from_s3_object(...) or .from_asset(...)."
            )
        require_int("instance_count", instance_count, minimum=1)
        options = options or LmiOptions()
        if not isinstance(options, LmiOptions):
            raise invalid("options", options, "pass an LmiOptions(...).")
        self._stack = Stack.of(self)
        self.endpoint_name = endpoint_name or Names.unique_resource_name(self, max_length=63, separator="-")
        _validate_endpoint_name(self.endpoint_name)

        production = self._resolve_variants(model, instance_type, instance_count, options, image, variants)
        shadow_resolved = self._resolve_shadow(shadow, production, model, instance_type, options, image)
        everything = production + ([shadow_resolved] if shadow_resolved else [])
        if data_capture is None and shadow_resolved is not None:
            data_capture = DataCapture()
        rollout = rollout or Rollout.all_at_once()
        if rollout.strategy == "ROLLING" and len(production) > 1:
            raise invalid(
                "rollout",
                "Rollout.rolling(...)",
                "SageMaker does not roll multi-variant endpoints; use Rollout.canary/linear/all_at_once.",
            )
        startup_seconds = self._startup_seconds(container_startup_timeout, everything)
        if volume_size_gb is not None:
            require_int("volume_size_gb", volume_size_gb, minimum=1, maximum=512)
            with_nvme = [r.spec.instance_type for r in everything if r.spec.local_nvme]
            if with_nvme:
                raise invalid(
                    "volume_size_gb",
                    volume_size_gb,
                    f"{', '.join(sorted(set(with_nvme)))} use local NVMe storage; leave it unset.",
                )
        scaling = self._scaling(autoscaling, production, shadow_resolved)
        self.production_variant_names = [r.variant.name for r in production]
        self.shadow_variant_name = shadow_resolved.variant.name if shadow_resolved else None

        self.key = encryption_key or kms.Key(
            self, "Key", enable_key_rotation=True, description=f"LMI endpoint {self.endpoint_name}"
        )
        self.role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"Execution role of LMI endpoint {self.endpoint_name} (least privilege)",
        )
        self._grant_logs()
        vpc_config, self.security_groups = self._vpc_config(vpc, vpc_subnets, security_groups)

        self.models: dict[str, sagemaker.CfnModel] = {}
        for r in everything:
            self.models[r.variant.name] = self._model(r, image, vpc_config, network_isolation)

        self.capture_bucket: s3.IBucket | None = None
        capture_config = self._data_capture(data_capture) if data_capture else None

        # SageMaker rejects a KMS key for the storage volume of instance types with local NVMe
        # (those volumes are hardware-encrypted); set it whenever every fleet has EBS volumes.
        volume_key = None if any(r.spec.local_nvme for r in everything) else self.key.key_arn
        if volume_key:
            self.key.grant(self.role, "kms:CreateGrant", "kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey")
        self.endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "EndpointConfig",
            production_variants=[self._variant_property(r, startup_seconds, volume_size_gb) for r in production],
            shadow_production_variants=(
                [self._variant_property(shadow_resolved, startup_seconds, volume_size_gb)] if shadow_resolved else None
            ),
            data_capture_config=capture_config,
            kms_key_id=volume_key,
        )

        self.alarm_topic = alarm_topic or encrypted_alarm_topic(
            self, "AlarmTopic", self.key, f"Alarms of LMI endpoint {self.endpoint_name}"
        )
        self._alarm_config = alarms or EndpointAlarms()
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        rollback_alarms = self._create_alarms(self._alarm_config)

        self.endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_config_name=self.endpoint_config.attr_endpoint_config_name,
            endpoint_name=self.endpoint_name,
            deployment_config=rollout.render([a.alarm_name for a in rollback_alarms]),
        )
        self.endpoint_arn = self._stack.format_arn(
            service="sagemaker", resource="endpoint", resource_name=self.endpoint_name.lower()
        )
        self.scalable_targets = {name: self._autoscale(name, config) for name, config in scaling.items()}

    # ---- validation -------------------------------------------------------------------------

    @staticmethod
    def _resolve(
        variant: Variant,
        prop: str,
        model: ModelArtifact,
        instance_type: str,
        options: LmiOptions,
        image: LmiImage | None,
    ) -> _ResolvedVariant:
        spec = instance_spec(
            variant.instance_type or instance_type,
            f"{prop}.instance_type" if variant.instance_type else "instance_type",
        )
        resolved_options = variant.options or options
        resolved_options.validate_for(spec, f"{prop}.options" if variant.options else "options")
        if image is not None and image.flavor is not None and image.flavor != spec.flavor:
            raise invalid(
                "image",
                f"LmiImage.dlc({image.flavor!r})",
                f"{spec.instance_type} needs the '{spec.flavor}' flavor; use LmiImage.dlc({spec.flavor!r}) "
                "or leave image unset to pick it per instance type.",
            )
        return _ResolvedVariant(variant, spec, resolved_options, variant.model or model)

    @staticmethod
    def _scaling(autoscaling, production, shadow) -> dict[str, Autoscaling]:
        """Each production variant's autoscaling: its own ``Variant.autoscaling``, else the endpoint's."""
        if autoscaling is not None and not isinstance(autoscaling, Autoscaling):
            raise invalid("autoscaling", autoscaling, "pass an Autoscaling(...) or None.")
        if shadow is not None and shadow.variant.autoscaling is not None:
            raise invalid(
                f"shadow[{shadow.variant.name}].autoscaling",
                shadow.variant.autoscaling,
                "only production variants are autoscaled; size the shadow fleet with instance_count.",
            )
        scaling = {}
        for r in production:
            config = r.variant.autoscaling or autoscaling
            if config is None:
                continue
            count = r.variant.instance_count
            if not config.min_capacity <= count <= config.max_capacity:  # Variant checks a range of its own
                raise invalid(
                    f"variant[{r.variant.name}].instance_count",
                    count,
                    f"must lie within autoscaling min_capacity..max_capacity "
                    f"({config.min_capacity}..{config.max_capacity}); give the variant an autoscaling= "
                    "of its own, or change the count or the range.",
                )
            scaling[r.variant.name] = config
        return scaling

    def _resolve_variants(self, model, instance_type, instance_count, options, image, variants):
        if variants is None:
            variants = [Variant(DEFAULT_VARIANT, instance_count=instance_count)]
        elif instance_count != 1:
            raise invalid(
                "instance_count",
                instance_count,
                "applies to the default single variant only; with variants=, give each Variant its instance_count.",
            )
        variants = list(variants)
        if not variants:
            raise invalid("variants", variants, "give at least one Variant, or leave variants unset.")
        names = [v.name for v in variants if isinstance(v, Variant)]
        if len(names) != len(variants):
            raise invalid("variants", variants, "every item must be a Variant(...).")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise invalid("variants", names, f"variant names must be unique; {duplicates} repeat.")
        if sum(v.weight for v in variants) <= 0:
            raise invalid(
                "variants",
                [v.weight for v in variants],
                "at least one production variant needs a weight above zero to take traffic.",
            )
        return [self._resolve(v, f"variant[{v.name}]", model, instance_type, options, image) for v in variants]

    def _resolve_shadow(self, shadow, production, model, instance_type, options, image):
        if shadow is None:
            return None
        if not isinstance(shadow, Variant):
            raise invalid("shadow", shadow, "pass a Variant(...).")
        if len(production) != 1:
            raise invalid(
                "shadow",
                shadow.name,
                f"SageMaker mirrors traffic from exactly one production variant, but {len(production)} were given; "
                "run the A/B test and the shadow test on separate endpoints.",
            )
        if shadow.name in [r.variant.name for r in production]:
            raise invalid("shadow.name", shadow.name, "must differ from the production variant names.")
        if shadow.weight <= 0:
            raise invalid("shadow.weight", shadow.weight, "must be above zero or the shadow receives no traffic.")
        return self._resolve(shadow, f"shadow[{shadow.name}]", model, instance_type, options, image)

    @staticmethod
    def _startup_seconds(timeout: Duration | None, variants: list[_ResolvedVariant]) -> int:
        loading = max(r.options.model_loading_timeout for r in variants)
        if timeout is None:
            return min(MAX_STARTUP_SECONDS, loading + 600)
        if not isinstance(timeout, Duration):
            raise invalid("container_startup_timeout", timeout, "pass an aws_cdk.Duration.")
        seconds = int(timeout.to_seconds())
        if not 60 <= seconds <= MAX_STARTUP_SECONDS:
            raise invalid("container_startup_timeout", f"{seconds}s", "SageMaker allows 60-3600 seconds.")
        if seconds < loading:
            raise invalid(
                "container_startup_timeout",
                f"{seconds}s",
                f"must cover options.model_loading_timeout ({loading}s) or SageMaker kills the container "
                "while the model still loads; raise it or lower model_loading_timeout.",
            )
        return seconds

    # ---- resources ----------------------------------------------------------------------------

    def _grant_logs(self) -> None:
        log_group = f"/aws/sagemaker/Endpoints/{self.endpoint_name}"
        allow(
            self.role,
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
                resources=[
                    self._stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name=log_group,
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    ),
                    self._stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name=f"{log_group}:*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    ),
                ],
            ),
            "Log streams are created per instance at run time; the wildcard stays inside this endpoint's log group.",
        )
        allow(
            self.role,
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": ["/aws/sagemaker/Endpoints", NAMESPACE]}},
            ),
            "cloudwatch:PutMetricData has no resource-level permissions; a namespace condition scopes it.",
        )

    def _vpc_config(self, vpc, vpc_subnets, security_groups):
        if vpc is None:
            if vpc_subnets is not None or security_groups:
                raise invalid("vpc", None, "vpc_subnets and security_groups need a vpc; pass vpc=... too.")
            return None, []
        groups = list(security_groups or [])
        if not groups:
            group = ec2.SecurityGroup(
                self,
                "SecurityGroup",
                vpc=vpc,
                allow_all_outbound=False,
                description=f"LMI endpoint {self.endpoint_name}: HTTPS egress only",
            )
            group.add_egress_rule(ec2.Peer.ipv4(vpc.vpc_cidr_block), ec2.Port.tcp(443), "VPC endpoints")
            group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "S3 and ECR over HTTPS")
            groups = [group]
        try:
            subnets = vpc.select_subnets(**_subnet_kwargs(vpc_subnets)).subnet_ids
        except RuntimeError as error:  # jsii surfaces the CDK's selection error as RuntimeError
            raise invalid("vpc_subnets", vpc_subnets, f"{error}; select subnets that exist in the VPC.") from None
        if not subnets:
            raise invalid("vpc_subnets", vpc_subnets, "the selection matched no subnet in the VPC.")
        allow(
            self.role,
            iam.PolicyStatement(actions=_VPC_ACTIONS, resources=["*"]),
            "SageMaker attaches network interfaces in the VPC; these EC2 actions have no resource-level scope "
            "at the time the interfaces are created.",
        )
        config = sagemaker.CfnModel.VpcConfigProperty(
            security_group_ids=[g.security_group_id for g in groups], subnets=subnets
        )
        return config, groups

    def _model(self, r: _ResolvedVariant, image: LmiImage | None, vpc_config, network_isolation: bool):
        scope = Construct(self, f"Model-{r.variant.name}")
        artifact = r.model.bind(scope, self.role)
        image_uri = (image or LmiImage.dlc(cast(Flavor, r.spec.flavor))).bind(scope, self.role)
        container = sagemaker.CfnModel.ContainerDefinitionProperty(
            image=image_uri,
            environment=r.options.to_environment(r.spec),
            model_data_url=artifact.model_data_url,
            model_data_source=artifact.model_data_source,
        )
        model = sagemaker.CfnModel(
            scope,
            "Resource",
            execution_role_arn=self.role.role_arn,
            primary_container=container,
            vpc_config=vpc_config,
            enable_network_isolation=network_isolation or None,
        )
        # SageMaker checks artifact and image access on CreateModel: the grants must exist first.
        model.node.add_dependency(self.role.node.find_child("DefaultPolicy"))
        return model

    def _variant_property(self, r: _ResolvedVariant, startup_seconds: int, volume_size_gb: int | None):
        return sagemaker.CfnEndpointConfig.ProductionVariantProperty(
            variant_name=r.variant.name,
            model_name=self.models[r.variant.name].attr_model_name,
            instance_type=r.spec.instance_type,
            initial_instance_count=r.variant.instance_count,
            initial_variant_weight=r.variant.weight,
            container_startup_health_check_timeout_in_seconds=startup_seconds,
            model_data_download_timeout_in_seconds=MAX_STARTUP_SECONDS,
            volume_size_in_gb=volume_size_gb,
        )

    def _data_capture(self, capture: DataCapture):
        if not isinstance(capture, DataCapture):
            raise invalid("data_capture", capture, "pass a DataCapture(...) or None.")
        bucket = capture.bucket
        if bucket is None:
            bucket = secure_bucket(self, "CaptureBucket", key=self.key, logs_prefix="capture/")
        self.capture_bucket = bucket
        prefix = capture.prefix.strip("/")
        allow(
            self.role,
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[bucket.arn_for_objects(f"{prefix}/*")]),
            "Capture files are named per endpoint, variant and hour at run time; writes stay under the capture prefix.",
        )
        self.key.grant(self.role, "kms:Encrypt", "kms:GenerateDataKey")
        modes = (["Input"] if capture.capture_requests else []) + (["Output"] if capture.capture_responses else [])
        return sagemaker.CfnEndpointConfig.DataCaptureConfigProperty(
            enable_capture=True,
            initial_sampling_percentage=capture.sampling_percentage,
            destination_s3_uri=f"s3://{bucket.bucket_name}/{prefix}",
            kms_key_id=self.key.key_arn,
            capture_options=[sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode=m) for m in modes],
            capture_content_type_header=sagemaker.CfnEndpointConfig.CaptureContentTypeHeaderProperty(
                json_content_types=["application/json", "application/jsonlines"],
            ),
        )

    def _create_alarms(self, config: EndpointAlarms) -> list[cloudwatch.Alarm]:
        """Alarms per production variant; returns those that should roll a deployment back."""
        rollback: list[cloudwatch.Alarm] = []
        action = cw_actions.SnsAction(self.alarm_topic)
        for variant in self.production_variant_names:
            specs = [
                ("ModelLatency", config.model_latency_p99, "p99", True, "model latency p99 too high"),
                ("OverheadLatency", config.overhead_latency_p99, "p99", True, "overhead latency p99 too high"),
                ("Invocation5XXErrors", config.invocation_5xx_errors, "Sum", True, "server errors"),
                ("Invocation4XXErrors", config.invocation_4xx_errors, "Sum", False, "client errors"),
                ("ModelSetupTime", config.model_setup_time, "Maximum", False, "model setup too slow"),
            ]
            for metric_name, threshold, statistic, rolls_back, what in specs:
                if threshold is None:
                    continue
                value = threshold.to_milliseconds() * 1000 if isinstance(threshold, Duration) else threshold
                alarm = cloudwatch.Alarm(
                    self,
                    f"{metric_name}-{variant}",
                    metric=self.metric(metric_name, variant_name=variant, statistic=statistic, period=config.period),
                    threshold=value,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                    evaluation_periods=config.evaluation_periods,
                    datapoints_to_alarm=config.datapoints_to_alarm,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                    alarm_description=f"LMI endpoint {self.endpoint_name} variant {variant}: {what}",
                )
                alarm.add_alarm_action(action)
                self.alarms[f"{metric_name}/{variant}"] = alarm
                if rolls_back:
                    rollback.append(alarm)
        return rollback

    def _autoscale(self, variant: str, config: Autoscaling) -> appscaling.ScalableTarget:
        target = appscaling.ScalableTarget(
            self,
            f"Scaling-{variant}",
            service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
            resource_id=f"endpoint/{self.endpoint_name}/variant/{variant}",
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            min_capacity=config.min_capacity,
            max_capacity=config.max_capacity,
            role=iam.Role.from_role_arn(
                self,
                f"ScalingRole-{variant}",
                self._stack.format_arn(
                    service="iam",
                    region="",
                    resource="role",
                    resource_name="aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
                    "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint",
                ),
            ),
        )
        target.node.add_dependency(self.endpoint)
        target.scale_to_track_metric(
            "InvocationsPerInstance",
            target_value=config.target_invocations_per_instance,
            predefined_metric=appscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
            scale_in_cooldown=config.scale_in_cooldown,
            scale_out_cooldown=config.scale_out_cooldown,
        )
        if config.step_scaling is not None:
            steps = config.step_scaling
            intervals = [appscaling.ScalingInterval(upper=steps.scale_in_below, change=-1)]
            intervals += [appscaling.ScalingInterval(lower=t, change=add) for t, add in steps.steps]
            target.scale_on_metric(
                "StepScaling",
                metric=self.metric(
                    "InvocationsPerInstance", variant_name=variant, statistic="Sum", period=Duration.minutes(1)
                ),
                scaling_steps=intervals,
                adjustment_type=appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
                cooldown=steps.cooldown,
            )
        return target

    # ---- public API ---------------------------------------------------------------------------

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        """Allow ``grantee`` to call the endpoint (``InvokeEndpoint`` and the streaming variant)."""
        return iam.Grant.add_to_principal(grantee=grantee, actions=_INVOKE_ACTIONS, resource_arns=[self.endpoint_arn])

    def metric(
        self,
        metric_name: str,
        *,
        variant_name: str | None = None,
        statistic: str = "Average",
        period: Duration | None = None,
    ) -> cloudwatch.Metric:
        """A metric of this endpoint's variant (default: the first production variant)."""
        variant = variant_name or self.production_variant_names[0]
        known = self.production_variant_names + ([self.shadow_variant_name] if self.shadow_variant_name else [])
        if variant not in known:
            raise invalid("variant_name", variant, f"this endpoint has variants {known}.")
        return cloudwatch.Metric(
            namespace=NAMESPACE,
            metric_name=metric_name,
            dimensions_map={"EndpointName": self.endpoint_name, "VariantName": variant},
            statistic=statistic,
            period=period or Duration.minutes(1),
        )

    def metric_invocations(self, variant_name: str | None = None) -> cloudwatch.Metric:
        return self.metric("Invocations", variant_name=variant_name, statistic="Sum")

    def metric_model_latency(self, variant_name: str | None = None, statistic: str = "p99") -> cloudwatch.Metric:
        """Time the model container takes to answer, in microseconds."""
        return self.metric("ModelLatency", variant_name=variant_name, statistic=statistic)

    def metric_overhead_latency(self, variant_name: str | None = None, statistic: str = "p99") -> cloudwatch.Metric:
        """Time SageMaker adds around the container, in microseconds."""
        return self.metric("OverheadLatency", variant_name=variant_name, statistic=statistic)

    def metric_invocation_5xx_errors(self, variant_name: str | None = None) -> cloudwatch.Metric:
        return self.metric("Invocation5XXErrors", variant_name=variant_name, statistic="Sum")

    def metric_invocation_4xx_errors(self, variant_name: str | None = None) -> cloudwatch.Metric:
        return self.metric("Invocation4XXErrors", variant_name=variant_name, statistic="Sum")

    def metric_model_setup_time(self, variant_name: str | None = None) -> cloudwatch.Metric:
        return self.metric("ModelSetupTime", variant_name=variant_name, statistic="Maximum")

    def dashboard_widgets(self) -> list[cloudwatch.IWidget]:
        """Graphs of traffic, latency and errors across every variant."""
        variants = self.production_variant_names + ([self.shadow_variant_name] if self.shadow_variant_name else [])

        def per_variant(fn):
            return [fn(v) for v in variants]

        return [
            cloudwatch.GraphWidget(
                title=f"{self.endpoint_name} invocations", left=per_variant(self.metric_invocations), width=8
            ),
            cloudwatch.GraphWidget(
                title=f"{self.endpoint_name} model latency p99 (us)",
                left=per_variant(self.metric_model_latency),
                width=8,
            ),
            cloudwatch.GraphWidget(
                title=f"{self.endpoint_name} errors",
                left=per_variant(self.metric_invocation_5xx_errors),
                right=per_variant(self.metric_invocation_4xx_errors),
                width=8,
            ),
        ]


def _validate_endpoint_name(name: str) -> None:
    if not re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", name or ""):
        raise invalid("endpoint_name", name, "use 1-63 letters, digits and hyphens, starting and ending alphanumeric.")


def _subnet_kwargs(selection: ec2.SubnetSelection | None) -> dict:
    if selection is None:
        return {"subnet_type": ec2.SubnetType.PRIVATE_WITH_EGRESS}
    return {
        "subnet_type": selection.subnet_type,
        "subnet_group_name": selection.subnet_group_name,
        "subnets": selection.subnets,
        "availability_zones": selection.availability_zones,
        "one_per_az": selection.one_per_az,
        "subnet_filters": selection.subnet_filters,
    }
