"""TrainiumCluster synth and bad-prop tests."""

from __future__ import annotations

import pytest
from aws_cdk import App, Environment, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template

from genai_cdk import InstanceGroup, TrainiumCluster

ENV = Environment(account="123456789012", region="us-east-1")


def _stack():
    stack = Stack(App(), "Train", env=ENV)
    vpc = ec2.Vpc(stack, "Vpc", availability_zones=["us-east-1a", "us-east-1b"], nat_gateways=1)
    data = s3.Bucket.from_bucket_name(stack, "Data", "my-training-data")
    return stack, vpc, data


@pytest.fixture(scope="module")
def built():
    stack, vpc, data = _stack()
    cluster = TrainiumCluster(
        stack,
        "Cluster",
        vpc=vpc,
        data_bucket=data,
        data_prefix="samsum",
        availability_zone="us-east-1b",
        workers=[
            InstanceGroup("trn1", instance_count=4),
            InstanceGroup("trn1n", "ml.trn1n.32xlarge", 2, volume_size_gb=1000),
        ],
    )
    return cluster, Template.from_stack(stack)


def _cluster(template):
    return next(iter(template.find_resources("AWS::SageMaker::Cluster").values()))["Properties"]


def test_controller_and_worker_groups_with_node_recovery(built):
    cluster, template = built
    props = _cluster(template)
    groups = {g["InstanceGroupName"]: g for g in props["InstanceGroups"]}
    assert [(n, g["InstanceType"], g["InstanceCount"]) for n, g in groups.items()] == [
        ("controller", "ml.m5.xlarge", 1),
        ("trn1", "ml.trn1.32xlarge", 4),
        ("trn1n", "ml.trn1n.32xlarge", 2),
    ]
    assert props["NodeRecovery"] == "Automatic"
    assert props["ClusterName"] == cluster.cluster_name


def test_lifecycle_scripts_ship_to_a_sagemaker_bucket(built):
    _, template = built
    group = _cluster(template)["InstanceGroups"][1]
    assert group["LifeCycleConfig"]["OnCreate"] == "on_create.sh"
    assert "/lifecycle/" in str(group["LifeCycleConfig"]["SourceS3Uri"])
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketName": Match.string_like_regexp(r"^sagemaker-hyperpod-[a-z0-9]{8}-123456789012-us-east-1$"),
            "BucketEncryption": Match.object_like(
                {
                    "ServerSideEncryptionConfiguration": [
                        Match.object_like(
                            {"ServerSideEncryptionByDefault": Match.object_like({"SSEAlgorithm": "aws:kms"})}
                        )
                    ]
                }
            ),
        },
    )
    template.resource_count_is("Custom::CDKBucketDeployment", 1)
    template.has_resource_properties("Custom::CDKBucketDeployment", {"DestinationBucketKeyPrefix": "lifecycle/"})


def test_fsx_persistent_2_linked_to_the_data_bucket_and_mounted(built):
    cluster, template = built
    template.has_resource_properties(
        "AWS::FSx::FileSystem",
        {
            "FileSystemType": "LUSTRE",
            "FileSystemTypeVersion": "2.15",
            "StorageCapacity": 1200,
            "LustreConfiguration": Match.object_like(
                {"DeploymentType": "PERSISTENT_2", "PerUnitStorageThroughput": 250}
            ),
            "KmsKeyId": Match.any_value(),
        },
    )
    template.has_resource_properties(
        "AWS::FSx::DataRepositoryAssociation",
        {
            "DataRepositoryPath": "s3://my-training-data/samsum/",
            "FileSystemPath": "/data",
        },
    )
    for group in _cluster(template)["InstanceGroups"]:
        storage = group["InstanceStorageConfigs"]
        assert storage[0]["EbsVolumeConfig"]["VolumeKmsKeyId"]
        assert storage[1]["FsxLustreConfig"]["MountPath"] == "/fsx"


def test_one_subnet_in_the_chosen_az_and_an_efa_ready_security_group(built):
    cluster, template = built
    subnets = _cluster(template)["VpcConfig"]["Subnets"]
    assert len(subnets) == 1 and "Subnet2" in subnets[0]["Ref"]  # us-east-1b
    group = next(iter(template.find_resources("AWS::EC2::SecurityGroup").values()))
    template.has_resource_properties(
        "AWS::EC2::SecurityGroupIngress", {"IpProtocol": "-1", "SourceSecurityGroupId": Match.any_value()}
    )
    template.has_resource_properties(
        "AWS::EC2::SecurityGroupEgress", {"IpProtocol": "-1", "DestinationSecurityGroupId": Match.any_value()}
    )
    assert all(rule.get("FromPort") == 443 for rule in group["Properties"].get("SecurityGroupEgress", []))


def test_cluster_role_is_least_privilege(built):
    _, template = built
    roles = template.find_resources(
        "AWS::IAM::Role",
        {
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Statement": [Match.object_like({"Principal": {"Service": "sagemaker.amazonaws.com"}})]
                }
            }
        },
    )
    assert len(roles) == 1 and "ManagedPolicyArns" not in next(iter(roles.values()))["Properties"]
    name = next(iter(roles))
    policies = [
        p for p in template.find_resources("AWS::IAM::Policy").values() if {"Ref": name} in p["Properties"]["Roles"]
    ]
    actions = [
        a
        for p in policies
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    ]
    assert actions and not any(a.endswith("*") for a in actions)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"workers": []}, r"workers=\[\] is invalid: give at least one worker"),
        ({"workers": [InstanceGroup("w", "ml.inf2.48xlarge")]}, r"instance_type='ml.inf2.48xlarge' is invalid"),
        ({"workers": [InstanceGroup("controller")]}, "names must be unique"),
        ({"controller": InstanceGroup("controller", "ml.trn1.32xlarge", 1)}, "use a CPU type for the controller"),
        ({"controller": InstanceGroup("controller", "ml.m5.xlarge", 2)}, "a Slurm controller group has 1 node"),
        ({"fsx_storage_gib": 1000}, "fsx_storage_gib=1000 is invalid: must be at least 1200"),
        ({"fsx_storage_gib": 2000}, "steps of 1200 GiB"),
        ({"fsx_throughput_per_tib": 300}, "fsx_throughput_per_tib=300 is invalid: choose one of"),
        ({"availability_zone": "us-east-1c"}, r"availability_zone='us-east-1c' .*\['us-east-1a', 'us-east-1b'\]"),
        ({"lifecycle_scripts": "/nonexistent"}, "must contain on_create.sh"),
    ],
)
def test_bad_props(kwargs, message):
    stack, vpc, data = _stack()
    with pytest.raises(ValueError, match=message):
        TrainiumCluster(stack, "Cluster", vpc=vpc, data_bucket=data, **kwargs)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: InstanceGroup("bad_name"), "instance_group.name='bad_name'"),
        (lambda: InstanceGroup("w", instance_count=0), r"instance_group\[w\].instance_count=0"),
        (lambda: InstanceGroup("w", threads_per_core=4), "threads_per_core=4"),
    ],
)
def test_bad_instance_groups(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_vpc_without_private_subnets_is_refused():
    stack = Stack(App(), "Train", env=ENV)
    vpc = ec2.Vpc(
        stack,
        "Vpc",
        nat_gateways=0,
        subnet_configuration=[ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC)],
    )
    with pytest.raises(ValueError, match="need a private subnet with egress"):
        TrainiumCluster(stack, "Cluster", vpc=vpc, data_bucket=s3.Bucket.from_bucket_name(stack, "D", "my-data"))
