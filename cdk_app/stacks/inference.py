"""LLM inference: the LMI endpoint(s) of the environment, their key, alarm topic and dashboard."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from genai_cdk import DataCapture, LmiEndpoint, ModelArtifact, Variant, encrypted_alarm_topic

from ..config import EnvironmentConfig, VariantConfig
from .base import EnvironmentStack


class InferenceStack(EnvironmentStack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, vpc: ec2.IVpc, **kwargs
    ) -> None:
        super().__init__(scope, construct_id, config=config, **kwargs)
        inference = config.inference
        self.key: kms.IKey
        if config.kms.key_arn:
            # An imported key's policy must already let cloudwatch.amazonaws.com use it for the topic.
            self.key = kms.Key.from_key_arn(self, "Key", config.kms.key_arn)
        else:
            self.key = kms.Key(
                self,
                "Key",
                alias=f"alias/genai-cdk/{config.name}/inference",
                description=f"genai-cdk {config.name}: endpoint volumes, data capture and alarm topic",
                enable_key_rotation=True,
                pending_window=Duration.days(config.kms.deletion_window_days),
            )
        self.alarm_topic = encrypted_alarm_topic(self, "AlarmTopic", self.key, f"genai-cdk {config.name} inference")
        if inference.alarms.email:
            self.alarm_topic.add_subscription(subscriptions.EmailSubscription(inference.alarms.email))

        bucket = s3.Bucket.from_bucket_name(self, "ModelBucket", inference.model.bucket)
        model = ModelArtifact.from_s3_prefix(bucket, inference.model.prefix)

        def variant(v: VariantConfig) -> Variant:
            return Variant(
                v.name,
                weight=v.weight,
                instance_count=v.instance_count,
                instance_type=v.instance_type,
                model=ModelArtifact.from_s3_prefix(bucket, v.model_prefix) if v.model_prefix else None,
            )

        common = dict(
            instance_type=inference.instance_type,
            options=inference.options.build(),
            rollout=inference.rollout.build(),
            alarms=inference.alarms.build(),
            alarm_topic=self.alarm_topic,
            vpc=vpc,
            encryption_key=self.key,
            network_isolation=inference.network_isolation,
        )
        self.endpoint = LmiEndpoint(
            self,
            "Llm",
            model=model,
            instance_count=inference.instance_count,
            variants=[variant(v) for v in inference.variants] if inference.variants else None,
            autoscaling=inference.autoscaling.build() if inference.autoscaling else None,
            **common,
        )
        endpoints = [self.endpoint]
        CfnOutput(self, "EndpointName", value=self.endpoint.endpoint_name)

        self.shadow_endpoint: LmiEndpoint | None = None
        if inference.shadow_test:
            test = inference.shadow_test
            self.shadow_endpoint = LmiEndpoint(
                self,
                "LlmShadowTest",
                model=model,
                variants=[variant(test.production)],
                shadow=variant(test.shadow),
                data_capture=DataCapture(sampling_percentage=test.sampling_percentage),
                **common,
            )
            endpoints.append(self.shadow_endpoint)
            CfnOutput(self, "ShadowTestEndpointName", value=self.shadow_endpoint.endpoint_name)

        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=f"genai-cdk-{config.name}-inference",
            widgets=[endpoint.dashboard_widgets() for endpoint in endpoints],
        )
