"""Training: the HyperPod cluster of the environment (when configured)."""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_s3 as s3

from constructs import Construct
from genai_cdk import TrainiumCluster

from ..config import EnvironmentConfig


class TrainingStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, vpc: ec2.IVpc,
                 **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        cluster_config = config.training.cluster
        assert cluster_config is not None
        controller, workers = cluster_config.build()
        self.cluster = TrainiumCluster(
            self, "Cluster",
            vpc=vpc,
            data_bucket=s3.Bucket.from_bucket_name(self, "DataBucket", cluster_config.data_bucket),
            data_prefix=cluster_config.data_prefix,
            availability_zone=cluster_config.availability_zone,
            controller=controller,
            workers=workers,
            fsx_storage_gib=cluster_config.fsx_storage_gib,
            fsx_throughput_per_tib=cluster_config.fsx_throughput_per_tib,
        )
        CfnOutput(self, "ClusterName", value=self.cluster.cluster_name)
