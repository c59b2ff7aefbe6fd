"""``TrainiumCluster``: a SageMaker HyperPod cluster (``AWS::SageMaker::Cluster``) for distributed
training on Trainium (or GPU): a controller group and worker groups, lifecycle scripts shipped from
the repository into a ``sagemaker-`` bucket, FSx for Lustre (PERSISTENT_2) linked to the data bucket
and mounted on every node, an EFA-ready security group, node recovery, KMS-encrypted volumes and a
least-privilege cluster role.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import ArnFormat, Fn, Names, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_fsx as fsx
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3_deployment
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from ._validation import invalid, require_choice, require_int
from .nag import acknowledge, acknowledge_policy_wildcards, allow
from .storage import prefer_bucket_policy_access_logs, secure_bucket

LIFECYCLE_SCRIPTS = Path(__file__).parent / "assets" / "hyperpod_lifecycle"
WORKER_TYPES = (
    "ml.trn1.32xlarge",
    "ml.trn1n.32xlarge",
    "ml.p4d.24xlarge",
    "ml.p4de.24xlarge",
    "ml.p5.48xlarge",
    "ml.g5.8xlarge",
    "ml.g5.12xlarge",
    "ml.g5.24xlarge",
    "ml.g5.48xlarge",
)
CONTROLLER_TYPES = (
    "ml.m5.xlarge",
    "ml.m5.2xlarge",
    "ml.m5.4xlarge",
    "ml.c5.xlarge",
    "ml.c5.2xlarge",
    "ml.c5.4xlarge",
    "ml.t3.xlarge",
)
THROUGHPUTS = (125, 250, 500, 1000)
_GROUP_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


@dataclass(frozen=True)
class InstanceGroup:
    """One HyperPod instance group: ``name``, instance type and count, EBS volume per node."""

    name: str
    instance_type: str = "ml.trn1.32xlarge"
    instance_count: int = 2
    volume_size_gb: int = 500
    threads_per_core: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _GROUP_NAME.match(self.name):
            raise invalid("instance_group.name", self.name, "use 1-63 letters, digits and hyphens.")
        require_int(f"instance_group[{self.name}].instance_count", self.instance_count, minimum=1, maximum=512)
        require_int(f"instance_group[{self.name}].volume_size_gb", self.volume_size_gb, minimum=1, maximum=16384)
        require_choice(f"instance_group[{self.name}].threads_per_core", self.threads_per_core, (1, 2))


class TrainiumCluster(Construct):
    """A HyperPod cluster. Escape hatches: ``cluster``, ``role``, ``file_system``, ``security_group``,
    ``lifecycle_bucket``, ``key``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        data_bucket: s3.IBucket,
        workers: Sequence[InstanceGroup] | None = None,
        controller: InstanceGroup | None = None,
        availability_zone: str | None = None,
        data_prefix: str = "",
        fsx_storage_gib: int = 1200,
        fsx_throughput_per_tib: int = 250,
        lifecycle_scripts: str | Path = LIFECYCLE_SCRIPTS,
        encryption_key: kms.IKey | None = None,
        cluster_name: str | None = None,
    ) -> None:
        """
        :param vpc: the VPC; the cluster and FSx sit in one private subnet (EFA and FSx are single-AZ).
        :param data_bucket: training data; FSx imports from and exports to ``data_prefix`` in it.
        :param workers: worker groups; default one group of 2 x ml.trn1.32xlarge.
        :param controller: the Slurm controller group; default 1 x ml.m5.xlarge.
        :param availability_zone: AZ of the subnet to use; default the first private subnet's.
        :param fsx_storage_gib: FSx capacity, a multiple of 1200.
        :param fsx_throughput_per_tib: PERSISTENT_2 throughput, 125/250/500/1000 MB/s per TiB.
        :param lifecycle_scripts: folder with ``on_create.sh`` (default: the one this library ships).
        """
        super().__init__(scope, construct_id)
        prefer_bucket_policy_access_logs(self)
        stack = Stack.of(self)
        workers = list(workers) if workers is not None else [InstanceGroup("trn1")]
        controller = controller or InstanceGroup("controller", "ml.m5.xlarge", 1, volume_size_gb=100)
        self.validate_props(workers, controller, fsx_storage_gib, fsx_throughput_per_tib, lifecycle_scripts)
        subnet = self._subnet(vpc, availability_zone)
        self.cluster_name = cluster_name or Names.unique_resource_name(self, max_length=63, separator="-")

        self.key = encryption_key or kms.Key(
            self, "Key", enable_key_rotation=True, description=f"HyperPod cluster {self.cluster_name}: volumes, FSx"
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            allow_all_outbound=False,
            description="HyperPod nodes and FSx: all traffic within the group (EFA, Lustre), HTTPS out",
        )
        # EFA needs all traffic to and from the group itself; Lustre (988, 1018-1023) rides on it.
        self.security_group.add_ingress_rule(self.security_group, ec2.Port.all_traffic(), "EFA and Lustre within")
        self.security_group.add_egress_rule(self.security_group, ec2.Port.all_traffic(), "EFA and Lustre within")
        self.security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "AWS APIs over HTTPS")

        self.file_system = fsx.LustreFileSystem(
            self,
            "FileSystem",
            vpc=vpc,
            vpc_subnet=subnet,
            security_group=self.security_group,
            storage_capacity_gib=fsx_storage_gib,
            kms_key=self.key,
            file_system_type_version=fsx.FileSystemTypeVersion.V_2_15,
            lustre_configuration=fsx.LustreConfiguration(
                deployment_type=fsx.LustreDeploymentType.PERSISTENT_2,
                per_unit_storage_throughput=fsx_throughput_per_tib,
                data_compression_type=fsx.LustreDataCompressionType.LZ4,
            ),
            removal_policy=RemovalPolicy.RETAIN,
        )
        prefix = data_prefix.strip("/")
        self.data_repository = fsx.CfnDataRepositoryAssociation(
            self,
            "DataRepository",
            file_system_id=self.file_system.file_system_id,
            file_system_path="/data",
            data_repository_path=f"s3://{data_bucket.bucket_name}/{prefix + '/' if prefix else ''}",
            batch_import_meta_data_on_create=True,
            s3=fsx.CfnDataRepositoryAssociation.S3Property(
                auto_import_policy=fsx.CfnDataRepositoryAssociation.AutoImportPolicyProperty(
                    events=["NEW", "CHANGED", "DELETED"]
                ),
                auto_export_policy=fsx.CfnDataRepositoryAssociation.AutoExportPolicyProperty(
                    events=["NEW", "CHANGED", "DELETED"]
                ),
            ),
        )

        self.lifecycle_bucket = self._lifecycle_bucket(stack)
        deployment = s3_deployment.BucketDeployment(
            self,
            "LifecycleScripts",
            sources=[s3_deployment.Source.asset(str(lifecycle_scripts))],
            destination_bucket=self.lifecycle_bucket,
            destination_key_prefix="lifecycle/",
            retain_on_delete=False,
        )
        self._acknowledge_deployment(stack)

        self.role = iam.Role(
            self,
            "ClusterRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"HyperPod cluster {self.cluster_name} nodes (least privilege)",
        )
        self._grant(stack)

        def group(spec: InstanceGroup) -> sagemaker.CfnCluster.ClusterInstanceGroupProperty:
            return sagemaker.CfnCluster.ClusterInstanceGroupProperty(
                instance_group_name=spec.name,
                instance_type=spec.instance_type,
                instance_count=spec.instance_count,
                execution_role=self.role.role_arn,
                threads_per_core=spec.threads_per_core,
                life_cycle_config=sagemaker.CfnCluster.ClusterLifeCycleConfigProperty(
                    source_s3_uri=f"s3://{self.lifecycle_bucket.bucket_name}/lifecycle/", on_create="on_create.sh"
                ),
                instance_storage_configs=[
                    sagemaker.CfnCluster.ClusterInstanceStorageConfigProperty(
                        ebs_volume_config=sagemaker.CfnCluster.ClusterEbsVolumeConfigProperty(
                            volume_size_in_gb=spec.volume_size_gb, volume_kms_key_id=self.key.key_arn
                        )
                    ),
                    sagemaker.CfnCluster.ClusterInstanceStorageConfigProperty(
                        fsx_lustre_config=sagemaker.CfnCluster.ClusterFsxLustreConfigProperty(
                            dns_name=self.file_system.dns_name,
                            mount_name=self.file_system.mount_name,
                            mount_path="/fsx",
                        )
                    ),
                ],
            )

        self.cluster = sagemaker.CfnCluster(
            self,
            "Resource",
            cluster_name=self.cluster_name,
            instance_groups=[group(controller), *[group(w) for w in workers]],
            node_recovery="Automatic",
            vpc_config=sagemaker.CfnCluster.VpcConfigProperty(
                security_group_ids=[self.security_group.security_group_id], subnets=[subnet.subnet_id]
            ),
        )
        self.cluster.node.add_dependency(deployment, self.role.node.find_child("DefaultPolicy"), self.data_repository)

    # ---- validation -------------------------------------------------------------------------

    @staticmethod
    def default_lifecycle_scripts() -> Path:
        return LIFECYCLE_SCRIPTS

    @staticmethod
    def validate_props(workers, controller, storage, throughput, lifecycle_scripts) -> None:
        """The checks the constructor runs, also usable on a configuration before synth."""
        if not workers:
            raise invalid("workers", workers, "give at least one worker InstanceGroup.")
        names = [controller.name] + [w.name for w in workers]
        if len(set(names)) != len(names):
            raise invalid("workers", names, "instance group names must be unique (the controller's included).")
        for worker in workers:
            if worker.instance_type not in WORKER_TYPES:
                raise invalid(
                    f"instance_group[{worker.name}].instance_type",
                    worker.instance_type,
                    f"HyperPod workers here are one of {', '.join(WORKER_TYPES)}.",
                )
        if controller.instance_type not in CONTROLLER_TYPES:
            raise invalid(
                "controller.instance_type",
                controller.instance_type,
                f"use a CPU type for the controller: {', '.join(CONTROLLER_TYPES)}.",
            )
        if controller.instance_count != 1:
            raise invalid(
                "controller.instance_count", controller.instance_count, "a Slurm controller group has 1 node."
            )
        require_int("fsx_storage_gib", storage, minimum=1200)
        if storage % 1200:
            raise invalid("fsx_storage_gib", storage, "PERSISTENT_2 grows in steps of 1200 GiB (1200, 2400, ...).")
        require_choice("fsx_throughput_per_tib", throughput, THROUGHPUTS)
        if not (Path(lifecycle_scripts) / "on_create.sh").is_file():
            raise invalid("lifecycle_scripts", str(lifecycle_scripts), "the folder must contain on_create.sh.")

    def _subnet(self, vpc: ec2.IVpc, availability_zone: str | None) -> ec2.ISubnet:
        try:
            private = vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS).subnets
        except RuntimeError:
            private = []
        if not private:
            raise invalid(
                "vpc", "no private subnets", "HyperPod nodes need a private subnet with egress (NAT) in the VPC."
            )
        if availability_zone is None:
            return private[0]
        matching = [s for s in private if s.availability_zone == availability_zone]
        if not matching:
            zones = sorted({s.availability_zone for s in private})
            raise invalid(
                "availability_zone",
                availability_zone,
                f"the VPC has private subnets in {zones}; the cluster and FSx must share one of them.",
            )
        return matching[0]

    # ---- resources ------------------------------------------------------------------------------

    def _lifecycle_bucket(self, stack: Stack) -> s3.Bucket:
        suffix = Names.unique_id(self)[-8:].lower()
        return secure_bucket(
            self,
            "LifecycleBucket",
            key=self.key,
            logs_prefix="lifecycle/",
            # SageMaker's HyperPod policies expect lifecycle buckets to be named sagemaker-*.
            bucket_name=Fn.join("-", ["sagemaker-hyperpod", suffix, stack.account, stack.region]),
        )

    def _grant(self, stack: Stack) -> None:
        allow(
            self.role,
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[self.lifecycle_bucket.arn_for_objects("lifecycle/*")]
            ),
            "Nodes download every lifecycle script under the lifecycle/ prefix of their own bucket.",
        )
        allow(
            self.role,
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[self.lifecycle_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": ["lifecycle/*"]}},
            ),
        )
        self.key.grant(self.role, "kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey", "kms:CreateGrant")
        log_group = f"/aws/sagemaker/Clusters/{self.cluster_name}"
        allow(
            self.role,
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
                resources=[
                    stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name=f"{log_group}*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            ),
            "HyperPod names the cluster's log groups and streams after the cluster and node ids at run time.",
        )
        allow(
            self.role,
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/Clusters*"]}},
            ),
            "cloudwatch:PutMetricData has no resource-level permissions; a namespace condition scopes it.",
        )
        allow(
            self.role,
            iam.PolicyStatement(
                actions=[
                    "ec2:CreateNetworkInterface",
                    "ec2:CreateNetworkInterfacePermission",
                    "ec2:DeleteNetworkInterface",
                    "ec2:DeleteNetworkInterfacePermission",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeVpcs",
                    "ec2:DescribeDhcpOptions",
                    "ec2:DescribeSubnets",
                    "ec2:DescribeSecurityGroups",
                    "ec2:DetachNetworkInterface",
                ],
                resources=["*"],
            ),
            "HyperPod attaches node network interfaces (EFA) in the VPC; these EC2 actions have no resource scope "
            "when the interfaces are created.",
        )

    def _acknowledge_deployment(self, stack: Stack) -> None:
        """The BucketDeployment's provider Lambda is aws-cdk-lib's own singleton at stack level."""
        provider = next((c for c in stack.node.children if c.node.id.startswith("Custom::CDKBucketDeployment")), None)
        if provider is None:
            return
        basic_execution = "arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
        reasons = {
            f"AwsSolutions-IAM4[Policy::{basic_execution}]": (
                "aws-cdk-lib's BucketDeployment provider writes its own logs with the basic execution policy."
            ),
            "AwsSolutions-L1": (
                "aws-cdk-lib pins the BucketDeployment provider's runtime; it is upgraded with the library."
            ),
        }
        for rule, reason in reasons.items():
            acknowledge(provider, rule, reason)
        # cfn-lint W3005: aws-cdk-lib adds a DependsOn its role that a GetAtt already implies.
        provider.node.default_child.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})
        role_policy = provider.node.try_find_child("ServiceRole")
        policy = role_policy.node.try_find_child("DefaultPolicy") if role_policy else None
        if policy is not None:
            acknowledge_policy_wildcards(
                policy.node.default_child,
                "aws-cdk-lib's BucketDeployment provider copies the lifecycle scripts with the library's own grants, "
                "limited to the CDK asset bucket and the lifecycle bucket.",
            )
