"""LmiEndpoint synth tests: every feature asserted on a template; stacks share one app per module."""

from __future__ import annotations

import re

import pytest
from aws_cdk import App, Duration, Environment, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template

from genai_cdk import (
    Autoscaling,
    DataCapture,
    EndpointAlarms,
    LmiEndpoint,
    LmiImage,
    LmiOptions,
    ModelArtifact,
    Rollout,
    StepScaling,
    Variant,
)

ENV = Environment(account="123456789012", region="us-east-1")


def _bucket(stack: Stack) -> s3.IBucket:
    return s3.Bucket.from_bucket_name(stack, "Models", "my-models")


def _minimal(stack):
    return LmiEndpoint(stack, "Llm", model=ModelArtifact.from_s3_prefix(_bucket(stack), "llama2-7b"))


def _book_ab_test(stack):
    bucket = _bucket(stack)
    vpc = ec2.Vpc(stack, "Vpc", max_azs=2, nat_gateways=1)
    endpoint = LmiEndpoint(
        stack,
        "Llm",
        model=ModelArtifact.from_s3_prefix(bucket, "llama2-7b-neuron/"),
        instance_type="ml.inf2.48xlarge",
        options=LmiOptions(tensor_parallel_degree=24, n_positions=4096, max_rolling_batch_size=8),
        variants=[
            Variant("A", weight=90, instance_count=9),
            Variant(
                "B", weight=10, instance_count=1, model=ModelArtifact.from_s3_prefix(bucket, "llama2-7b-neuron-v2/")
            ),
        ],
        autoscaling=Autoscaling(
            min_capacity=1, max_capacity=20, target_invocations_per_instance=1000, step_scaling=StepScaling()
        ),
        rollout=Rollout.canary(percent=10, wait=Duration.minutes(10)),
        vpc=vpc,
        network_isolation=True,
    )
    caller = iam.Role(stack, "Caller", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    endpoint.grant_invoke(caller)
    return endpoint


def _shadow(stack):
    bucket = _bucket(stack)
    return LmiEndpoint(
        stack,
        "Llm",
        model=ModelArtifact.from_s3_object(bucket, "llama/model.tar.gz"),
        instance_type="ml.g5.12xlarge",
        options=LmiOptions(rolling_batch="vllm", max_model_len=4096, model_loading_timeout=1200),
        shadow=Variant("next", model=ModelArtifact.from_s3_prefix(bucket, "next/")),
        alarms=EndpointAlarms(invocation_4xx_errors=None, model_setup_time=None),
        rollout=Rollout.rolling(batch_percent=25),
        container_startup_timeout=Duration.minutes(30),
    )


def _asset(stack, folder):
    return LmiEndpoint(
        stack,
        "Llm",
        model=ModelArtifact.from_asset(folder),
        instance_type="ml.inf2.xlarge",
        image=LmiImage.from_image_uri("111122223333.dkr.ecr.us-east-1.amazonaws.com/my-lmi:1.0"),
        data_capture=DataCapture(sampling_percentage=20, capture_responses=False),
    )


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "weights.bin").write_bytes(b"\x00" * 1024)
    return folder


@pytest.fixture(scope="module")
def built(model_folder):
    app = App()
    built = {}
    for name, build in [
        ("minimal", _minimal),
        ("ab", _book_ab_test),
        ("shadow", _shadow),
        ("asset", lambda s: _asset(s, model_folder)),
    ]:
        stack = Stack(app, name, env=ENV)
        built[name] = (build(stack), stack)
    agnostic = Stack(app, "agnostic")
    built["agnostic"] = (_minimal(agnostic), agnostic)
    return built


@pytest.fixture(scope="module")
def templates(built):
    return {name: Template.from_stack(stack) for name, (_, stack) in built.items()}


def _only(template: Template, resource_type: str) -> dict:
    resources = template.find_resources(resource_type)
    assert len(resources) == 1, resources.keys()
    return next(iter(resources.values()))["Properties"]


# ---- model artifacts and image ------------------------------------------------------------------


def test_s3_prefix_is_an_uncompressed_model_data_source(templates):
    container = _only(templates["minimal"], "AWS::SageMaker::Model")["PrimaryContainer"]
    assert container["ModelDataSource"] == {
        "S3DataSource": {"S3Uri": "s3://my-models/llama2-7b/", "S3DataType": "S3Prefix", "CompressionType": "None"}
    }
    assert "ModelDataUrl" not in container


def test_tarball_is_a_model_data_url(templates):
    models = templates["shadow"].find_resources("AWS::SageMaker::Model")
    urls = [m["Properties"]["PrimaryContainer"].get("ModelDataUrl") for m in models.values()]
    assert "s3://my-models/llama/model.tar.gz" in urls


def test_local_folder_ships_as_a_reproducible_tarball_asset(templates, model_folder):
    from genai_cdk.model_artifact import _reproducible_tarball

    container = _only(templates["asset"], "AWS::SageMaker::Model")["PrimaryContainer"]
    assert re.fullmatch(r"s3://cdk-[^/]+-assets-123456789012-us-east-1/[0-9a-f]{64}\.gz", container["ModelDataUrl"])
    first = _reproducible_tarball(model_folder).read_bytes()
    (model_folder / "config.json").touch()  # a newer mtime must not change the bytes
    import shutil

    shutil.rmtree(_reproducible_tarball(model_folder).parent)
    assert _reproducible_tarball(model_folder).read_bytes() == first


def test_image_flavor_follows_the_instance_type(templates):
    def image(name):
        model = next(iter(templates[name].find_resources("AWS::SageMaker::Model").values()))
        return str(model["Properties"]["PrimaryContainer"]["Image"])

    assert "djl-inference:0.30.0-neuronx-sdk2.20.1" in image("ab")
    assert "djl-inference:0.36.0-lmi27.0.0-cu130" in image("minimal")
    assert "763104351884.dkr.ecr.us-east-1." in image("minimal")
    assert image("asset") == "111122223333.dkr.ecr.us-east-1.amazonaws.com/my-lmi:1.0"


def test_own_image_uri_gets_a_pull_grant_on_its_repository(templates):
    statements = [
        s
        for p in templates["asset"].find_resources("AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    pull = next(s for s in statements if "ecr:BatchGetImage" in s["Action"])
    assert pull["Resource"] == {
        "Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":ecr:us-east-1:111122223333:repository/my-lmi"]]
    }


def test_region_agnostic_stack_maps_the_dlc_account_per_region(templates):
    template = templates["agnostic"].to_json()
    assert "Fn::FindInMap" in str(_only(templates["agnostic"], "AWS::SageMaker::Model")["PrimaryContainer"]["Image"])
    mapping = next(iter(template["Mappings"].values()))
    accounts = {region: next(iter(values.values())) for region, values in mapping.items()}
    assert accounts["us-east-1"] == "763104351884"
    assert accounts["ap-east-1"] != "763104351884"


def test_options_become_option_environment_variables(templates):
    models = templates["ab"].find_resources("AWS::SageMaker::Model")
    for model in models.values():
        env = model["Properties"]["PrimaryContainer"]["Environment"]
        assert env["OPTION_TENSOR_PARALLEL_DEGREE"] == "24"
        assert env["OPTION_N_POSITIONS"] == "4096"
        assert env["OPTION_MAX_ROLLING_BATCH_SIZE"] == "8"


# ---- variants, shadow, capture ------------------------------------------------------------------


def test_ab_variants_split_traffic_90_10_over_9_plus_1_instances(templates):
    variants = _only(templates["ab"], "AWS::SageMaker::EndpointConfig")["ProductionVariants"]
    assert [(v["VariantName"], v["InitialVariantWeight"], v["InitialInstanceCount"]) for v in variants] == [
        ("A", 90, 9),
        ("B", 10, 1),
    ]
    models = templates["ab"].find_resources("AWS::SageMaker::Model")
    sources = sorted(
        m["Properties"]["PrimaryContainer"]["ModelDataSource"]["S3DataSource"]["S3Uri"] for m in models.values()
    )
    assert sources == ["s3://my-models/llama2-7b-neuron-v2/", "s3://my-models/llama2-7b-neuron/"]


def test_shadow_variant_with_data_capture_to_an_encrypted_bucket(templates):
    template = templates["shadow"]
    config = _only(template, "AWS::SageMaker::EndpointConfig")
    assert [v["VariantName"] for v in config["ProductionVariants"]] == ["AllTraffic"]
    assert [v["VariantName"] for v in config["ShadowProductionVariants"]] == ["next"]
    capture = config["DataCaptureConfig"]
    assert capture["EnableCapture"] is True and capture["InitialSamplingPercentage"] == 100
    assert [o["CaptureMode"] for o in capture["CaptureOptions"]] == ["Input", "Output"]
    assert "KmsKeyId" in capture
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    Match.object_like({"ServerSideEncryptionByDefault": Match.object_like({"SSEAlgorithm": "aws:kms"})})
                ]
            },
            "LoggingConfiguration": Match.object_like({"DestinationBucketName": Match.any_value()}),
        },
    )
    template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                )
            }
        },
    )


def test_capture_without_shadow_when_asked(templates):
    capture = _only(templates["asset"], "AWS::SageMaker::EndpointConfig")["DataCaptureConfig"]
    assert capture["InitialSamplingPercentage"] == 20
    assert [o["CaptureMode"] for o in capture["CaptureOptions"]] == ["Input"]


def test_no_capture_by_default_without_shadow(templates):
    assert "DataCaptureConfig" not in _only(templates["minimal"], "AWS::SageMaker::EndpointConfig")


def test_startup_health_check_covers_model_loading(templates):
    minimal = _only(templates["minimal"], "AWS::SageMaker::EndpointConfig")["ProductionVariants"][0]
    assert minimal["ContainerStartupHealthCheckTimeoutInSeconds"] == 1800 + 600
    shadow = _only(templates["shadow"], "AWS::SageMaker::EndpointConfig")["ProductionVariants"][0]
    assert shadow["ContainerStartupHealthCheckTimeoutInSeconds"] == 1800


# ---- autoscaling, rollout, alarms ---------------------------------------------------------------


def test_autoscaling_tracks_invocations_per_instance_for_each_variant(templates, built):
    template = templates["ab"]
    endpoint = built["ab"][0]
    targets = template.find_resources("AWS::ApplicationAutoScaling::ScalableTarget")
    assert sorted(t["Properties"]["ResourceId"] for t in targets.values()) == [
        f"endpoint/{endpoint.endpoint_name}/variant/A",
        f"endpoint/{endpoint.endpoint_name}/variant/B",
    ]
    for target in targets.values():
        assert target["Properties"]["MinCapacity"] == 1 and target["Properties"]["MaxCapacity"] == 20
        assert "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint" in str(target["Properties"]["RoleARN"])
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": {
                "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
                "TargetValue": 1000,
                "ScaleInCooldown": 300,
                "ScaleOutCooldown": 60,
            },
        },
    )


def test_step_scaling_adds_10_above_1000_and_50_above_2000(templates):
    policies = templates["ab"].find_resources(
        "AWS::ApplicationAutoScaling::ScalingPolicy", {"Properties": {"PolicyType": "StepScaling"}}
    )
    steps = [p["Properties"]["StepScalingPolicyConfiguration"]["StepAdjustments"] for p in policies.values()]
    assert [
        {"MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 1000, "ScalingAdjustment": 10},
        {"MetricIntervalLowerBound": 1000, "ScalingAdjustment": 50},
    ] in steps
    alarms = templates["ab"].find_resources("AWS::CloudWatch::Alarm", {"Properties": {"Threshold": 1000}})
    assert len(alarms) == 2  # the scale-out alarm of each variant's step policy


def test_canary_rollout_rolls_back_on_the_endpoints_own_alarms(templates):
    endpoint = _only(templates["ab"], "AWS::SageMaker::Endpoint")
    deployment = endpoint["DeploymentConfig"]
    assert deployment["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"] == {
        "Type": "CANARY",
        "WaitIntervalInSeconds": 600,
        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
    }
    rollback = [a["AlarmName"]["Ref"] for a in deployment["AutoRollbackConfiguration"]["Alarms"]]
    alarms = templates["ab"].find_resources("AWS::CloudWatch::Alarm")
    metrics = sorted(alarms[name]["Properties"]["MetricName"] for name in rollback)
    assert metrics == sorted(["ModelLatency", "OverheadLatency", "Invocation5XXErrors"] * 2)


def test_default_rollout_is_blue_green_all_at_once(templates):
    routing = _only(templates["minimal"], "AWS::SageMaker::Endpoint")["DeploymentConfig"]["BlueGreenUpdatePolicy"][
        "TrafficRoutingConfiguration"
    ]
    assert routing == {"Type": "ALL_AT_ONCE"}


def test_rolling_rollout(templates):
    deployment = _only(templates["shadow"], "AWS::SageMaker::Endpoint")["DeploymentConfig"]
    assert deployment["RollingUpdatePolicy"]["MaximumBatchSize"] == {"Type": "CAPACITY_PERCENT", "Value": 25}


def test_five_alarms_per_variant_with_microsecond_latency_thresholds(templates, built):
    template = templates["minimal"]
    alarms = template.find_resources("AWS::CloudWatch::Alarm")
    by_metric = {a["Properties"]["MetricName"]: a["Properties"] for a in alarms.values()}
    assert sorted(by_metric) == sorted(
        ["ModelLatency", "OverheadLatency", "Invocation5XXErrors", "Invocation4XXErrors", "ModelSetupTime"]
    )
    assert by_metric["ModelLatency"]["Threshold"] == 30_000_000
    assert by_metric["ModelLatency"]["ExtendedStatistic"] == "p99"
    assert by_metric["OverheadLatency"]["Threshold"] == 500_000
    assert by_metric["ModelSetupTime"]["Threshold"] == 20 * 60 * 1_000_000
    topic = next(iter(template.find_resources("AWS::SNS::Topic")))
    for props in by_metric.values():
        assert props["AlarmActions"] == [{"Ref": topic}]
        assert {"Name": "EndpointName", "Value": built["minimal"][0].endpoint_name} in props["Dimensions"]
    template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})


def test_an_alarm_can_be_turned_off(templates):
    metrics = {
        a["Properties"]["MetricName"] for a in templates["shadow"].find_resources("AWS::CloudWatch::Alarm").values()
    }
    assert "Invocation4XXErrors" not in metrics and "ModelSetupTime" not in metrics
    assert "ModelLatency" in metrics


# ---- security ------------------------------------------------------------------------------------


def test_execution_role_is_least_privilege(templates):
    for name, template in templates.items():
        for role in template.find_resources("AWS::IAM::Role").values():
            assert "ManagedPolicyArns" not in role["Properties"], name
        for policy in template.find_resources("AWS::IAM::Policy").values():
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                assert not any(a == "*" or a.endswith(":*") for a in actions), (name, statement)
                assert not any("FullAccess" in a for a in actions)


def test_model_read_is_scoped_to_its_prefix(templates):
    statements = [
        s
        for p in templates["minimal"].find_resources("AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    get = next(s for s in statements if s["Action"] == "s3:GetObject")
    assert get["Resource"] == {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::my-models/llama2-7b/*"]]}
    listing = next(s for s in statements if s["Action"] == "s3:ListBucket")
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["llama2-7b/*"]}}


def test_storage_volume_kms_only_where_sagemaker_allows_it(templates):
    assert "KmsKeyId" in _only(templates["ab"], "AWS::SageMaker::EndpointConfig")  # inf2: EBS volumes
    assert "KmsKeyId" not in _only(templates["minimal"], "AWS::SageMaker::EndpointConfig")  # g5: local NVMe
    templates["minimal"].has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_vpc_and_network_isolation(templates):
    for model in templates["ab"].find_resources("AWS::SageMaker::Model").values():
        props = model["Properties"]
        assert props["EnableNetworkIsolation"] is True
        assert len(props["VpcConfig"]["Subnets"]) == 2
    templates["ab"].has_resource_properties(
        "AWS::EC2::SecurityGroup",
        {
            "SecurityGroupEgress": Match.array_with([Match.object_like({"IpProtocol": "tcp", "FromPort": 443})]),
        },
    )
    group = _only(templates["ab"], "AWS::EC2::SecurityGroup")
    assert all(rule["FromPort"] == 443 for rule in group["SecurityGroupEgress"])
    assert "SecurityGroupIngress" not in group
    assert "VpcConfig" not in _only(templates["minimal"], "AWS::SageMaker::Model")


def test_grant_invoke_scopes_to_the_endpoint_arn(templates, built):
    endpoint = built["ab"][0]
    templates["ab"].has_resource_properties(
        "AWS::IAM::Policy",
        {
            "Roles": [Match.object_like({"Ref": Match.string_like_regexp("^Caller")})],
            "PolicyDocument": {
                "Statement": [
                    Match.object_like(
                        {
                            "Action": ["sagemaker:InvokeEndpoint", "sagemaker:InvokeEndpointWithResponseStream"],
                            "Resource": {
                                "Fn::Join": [
                                    "",
                                    [
                                        "arn:",
                                        {"Ref": "AWS::Partition"},
                                        f":sagemaker:us-east-1:123456789012:endpoint/{endpoint.endpoint_name.lower()}",
                                    ],
                                ]
                            },
                        }
                    )
                ]
            },
        },
    )


# ---- helpers -------------------------------------------------------------------------------------


def test_metric_helpers_and_dashboard_widgets(built):
    endpoint, stack = built["ab"]
    latency = endpoint.metric_model_latency("B")
    assert latency.metric_name == "ModelLatency" and latency.statistic == "p99"
    assert latency.dimensions == {"EndpointName": endpoint.endpoint_name, "VariantName": "B"}
    assert endpoint.metric_invocations().dimensions["VariantName"] == "A"
    assert endpoint.metric_invocation_5xx_errors().statistic == "Sum"
    with pytest.raises(ValueError, match=r"variant_name='C' is invalid: this endpoint has variants \['A', 'B'\]"):
        endpoint.metric_model_latency("C")
    assert len(endpoint.dashboard_widgets()) == 3
