"""TrainiumCluster synth and bad-prop tests, and the Slurm cluster against cfn-lint's resource schema."""

from __future__ import annotations

import json
import string
from pathlib import Path

import cfnlint
import jsonschema
import pytest
from aws_cdk import App, Environment, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template
from hypothesis import given, settings
from hypothesis import strategies as st

from genai_cdk import InstanceGroup, TrainiumCluster
from genai_cdk.trainium_cluster import (
    CONTROLLER_TYPES,
    DEEP_HEALTH_CHECKS,
    LIFECYCLE_SCRIPTS,
    WORKER_TYPES,
    default_deep_health_checks,
)

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


@pytest.fixture(scope="module")
def prod_like():
    """The production shape: a controller, a login node, two compute partitions (Trainium training, GPU eval)."""
    stack, vpc, data = _stack()
    cluster = TrainiumCluster(
        stack,
        "Cluster",
        vpc=vpc,
        data_bucket=data,
        data_prefix="samsum",
        availability_zone="us-east-1a",
        controller=InstanceGroup("controller", "ml.m5.2xlarge", 1, volume_size_gb=100),
        login=InstanceGroup("login", "ml.m5.xlarge", 1, volume_size_gb=100),
        workers=[
            InstanceGroup("trn1n", "ml.trn1n.32xlarge", 4, partition="train"),
            InstanceGroup("eval", "ml.g5.12xlarge", 1),
        ],
        fsx_storage_gib=4800,
        fsx_throughput_per_tib=500,
    )
    return cluster, Template.from_stack(stack)


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
        ({"workers": []}, r"workers=\[\] is invalid: give at least one compute InstanceGroup"),
        ({"workers": [InstanceGroup("w", "ml.inf2.48xlarge")]}, r"instance_type='ml.inf2.48xlarge' is invalid"),
        ({"workers": [InstanceGroup("controller")]}, "names must be unique"),
        ({"controller": InstanceGroup("controller", "ml.trn1.32xlarge", 1)}, "use a CPU type for the controller"),
        ({"controller": InstanceGroup("controller", "ml.m5.xlarge", 2)}, "a Slurm controller group has 1 node"),
        ({"fsx_storage_gib": 1000}, "fsx_storage_gib=1000 is invalid: must be at least 1200"),
        ({"fsx_storage_gib": 2000}, "steps of 1200 GiB"),
        ({"fsx_throughput_per_tib": 300}, "fsx_throughput_per_tib=300 is invalid: choose one of"),
        ({"availability_zone": "us-east-1c"}, r"availability_zone='us-east-1c' .*\['us-east-1a', 'us-east-1b'\]"),
        ({"lifecycle_scripts": "/nonexistent"}, "must contain on_create.sh"),
        (
            {"login": InstanceGroup("login", "ml.trn1.32xlarge", 1)},
            r"login.instance_type=.* use a CPU type for the login",
        ),
        ({"login": InstanceGroup("trn1")}, "names must be unique"),
        ({"login": InstanceGroup("login", "ml.m5.xlarge", partition="x")}, "login.partition='x' is invalid"),
        (
            {"login": InstanceGroup("login", "ml.m5.xlarge", deep_health_checks=("InstanceStress",))},
            "deep health checks on compute nodes only",
        ),
        ({"controller": InstanceGroup("controller", "ml.m5.xlarge", 1, partition="c")}, "controller.partition='c'"),
        ({"workers": [InstanceGroup("dev")]}, r"instance_group\[dev\].partition='dev' is invalid: .*reserves"),
        ({"slurm_config_strategy": "Auto"}, "slurm_config_strategy='Auto' is invalid: choose one of Managed"),
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
        (lambda: InstanceGroup("w\n"), r"instance_group.name='w\\n'"),
        (
            lambda: InstanceGroup("w", partition="train_1"),
            r"instance_group\[w\].partition='train_1' is invalid: a Slurm",
        ),
        (lambda: InstanceGroup("w", partition="train\n"), r"partition='train\\n' is invalid"),
        (lambda: InstanceGroup("w", partition="-x"), "partition='-x'"),
        (lambda: InstanceGroup("w", partition="x" * 1025), "1-1024 letters"),
        (lambda: InstanceGroup("w", partition="dev"), "universal 'dev' partition"),
        (lambda: InstanceGroup("w", deep_health_checks="InstanceStress"), "give a tuple"),
        (lambda: InstanceGroup("w", deep_health_checks=("GpuBurn",)), "one of InstanceStress, InstanceConnectivity"),
        (lambda: InstanceGroup("w", deep_health_checks=("InstanceStress",) * 2), "name each deep health check once"),
    ],
)
def test_bad_instance_groups(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("provisioning_parameters.json", "remove provisioning_parameters.json: .*HyperPod refuses"),
        ("genai_cluster.conf", "remove genai_cluster.conf: the construct writes it"),
    ],
)
def test_a_lifecycle_folder_with_legacy_or_generated_files_is_refused(tmp_path, extra, message):
    (tmp_path / "on_create.sh").write_text("#!/usr/bin/env bash\n")
    (tmp_path / extra).write_text("{}")
    stack, vpc, data = _stack()
    with pytest.raises(ValueError, match=message):
        TrainiumCluster(stack, "Cluster", vpc=vpc, data_bucket=data, lifecycle_scripts=tmp_path)


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


# ---- Slurm through the HyperPod API ---------------------------------------------------------------------------


def test_groups_carry_their_slurm_node_type_and_partition(prod_like):
    _, template = prod_like
    props = _cluster(template)
    assert props["Orchestrator"] == {"Slurm": {"SlurmConfigStrategy": "Managed"}}
    assert [(g["InstanceGroupName"], g["SlurmConfig"]) for g in props["InstanceGroups"]] == [
        ("controller", {"NodeType": "Controller"}),
        ("login", {"NodeType": "Login"}),
        ("trn1n", {"NodeType": "Compute", "PartitionNames": ["train"]}),
        ("eval", {"NodeType": "Compute", "PartitionNames": ["eval"]}),
    ]


def test_deep_health_checks_on_accelerated_compute_groups_only(prod_like, built):
    _, template = prod_like
    checks = {g["InstanceGroupName"]: g.get("OnStartDeepHealthChecks") for g in _cluster(template)["InstanceGroups"]}
    assert checks == {"controller": None, "login": None, "trn1n": ["InstanceStress"], "eval": None}
    _, default_template = built
    assert [g.get("OnStartDeepHealthChecks") for g in _cluster(default_template)["InstanceGroups"]] == [
        None,
        ["InstanceStress"],
        ["InstanceStress"],
    ]


def test_deep_health_checks_can_be_turned_off_or_chosen_per_group():
    stack, vpc, data = _stack()
    TrainiumCluster(
        stack,
        "Cluster",
        vpc=vpc,
        data_bucket=data,
        workers=[
            InstanceGroup("trn1", deep_health_checks=()),
            InstanceGroup("p5", "ml.p5.48xlarge", 2),
            InstanceGroup("p4d", "ml.p4d.24xlarge", 2, deep_health_checks=("InstanceStress",)),
        ],
        slurm_config_strategy="Merge",
    )
    props = _cluster(Template.from_stack(stack))
    assert [g.get("OnStartDeepHealthChecks") for g in props["InstanceGroups"][1:]] == [
        None,
        ["InstanceStress", "InstanceConnectivity"],
        ["InstanceStress"],
    ]
    assert props["Orchestrator"]["Slurm"]["SlurmConfigStrategy"] == "Merge"


def test_the_lifecycle_scripts_get_the_cluster_conf_and_no_provisioning_parameters(prod_like):
    cluster, template = prod_like
    assert cluster.cluster_conf().splitlines()[1:] == [
        f"cluster {cluster.cluster_name}",
        "fsx /fsx",
        "group controller Controller - ml.m5.2xlarge none 0 no",
        "group login Login - ml.m5.xlarge none 0 no",
        "group trn1n Compute train ml.trn1n.32xlarge neuron 16 yes",
        "group eval Compute eval ml.g5.12xlarge gpu 4 no",
    ]
    deployment = next(iter(template.find_resources("Custom::CDKBucketDeployment").values()))["Properties"]
    assert len(deployment["SourceObjectKeys"]) == 2  # the script folder and genai_cluster.conf
    assert sorted(p.name for p in LIFECYCLE_SCRIPTS.iterdir()) == ["on_create.sh"]
    for group in _cluster(template)["InstanceGroups"]:
        assert group["LifeCycleConfig"]["OnCreate"] == "on_create.sh"
        assert group["InstanceStorageConfigs"][1]["FsxLustreConfig"]["MountPath"] == "/fsx"


# ---- the synthesized cluster against cfn-lint's bundled AWS::SageMaker::Cluster schema ------------------------

# Intrinsic functions stand in for values CloudFormation resolves at deploy time; the schema checks the
# resolved shape, so each one is replaced by a value of the right form, keyed by the property that holds it.
_RESOLVED = {
    "ExecutionRole": "arn:aws:iam::123456789012:role/Train-ClusterClusterRole",
    "VolumeKmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "DnsName": "fs-0123456789abcdef0.fsx.us-east-1.amazonaws.com",
    "MountName": "abcdefgh",
    "SourceS3Uri": "s3://sagemaker-hyperpod-abcd1234-123456789012-us-east-1/lifecycle/",
    "SecurityGroupIds": "sg-0123456789abcdef0",
    "Subnets": "subnet-0123456789abcdef0",
}


def _resolve(value, key=None):
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)).startswith(("Fn::", "Ref")):
            return _RESOLVED[key]  # a KeyError names an intrinsic this test does not know yet
        return {k: _resolve(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, key) for v in value]
    return value


@pytest.fixture(scope="module")
def cluster_schema() -> dict:
    schemas = Path(cfnlint.__file__).parent / "data" / "schemas"
    resource = json.loads((schemas / "providers" / "us-east-1.json").read_text())["AWS::SageMaker::Cluster"]
    schema = json.loads((schemas / "resources" / f"{resource}.json").read_text())
    assert schema["typeName"] == "AWS::SageMaker::Cluster"
    return schema


def _schema_errors(schema: dict, props: dict) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    return sorted(f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(props))


def test_the_prod_like_cluster_matches_the_resource_schema(prod_like, cluster_schema):
    _, template = prod_like
    props = _resolve(_cluster(template))
    assert props["Orchestrator"]["Slurm"]["SlurmConfigStrategy"] in ("Managed", "Overwrite", "Merge")
    assert _schema_errors(cluster_schema, props) == []


def test_the_schema_check_catches_a_bad_slurm_block(prod_like, cluster_schema):
    _, template = prod_like
    props = _resolve(_cluster(template))
    props["Orchestrator"]["Slurm"]["SlurmConfigStrategy"] = "Auto"
    props["InstanceGroups"][2]["SlurmConfig"] = {"NodeType": "Worker", "PartitionNames": ["a", "b"]}
    props["InstanceGroups"][2]["OnStartDeepHealthChecks"] = ["GpuBurn"]
    errors = "\n".join(_schema_errors(cluster_schema, props))
    assert "'Worker' is not one of ['Controller', 'Login', 'Compute']" in errors
    assert "is too long" in errors  # one partition per group
    assert "'GpuBurn' is not one of" in errors
    assert "['Orchestrator']" in errors


def test_our_constants_match_the_schema(cluster_schema):
    definitions = cluster_schema["definitions"]
    assert tuple(definitions["DeepHealthCheckType"]["enum"]) == DEEP_HEALTH_CHECKS
    strategies = definitions["ClusterOrchestratorSlurmConfig"]["properties"]["SlurmConfigStrategy"]["enum"]
    assert sorted(strategies) == sorted(("Managed", "Overwrite", "Merge"))
    assert definitions["ClusterSlurmConfig"]["properties"]["PartitionNames"]["maxItems"] == 1


_PARTITION_ALPHABET = string.ascii_letters + string.digits + "-_. /"


@settings(max_examples=200, deadline=None)
@given(
    name=st.one_of(
        st.text(alphabet=_PARTITION_ALPHABET, max_size=40),
        st.from_regex(r"[a-zA-Z0-9](-{0,2}[a-zA-Z0-9]){0,20}", fullmatch=True),
    )
)
def test_partition_names_are_accepted_exactly_when_the_schema_accepts_them(cluster_schema, name):
    item = cluster_schema["definitions"]["ClusterSlurmConfig"]["properties"]["PartitionNames"]["items"]
    schema_ok = jsonschema.Draft7Validator(item).is_valid(name) and name not in ("dev", "hyperpod-system-maintenance")
    try:
        InstanceGroup("trn1", partition=name)
    except ValueError as error:
        assert not schema_ok, error
        assert f"instance_group[trn1].partition={name!r} is invalid" in str(error)
    else:
        assert schema_ok, name


@settings(max_examples=100, deadline=None)
@given(checks=st.lists(st.sampled_from((*DEEP_HEALTH_CHECKS, "Bogus", "instancestress")), max_size=4))
def test_deep_health_checks_are_accepted_exactly_when_the_schema_accepts_them(cluster_schema, checks):
    item_ok = all(c in DEEP_HEALTH_CHECKS for c in checks) and len(set(checks)) == len(checks)
    try:
        group = InstanceGroup("trn1", deep_health_checks=tuple(checks))
    except ValueError as error:
        assert not item_ok and "instance_group[trn1].deep_health_checks=" in str(error)
    else:
        assert item_ok
        if checks:  # an empty tuple turns them off: the property is omitted, not an empty list
            schema = {
                **cluster_schema["definitions"]["OnStartDeepHealthChecks"],
                "definitions": cluster_schema["definitions"],
            }
            assert jsonschema.Draft7Validator(schema).is_valid(list(group.effective_deep_health_checks()))


ALL_TYPES = sorted({*WORKER_TYPES, *CONTROLLER_TYPES, "ml.inf2.48xlarge", "ml.trn1.2xlarge"})


@settings(max_examples=60, deadline=None)
@given(
    controller=st.sampled_from(ALL_TYPES),
    login=st.none() | st.sampled_from(ALL_TYPES),
    compute=st.sampled_from(ALL_TYPES),
)
def test_each_node_type_takes_only_its_instance_types(controller, login, compute):
    ok = controller in CONTROLLER_TYPES and (login is None or login in CONTROLLER_TYPES) and compute in WORKER_TYPES
    try:
        TrainiumCluster.validate_props(
            [InstanceGroup("compute", compute)],
            InstanceGroup("controller", controller, 1),
            1200,
            250,
            LIFECYCLE_SCRIPTS,
            login=InstanceGroup("login", login, 1) if login else None,
        )
    except ValueError as error:
        assert not ok
        assert "instance_type=" in str(error) and "is invalid" in str(error)
    else:
        assert ok


def test_default_deep_health_checks_by_family():
    assert default_deep_health_checks("ml.trn1.32xlarge") == ("InstanceStress",)
    assert default_deep_health_checks("ml.trn1n.32xlarge") == ("InstanceStress",)
    assert default_deep_health_checks("ml.p5.48xlarge") == ("InstanceStress", "InstanceConnectivity")
    assert default_deep_health_checks("ml.g5.48xlarge") == ()
    assert default_deep_health_checks("ml.m5.xlarge") == ()
