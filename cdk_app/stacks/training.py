"""Training: the HyperPod cluster and the fine-tuning pipeline of the environment (each when configured)."""

from __future__ import annotations

from aws_cdk import CfnOutput
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_s3 as s3
from constructs import Construct

from genai_cdk import FineTuningPipeline, QualityGate, TrainiumCluster
from genai_runtime.train.submit import OUTPUT_KEY as PIPELINE_OUTPUT

from ..config import AlignmentConfig, EnvironmentConfig, PipelineConfig
from .base import EnvironmentStack


class TrainingStack(EnvironmentStack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, vpc: ec2.IVpc, **kwargs
    ) -> None:
        super().__init__(scope, construct_id, config=config, **kwargs)
        self.cluster: TrainiumCluster | None = None
        self.pipeline: FineTuningPipeline | None = None
        self.alignment: FineTuningPipeline | None = None
        if config.training.cluster is not None:
            self._cluster(config, vpc)
        if config.training.pipeline is not None:
            pipeline = config.training.pipeline
            base_model_bucket = s3.Bucket.from_bucket_name(self, "BaseModelBucket", pipeline.base_model.bucket)
            data_bucket = s3.Bucket.from_bucket_name(self, "PipelineDataBucket", pipeline.data_bucket)
            self.pipeline = FineTuningPipeline(
                self,
                "Pipeline",
                training_image=pipeline.training_image,
                base_model_bucket=base_model_bucket,
                base_model_prefix=pipeline.base_model.prefix,
                data_bucket=data_bucket,
                training=pipeline.settings(),
                evaluation_instance_type=pipeline.evaluation_instance_type,
                hyperparameters=pipeline.hyperparameters,
                quality_gate=QualityGate(pipeline.quality_metric, pipeline.quality_threshold),
            )
            # `genai train submit -c env=NAME` finds the pipeline through this output.
            CfnOutput(self, PIPELINE_OUTPUT, value=self.pipeline.state_machine.state_machine_arn)
            if pipeline.alignment is not None:
                self.alignment = self._alignment(
                    pipeline.alignment, pipeline, self.pipeline, base_model_bucket, data_bucket
                )

    def _alignment(
        self,
        alignment: AlignmentConfig,
        pipeline: PipelineConfig,
        sft: FineTuningPipeline,
        base_model_bucket: s3.IBucket,
        data_bucket: s3.IBucket,
    ) -> FineTuningPipeline:
        """The alignment pipeline beside the SFT one: same image, buckets and base model unless configured."""
        package_arn = alignment.base_model_package_arn
        if alignment.base_model_package_version is not None:
            group = sft.model_package_group.model_package_group_name
            package_arn = self.format_arn(
                service="sagemaker",
                resource="model-package",
                resource_name=f"{group.lower()}/{alignment.base_model_package_version}",
            )
        aligned = FineTuningPipeline(
            self,
            "Alignment",
            method=alignment.method,
            training_image=alignment.training_image or pipeline.training_image,
            base_model_bucket=base_model_bucket,
            base_model_prefix=pipeline.base_model.prefix,
            data_bucket=data_bucket,
            training=alignment.settings(),
            hyperparameters=alignment.hyperparameters,
            base_model_package_arn=package_arn,
            base_model_s3_uri=alignment.base_model_s3_uri,
            alignment_gate=alignment.gate(),
            reward=alignment.reward.build() if alignment.reward else None,
            beta=alignment.beta,
        )
        sft.grant_read_models(aligned.training_role)  # the SFT models it starts from
        CfnOutput(self, "AlignmentStateMachineArn", value=aligned.state_machine.state_machine_arn)
        return aligned

    def _cluster(self, config: EnvironmentConfig, vpc: ec2.IVpc) -> None:
        cluster_config = config.training.cluster
        controller, workers = cluster_config.build()
        self.cluster = TrainiumCluster(
            self,
            "Cluster",
            vpc=vpc,
            data_bucket=s3.Bucket.from_bucket_name(self, "DataBucket", cluster_config.data_bucket),
            data_prefix=cluster_config.data_prefix,
            availability_zone=cluster_config.availability_zone,
            controller=controller,
            login=cluster_config.login(),
            workers=workers,
            slurm_config_strategy=cluster_config.slurm_config_strategy,
            fsx_storage_gib=cluster_config.fsx_storage_gib,
            fsx_throughput_per_tib=cluster_config.fsx_throughput_per_tib,
        )
        CfnOutput(self, "ClusterName", value=self.cluster.cluster_name)
