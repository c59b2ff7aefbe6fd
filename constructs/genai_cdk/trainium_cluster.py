"""``TrainiumCluster``: a SageMaker HyperPod cluster (``AWS::SageMaker::Cluster``) orchestrated by Slurm for
distributed training on Trainium (or GPU): a Slurm controller group, an optional login group and compute groups
in named partitions, configured through the HyperPod API (``Orchestrator.Slurm`` + per-group ``SlurmConfig``);
deep health checks on accelerated compute groups; lifecycle scripts shipped from the repository into a
``sagemaker-`` bucket; FSx for Lustre (PERSISTENT_2) linked to the data bucket and mounted on every node; an
EFA-ready security group, node recovery, KMS-encrypted volumes and a least-privilege cluster role.

Facts this module relies on (checked 2026-12-01):

- cfn-lint's bundled resource schema for ``AWS::SageMaker::Cluster`` (cfn-lint 1.58:
  ``cfnlint/data/schemas/providers/us-east-1.json`` maps the type to
  ``cfnlint/data/schemas/resources/1efa22c05ae3bec0.json``): ``Orchestrator`` is ``oneOf`` ``{Eks}`` /
  ``{Slurm}``; ``ClusterOrchestratorSlurmConfig.SlurmConfigStrategy`` is one of ``Overwrite``, ``Managed``,
  ``Merge``; ``ClusterSlurmConfig`` requires ``NodeType`` (``Controller``, ``Login``, ``Compute``) and allows
  at most one ``PartitionNames`` item matching ``^[a-zA-Z0-9](-*[a-zA-Z0-9])*$`` (1024 chars at most);
  ``OnStartDeepHealthChecks`` holds 1-3 of ``InstanceStress``, ``InstanceConnectivity``.
- aws-cdk-lib 2.275's ``CfnCluster`` L1 exposes all of them (``orchestrator.slurm.slurm_config_strategy``,
  ``ClusterInstanceGroupProperty.slurm_config`` / ``on_start_deep_health_checks``): no property override.
- SageMaker HyperPod developer guide, "SageMaker HyperPod Slurm configuration" (sagemaker-hyperpod-ref):
  "``Controller`` ... Exactly one instance group must have this node type"; "``Login`` ... At most one
  instance group can have this node type"; ``PartitionNames`` is "Required for ``Compute`` node types; not
  allowed for ``Controller`` or ``Login`` node types"; "All nodes are automatically added to the universal
  ``dev`` partition"; ``Managed``: "HyperPod fully controls the partition-node mappings in ``slurm.conf``.
  Drift detection is enabled". (Its migration page calls ``Merge`` the default, the reference page
  ``Managed``: we always set the strategy explicitly.)
- Same guide, "Migrating to API-driven Slurm configuration": "HyperPod does not allow a cluster to use both
  ``provisioning_parameters.json`` and the API-driven ``SlurmConfig``"; with it "HyperPod handles Slurm
  topology setup and Amazon FSx mounting automatically ... keep only custom setup steps"; it needs a HyperPod
  AMI released in January 2026 or later.
- Same guide, Slurm "Deep health checks": ``InstanceStress`` runs hardware stress, DCGM and EFA loopback
  tests; ``InstanceConnectivity`` "is only supported on instances with multi-node GPU communication
  capabilities"; "Deep health checks run on worker nodes only. Controller and login nodes are not subject to
  deep health checks."
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from aws_cdk import ArnFormat, CfnResource, Fn, Names, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_fsx as fsx
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3_deployment
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct, IConstruct

from ._validation import invalid, require_choice, require_int
from .instance_types import INSTANCE_SPECS
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
# fullmatch: the schemas' ECMA-style "$" does not accept a trailing newline, Python's re.match would.
_GROUP_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
# cfn-lint schema, ClusterSlurmConfig.PartitionNames items: pattern and maxLength.
_PARTITION_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")
PARTITION_NAME_MAX = 1024
# HyperPod's own partitions: every node is in "dev"; deep health checks park nodes in the maintenance one.
RESERVED_PARTITIONS = ("dev", "hyperpod-system-maintenance")
SLURM_CONFIG_STRATEGIES = ("Managed", "Overwrite", "Merge")
DEEP_HEALTH_CHECKS = ("InstanceStress", "InstanceConnectivity")
LIFECYCLE_ENTRYPOINT = "on_create.sh"
CLUSTER_CONF = "genai_cluster.conf"
"""Written next to the lifecycle scripts at synth time: which instance group is which Slurm node type."""
FSX_MOUNT_PATH = "/fsx"
# Families with EFA on the instance sizes HyperPod offers here (trn1/trn1n 32xlarge, p4d/p4de 24xlarge, p5 48xlarge).
_EFA_FAMILIES = ("trn1", "trn1n", "p4d", "p4de", "p5")


def _family(instance_type: str) -> str:
    parts = instance_type.split(".")
    return parts[1] if len(parts) == 3 else ""


def default_deep_health_checks(instance_type: str) -> tuple[str, ...]:
    """On-start deep health checks a compute group gets unless it says otherwise.

    Trainium: ``InstanceStress`` (hardware stress and EFA loopback). GPU p-family: ``InstanceStress`` and
    ``InstanceConnectivity`` (multi-node NCCL), which the HyperPod Slurm guide supports only on "instances
    with multi-node GPU communication capabilities". g5 and CPU groups: none.
    """
    family = _family(instance_type)
    if family in ("trn1", "trn1n"):
        return ("InstanceStress",)
    if family in ("p4d", "p4de", "p5"):
        return ("InstanceStress", "InstanceConnectivity")
    return ()


@dataclass(frozen=True)
class InstanceGroup:
    """One HyperPod instance group: ``name``, instance type and count, EBS volume per node.

    ``instance_type`` (default ``ml.trn1.32xlarge``), ``instance_count`` (default 2), ``volume_size_gb`` (EBS per
    node, default 500), ``threads_per_core`` (1, the default, turns hyperthreading off; or 2).
    ``partition`` (compute groups only) is the Slurm partition the group's nodes join; default the group name.
    ``deep_health_checks`` (compute groups only): ``None`` for the default of the instance family
    (:func:`default_deep_health_checks`), ``()`` to turn them off, or a tuple of ``InstanceStress`` /
    ``InstanceConnectivity``.
    """

    name: str
    instance_type: str = "ml.trn1.32xlarge"
    instance_count: int = 2
    volume_size_gb: int = 500
    threads_per_core: int = 1
    partition: str | None = None
    deep_health_checks: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _GROUP_NAME.fullmatch(self.name):
            raise invalid("instance_group.name", self.name, "use 1-63 letters, digits and hyphens.")
        require_int(f"instance_group[{self.name}].instance_count", self.instance_count, minimum=1, maximum=512)
        require_int(f"instance_group[{self.name}].volume_size_gb", self.volume_size_gb, minimum=1, maximum=16384)
        require_choice(f"instance_group[{self.name}].threads_per_core", self.threads_per_core, (1, 2))
        if self.partition is not None:
            prop = f"instance_group[{self.name}].partition"
            if (
                not isinstance(self.partition, str)
                or len(self.partition) > PARTITION_NAME_MAX
                or not _PARTITION_NAME.fullmatch(self.partition)
            ):
                raise invalid(
                    prop,
                    self.partition,
                    f"a Slurm partition name is 1-{PARTITION_NAME_MAX} letters and digits, hyphens only between "
                    "them (HyperPod's pattern [a-zA-Z0-9](-*[a-zA-Z0-9])*).",
                )
            if self.partition in RESERVED_PARTITIONS:
                raise invalid(
                    prop,
                    self.partition,
                    "HyperPod adds every node to its universal 'dev' partition and parks nodes under deep health "
                    "checks in 'hyperpod-system-maintenance'; choose another name.",
                )
        if self.deep_health_checks is not None:
            prop = f"instance_group[{self.name}].deep_health_checks"
            checks = self.deep_health_checks
            if isinstance(checks, str) or not isinstance(checks, (tuple, list)):
                raise invalid(prop, checks, "give a tuple, e.g. ('InstanceStress',), or () to turn them off.")
            unknown = [c for c in checks if c not in DEEP_HEALTH_CHECKS]
            if unknown:
                raise invalid(prop, tuple(checks), f"each check is one of {', '.join(DEEP_HEALTH_CHECKS)}.")
            if len(set(checks)) != len(checks):
                raise invalid(prop, tuple(checks), "name each deep health check once.")
            object.__setattr__(self, "deep_health_checks", tuple(checks))

    def effective_deep_health_checks(self) -> tuple[str, ...]:
        """The checks this group runs as a compute group (its own, or the instance family's default)."""
        if self.deep_health_checks is not None:
            return self.deep_health_checks
        return default_deep_health_checks(self.instance_type)

    def partition_name(self) -> str:
        return self.partition if self.partition is not None else self.name


class TrainiumCluster(Construct):
    """A Slurm-orchestrated HyperPod cluster: one controller group, an optional login group, compute groups in
    partitions. Escape hatches: ``cluster``, ``role``, ``file_system``, ``security_group``, ``lifecycle_bucket``,
    ``key``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        data_bucket: s3.IBucket,
        workers: Sequence[InstanceGroup] | None = None,
        controller: InstanceGroup | None = None,
        login: InstanceGroup | None = None,
        slurm_config_strategy: str = "Managed",
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
        :param workers: the Slurm compute groups, each in its ``partition`` (default its name); default one group
            of 2 x ml.trn1.32xlarge. Trainium and p-family groups run on-start deep health checks by default.
        :param controller: the Slurm controller group (runs slurmctld); default 1 x ml.m5.xlarge.
        :param login: an optional Slurm login group for users (sbatch/srun); default none (use the controller).
        :param slurm_config_strategy: how HyperPod owns ``slurm.conf``: ``Managed`` (the API is the source of
            truth, drift fails an update), ``Overwrite`` or ``Merge`` (keeps manual edits).
        :param availability_zone: AZ of the subnet to use; default the first private subnet's.
        :param fsx_storage_gib: FSx capacity, a multiple of 1200.
        :param fsx_throughput_per_tib: PERSISTENT_2 throughput, 125/250/500/1000 MB/s per TiB.
        :param lifecycle_scripts: folder with ``on_create.sh`` (default: the one this library ships); the construct
            adds ``genai_cluster.conf`` (instance group -> Slurm node type) next to it.
        :param encryption_key: KMS key for EBS volumes, FSx and the lifecycle bucket; default a new rotated key.
        :param cluster_name: the HyperPod cluster's name; default derived from the construct path.
        """
        super().__init__(scope, construct_id)
        prefer_bucket_policy_access_logs(self)
        stack = Stack.of(self)
        workers = list(workers) if workers is not None else [InstanceGroup("trn1")]
        controller = controller or InstanceGroup("controller", "ml.m5.xlarge", 1, volume_size_gb=100)
        self.validate_props(
            workers,
            controller,
            fsx_storage_gib,
            fsx_throughput_per_tib,
            lifecycle_scripts,
            login=login,
            slurm_config_strategy=slurm_config_strategy,
        )
        subnet = self._subnet(vpc, availability_zone)
        self.cluster_name = cluster_name or Names.unique_resource_name(self, max_length=63, separator="-")
        self.controller, self.login, self.workers = controller, login, tuple(workers)

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
            sources=[
                s3_deployment.Source.asset(str(lifecycle_scripts)),
                s3_deployment.Source.data(CLUSTER_CONF, self.cluster_conf()),
            ],
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

        def group(spec: InstanceGroup, node_type: str) -> sagemaker.CfnCluster.ClusterInstanceGroupProperty:
            compute = node_type == "Compute"
            checks = spec.effective_deep_health_checks() if compute else ()
            return sagemaker.CfnCluster.ClusterInstanceGroupProperty(
                instance_group_name=spec.name,
                instance_type=spec.instance_type,
                instance_count=spec.instance_count,
                execution_role=self.role.role_arn,
                threads_per_core=spec.threads_per_core,
                # API-driven Slurm: the node type per group, a partition only on compute groups (HyperPod refuses
                # PartitionNames on Controller and Login groups; one partition per group at most).
                slurm_config=sagemaker.CfnCluster.ClusterSlurmConfigProperty(
                    node_type=node_type, partition_names=[spec.partition_name()] if compute else None
                ),
                on_start_deep_health_checks=list(checks) or None,
                # The developer guide's API-driven examples keep OnCreate (its "simplified" lifecycle script); the
                # schema's OnInitComplete ("Extended mode") is not what its Slurm pages use.
                life_cycle_config=sagemaker.CfnCluster.ClusterLifeCycleConfigProperty(
                    source_s3_uri=f"s3://{self.lifecycle_bucket.bucket_name}/lifecycle/",
                    on_create=LIFECYCLE_ENTRYPOINT,
                ),
                instance_storage_configs=[
                    sagemaker.CfnCluster.ClusterInstanceStorageConfigProperty(
                        ebs_volume_config=sagemaker.CfnCluster.ClusterEbsVolumeConfigProperty(
                            volume_size_in_gb=spec.volume_size_gb, volume_kms_key_id=self.key.key_arn
                        )
                    ),
                    # HyperPod mounts FSx on every node from this (API-driven: no mount in the lifecycle script).
                    sagemaker.CfnCluster.ClusterInstanceStorageConfigProperty(
                        fsx_lustre_config=sagemaker.CfnCluster.ClusterFsxLustreConfigProperty(
                            dns_name=self.file_system.dns_name,
                            mount_name=self.file_system.mount_name,
                            mount_path=FSX_MOUNT_PATH,
                        )
                    ),
                ],
            )

        groups = [group(controller, "Controller")]
        if login is not None:
            groups.append(group(login, "Login"))
        groups += [group(w, "Compute") for w in workers]
        self.cluster = sagemaker.CfnCluster(
            self,
            "Resource",
            cluster_name=self.cluster_name,
            instance_groups=groups,
            node_recovery="Automatic",
            orchestrator=sagemaker.CfnCluster.OrchestratorProperty(
                slurm=sagemaker.CfnCluster.ClusterOrchestratorSlurmConfigProperty(
                    slurm_config_strategy=slurm_config_strategy
                )
            ),
            vpc_config=sagemaker.CfnCluster.VpcConfigProperty(
                security_group_ids=[self.security_group.security_group_id], subnets=[subnet.subnet_id]
            ),
        )
        self.cluster.node.add_dependency(deployment, self.role.node.find_child("DefaultPolicy"), self.data_repository)

    def cluster_conf(self) -> str:
        """``genai_cluster.conf``: what the lifecycle script needs to know about each instance group."""
        return render_cluster_conf(self.cluster_name, self.controller, self.workers, self.login)

    # ---- validation -------------------------------------------------------------------------

    @staticmethod
    def default_lifecycle_scripts() -> Path:
        return LIFECYCLE_SCRIPTS

    @staticmethod
    def validate_props(
        workers,
        controller,
        storage,
        throughput,
        lifecycle_scripts,
        *,
        login: InstanceGroup | None = None,
        slurm_config_strategy: str = "Managed",
    ) -> None:
        """The checks the constructor runs, also usable on a configuration before synth."""
        if not workers:
            raise invalid("workers", workers, "give at least one compute InstanceGroup (a Slurm partition).")
        names = [controller.name] + ([login.name] if login is not None else []) + [w.name for w in workers]
        if len(set(names)) != len(names):
            raise invalid(
                "workers", names, "instance group names must be unique (the controller's and login's included)."
            )
        for worker in workers:
            if worker.instance_type not in WORKER_TYPES:
                raise invalid(
                    f"instance_group[{worker.name}].instance_type",
                    worker.instance_type,
                    f"HyperPod compute groups here are one of {', '.join(WORKER_TYPES)}.",
                )
            partition = worker.partition_name()
            if partition in RESERVED_PARTITIONS:
                raise invalid(
                    f"instance_group[{worker.name}].partition",
                    partition,
                    "the partition defaults to the group name, and HyperPod reserves this one (every node is in "
                    "'dev'); set partition= to another name or rename the group.",
                )
        for role, spec in (("controller", controller), ("login", login)):
            if spec is None:
                continue
            if spec.instance_type not in CONTROLLER_TYPES:
                raise invalid(
                    f"{role}.instance_type",
                    spec.instance_type,
                    f"use a CPU type for the {role}: {', '.join(CONTROLLER_TYPES)}.",
                )
            if spec.partition is not None:
                raise invalid(
                    f"{role}.partition",
                    spec.partition,
                    f"HyperPod puts only compute groups in partitions; leave partition unset on the {role}.",
                )
            if spec.deep_health_checks:
                raise invalid(
                    f"{role}.deep_health_checks",
                    spec.deep_health_checks,
                    f"HyperPod runs deep health checks on compute nodes only; leave them unset on the {role}.",
                )
        if controller.instance_count != 1:
            raise invalid(
                "controller.instance_count",
                controller.instance_count,
                "a Slurm controller group has 1 node (HyperPod: exactly one Controller group).",
            )
        require_choice("slurm_config_strategy", slurm_config_strategy, SLURM_CONFIG_STRATEGIES)
        require_int("fsx_storage_gib", storage, minimum=1200)
        if storage % 1200:
            raise invalid("fsx_storage_gib", storage, "PERSISTENT_2 grows in steps of 1200 GiB (1200, 2400, ...).")
        require_choice("fsx_throughput_per_tib", throughput, THROUGHPUTS)
        folder = Path(lifecycle_scripts)
        if not (folder / LIFECYCLE_ENTRYPOINT).is_file():
            raise invalid(
                "lifecycle_scripts", str(lifecycle_scripts), f"the folder must contain {LIFECYCLE_ENTRYPOINT}."
            )
        if (folder / CLUSTER_CONF).exists():
            raise invalid(
                "lifecycle_scripts",
                str(lifecycle_scripts),
                f"remove {CLUSTER_CONF}: the construct writes it from the instance groups at synth time.",
            )
        if (folder / "provisioning_parameters.json").exists():
            raise invalid(
                "lifecycle_scripts",
                str(lifecycle_scripts),
                "remove provisioning_parameters.json: this cluster configures Slurm through the HyperPod API, and "
                "HyperPod refuses a cluster that has both.",
            )

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
        cast(CfnResource, provider.node.default_child).add_metadata(
            "cfn-lint", {"config": {"ignore_checks": ["W3005"]}}
        )
        role_policy = provider.node.try_find_child("ServiceRole")
        policy = role_policy.node.try_find_child("DefaultPolicy") if role_policy else None
        if policy is not None:
            acknowledge_policy_wildcards(
                cast(IConstruct, policy.node.default_child),
                "aws-cdk-lib's BucketDeployment provider copies the lifecycle scripts with the library's own grants, "
                "limited to the CDK asset bucket and the lifecycle bucket.",
            )


def render_cluster_conf(
    cluster_name: str,
    controller: InstanceGroup,
    workers: Sequence[InstanceGroup],
    login: InstanceGroup | None = None,
) -> str:
    """The lifecycle scripts' view of the cluster (``genai_cluster.conf``), one instance group a line.

    ``group NAME NODE_TYPE PARTITION INSTANCE_TYPE ACCELERATOR DEVICES EFA``: ``ACCELERATOR`` is ``neuron``,
    ``gpu`` or ``none``; ``DEVICES`` the device files to expect (``/dev/neuronN``: one per Trainium chip, two
    NeuronCores each; ``/dev/nvidiaN``: one per GPU); ``EFA`` ``yes`` where the instance type has EFA.
    """
    lines = [
        "# Written by genai-cdk TrainiumCluster at synth time; read by on_create.sh. Do not edit on the nodes.",
        f"cluster {cluster_name}",
        f"fsx {FSX_MOUNT_PATH}",
    ]
    rows = [(controller, "Controller")]
    if login is not None:
        rows.append((login, "Login"))
    rows += [(w, "Compute") for w in workers]
    for spec, node_type in rows:
        accelerator, devices = "none", 0
        known = INSTANCE_SPECS.get(spec.instance_type)
        if known is not None and node_type == "Compute":
            accelerator = known.accelerator
            devices = known.accelerator_count // 2 if accelerator == "neuron" else known.accelerator_count
        partition = spec.partition_name() if node_type == "Compute" else "-"
        efa = "yes" if node_type == "Compute" and _family(spec.instance_type) in _EFA_FAMILIES else "no"
        lines.append(f"group {spec.name} {node_type} {partition} {spec.instance_type} {accelerator} {devices} {efa}")
    return "\n".join(lines) + "\n"
