"""Every invalid LmiEndpoint combination fails at synth with a ValueError naming prop, value and fix."""

from __future__ import annotations

import pytest
from aws_cdk import App, Duration, Environment, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_s3 as s3

from genai_cdk import Autoscaling, LmiEndpoint, LmiImage, LmiOptions, ModelArtifact, Rollout, Variant


@pytest.fixture
def stack():
    return Stack(App(), "Props", env=Environment(account="123456789012", region="us-east-1"))


@pytest.fixture
def model(stack):
    return ModelArtifact.from_s3_prefix(s3.Bucket.from_bucket_name(stack, "Models", "my-models"), "llama/")


CASES = {
    "tp_too_large_for_inf2_xlarge": (
        dict(instance_type="ml.inf2.xlarge", options=LmiOptions(tensor_parallel_degree=4)),
        r"options.tensor_parallel_degree=4 is invalid: ml.inf2.xlarge has 2 NeuronCores; use at most 2",
    ),
    "tp_too_large_for_a_variant": (
        dict(
            instance_type="ml.inf2.48xlarge",
            options=LmiOptions(tensor_parallel_degree=24),
            variants=[Variant("A"), Variant("B", instance_type="ml.inf2.24xlarge")],
        ),
        r"options.tensor_parallel_degree=24 .*ml.inf2.24xlarge has 12 NeuronCores",
    ),
    "unknown_instance_type": (dict(instance_type="ml.m5.large"), r"instance_type='ml.m5.large' is invalid"),
    "unknown_variant_instance_type": (
        dict(variants=[Variant("A", instance_type="ml.inf9.xlarge")]),
        r"variant\[A\].instance_type='ml.inf9.xlarge' is invalid",
    ),
    "neuron_image_on_gpu": (
        dict(instance_type="ml.g5.2xlarge", image=LmiImage.dlc("neuronx")),
        r"image=\"LmiImage.dlc\('neuronx'\)\" is invalid: ml.g5.2xlarge needs the 'lmi' flavor",
    ),
    "neuron_option_on_gpu": (
        dict(instance_type="ml.g5.2xlarge", options=LmiOptions(n_positions=2048)),
        r"options.n_positions=2048 is invalid: is a Neuron option",
    ),
    "no_variants": (dict(variants=[]), r"variants=\[\] is invalid: give at least one Variant"),
    "duplicate_variant_names": (dict(variants=[Variant("A"), Variant("A")]), r"\['A'\] repeat"),
    "all_weights_zero": (
        dict(variants=[Variant("A", weight=0), Variant("B", weight=0)]),
        r"variants=\[0, 0\] is invalid: at least one production variant needs a weight above zero",
    ),
    "not_a_variant": (dict(variants=[{"name": "A"}]), r"every item must be a Variant"),
    "shadow_with_two_production_variants": (
        dict(variants=[Variant("A"), Variant("B")], shadow=Variant("S")),
        r"shadow='S' is invalid: SageMaker mirrors traffic from exactly one production variant, but 2",
    ),
    "shadow_named_like_production": (dict(shadow=Variant("AllTraffic")), r"shadow.name='AllTraffic'"),
    "shadow_with_zero_weight": (dict(shadow=Variant("S", weight=0)), r"shadow.weight=0"),
    "instance_count_outside_autoscaling_bounds": (
        dict(variants=[Variant("A", instance_count=9)], autoscaling=Autoscaling(min_capacity=1, max_capacity=4)),
        r"variant\[A\].instance_count=9 is invalid: must lie within autoscaling min_capacity..max_capacity \(1..4\)",
    ),
    "instance_count_outside_the_endpoints_autoscaling_beside_a_variant_of_its_own": (
        dict(
            variants=[
                Variant("A", weight=90, instance_count=9, autoscaling=Autoscaling(min_capacity=5, max_capacity=20)),
                Variant("B", weight=10, instance_count=3),
            ],
            autoscaling=Autoscaling(min_capacity=1, max_capacity=2),
        ),
        r"variant\[B\].instance_count=3 is invalid: must lie within autoscaling min_capacity..max_capacity \(1..2\); "
        r"give the variant an autoscaling= of its own",
    ),
    "endpoint_autoscaling_not_typed": (
        dict(autoscaling={"max_capacity": 4}),
        r"autoscaling=\{'max_capacity': 4\} is invalid: pass an Autoscaling\(...\) or None",
    ),
    "autoscaled_shadow": (
        dict(shadow=Variant("S", autoscaling=Autoscaling())),
        r"shadow\[S\].autoscaling=.* is invalid: only production variants are autoscaled",
    ),
    "instance_count_beside_variants": (
        dict(instance_count=3, variants=[Variant("A"), Variant("B")]),
        r"instance_count=3 is invalid: applies to the default single variant only; with variants=, give each "
        r"Variant its instance_count",
    ),
    "rolling_with_two_variants": (
        dict(variants=[Variant("A"), Variant("B")], rollout=Rollout.rolling()),
        r"rollout='Rollout.rolling\(...\)' is invalid: SageMaker does not roll multi-variant endpoints",
    ),
    "startup_shorter_than_model_loading": (
        dict(options=LmiOptions(model_loading_timeout=1800), container_startup_timeout=Duration.minutes(10)),
        r"container_startup_timeout='600s' is invalid: must cover options.model_loading_timeout \(1800s\)",
    ),
    "startup_too_long": (dict(container_startup_timeout=Duration.hours(2)), r"'7200s' is invalid: .*60-3600"),
    "volume_on_nvme_instance": (
        dict(instance_type="ml.g5.2xlarge", volume_size_gb=100),
        r"volume_size_gb=100 is invalid: ml.g5.2xlarge use local NVMe",
    ),
    "subnets_without_vpc": (dict(vpc_subnets=ec2.SubnetSelection()), r"vpc=None is invalid: .*pass vpc"),
    "bad_endpoint_name": (dict(endpoint_name="my_endpoint"), r"endpoint_name='my_endpoint' is invalid"),
    "instance_count_zero": (dict(instance_count=0), r"instance_count=0 is invalid"),
    "options_not_typed": (dict(options={"tensor_parallel_degree": 2}), r"options=.* pass an LmiOptions"),
}


@pytest.mark.parametrize("case", CASES)
def test_invalid_props_fail_with_a_clear_message(stack, model, case):
    props, message = CASES[case]
    with pytest.raises(ValueError, match=message):
        LmiEndpoint(stack, "Llm", model=model, **props)


def test_model_must_be_a_model_artifact(stack):
    with pytest.raises(ValueError, match=r"model='s3://b/k' is invalid: pass ModelArtifact.from_s3_prefix"):
        LmiEndpoint(stack, "Llm", model="s3://b/k")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda b, tmp: ModelArtifact.from_s3_prefix(b, ""), r"prefix='' is invalid"),
        (lambda b, tmp: ModelArtifact.from_s3_prefix(b, "s3://b/x"), r"without 's3://'"),
        (lambda b, tmp: ModelArtifact.from_s3_object(b, "model.zip"), r"key='model.zip' .*gzip tarballs"),
        (lambda b, tmp: ModelArtifact.from_asset(tmp / "missing"), r"non-empty local folder"),
        (lambda b, tmp: ModelArtifact.from_asset(tmp), r"non-empty local folder"),
        (lambda b, tmp: LmiImage.dlc("tpu"), r"image.flavor='tpu' is invalid: choose one of lmi, neuronx"),
        (lambda b, tmp: LmiImage.dlc("lmi", tag="repo:tag"), r"give only the tag"),
        (lambda b, tmp: LmiImage.from_image_uri("docker.io/library/lmi:1"), r"SageMaker pulls from ECR only"),
    ],
)
def test_bad_artifacts_and_images(stack, tmp_path, make, message):
    bucket = s3.Bucket.from_bucket_name(stack, "B", "my-bucket")
    with pytest.raises(ValueError, match=message):
        make(bucket, tmp_path)


def test_vpc_without_private_subnets_is_explained(stack, model):
    vpc = ec2.Vpc(
        stack,
        "Vpc",
        max_azs=2,
        nat_gateways=0,
        subnet_configuration=[ec2.SubnetConfiguration(name="p", subnet_type=ec2.SubnetType.PUBLIC)],
    )
    with pytest.raises(ValueError, match=r"vpc_subnets=None is invalid: .*select subnets that exist"):
        LmiEndpoint(stack, "Llm", model=model, vpc=vpc)


def test_each_variant_scales_in_its_own_range_and_the_rest_in_the_endpoints(stack, model):
    from aws_cdk.assertions import Template

    endpoint = LmiEndpoint(
        stack,
        "Llm",
        model=model,
        variants=[
            Variant("A", weight=90, instance_count=9, autoscaling=Autoscaling(min_capacity=5, max_capacity=20)),
            Variant("B", weight=10, instance_count=1, autoscaling=Autoscaling(min_capacity=1, max_capacity=2)),
            Variant("C", weight=0, instance_count=1),
        ],
        autoscaling=Autoscaling(min_capacity=1, max_capacity=4, target_invocations_per_instance=500),
    )
    targets = {
        props["ResourceId"].split("/variant/")[1]: props
        for props in (
            r["Properties"]
            for r in Template.from_stack(stack).find_resources("AWS::ApplicationAutoScaling::ScalableTarget").values()
        )
    }
    assert {name: (t["MinCapacity"], t["MaxCapacity"]) for name, t in targets.items()} == {
        "A": (5, 20),
        "B": (1, 2),
        "C": (1, 4),
    }
    assert sorted(endpoint.scalable_targets) == ["A", "B", "C"]
    policies = Template.from_stack(stack).find_resources("AWS::ApplicationAutoScaling::ScalingPolicy")
    targets_values = sorted(
        p["Properties"]["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] for p in policies.values()
    )
    assert targets_values == [500, 1000, 1000]  # C inherits the endpoint's target; A and B their own default


def test_only_the_variant_with_autoscaling_scales_when_the_endpoint_has_none(stack, model):
    endpoint = LmiEndpoint(
        stack,
        "Llm",
        model=model,
        variants=[
            Variant("A", instance_count=2, autoscaling=Autoscaling(min_capacity=2, max_capacity=8)),
            Variant("B"),
        ],
    )
    assert sorted(endpoint.scalable_targets) == ["A"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: Variant("A", instance_count=9, autoscaling=Autoscaling(min_capacity=1, max_capacity=4)),
            r"variant\[A\].instance_count=9 is invalid: must lie within its autoscaling min_capacity..max_capacity "
            r"\(1..4\); change the count or the range",
        ),
        (
            lambda: Variant("A", autoscaling={"min_capacity": 1}),
            r"variant\[A\].autoscaling=\{'min_capacity': 1\} is invalid: pass an Autoscaling\(...\)",
        ),
    ],
)
def test_a_variants_own_autoscaling_is_checked_when_the_variant_is_made(make, message):
    with pytest.raises(ValueError, match=message):
        make()
