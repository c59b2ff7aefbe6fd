"""Bad input to the small value objects fails at construction, naming the prop and the fix."""

import math

import pytest
from aws_cdk import Duration

from genai_cdk import Autoscaling, DataCapture, EndpointAlarms, Rollout, StepScaling, Variant


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Variant("A", weight=-1), r"variant\[A\].weight=-1 is invalid: must be at least 0"),
        (lambda: Variant("A", weight=math.nan), "weight=nan"),
        (lambda: Variant("A", weight=math.inf), "finite number"),
        (lambda: Variant("A", weight="90"), "expected a number"),
        (lambda: Variant("A", instance_count=0), r"instance_count=0 .*at least 1"),
        (lambda: Variant("bad_name"), "variant.name='bad_name' .*letters, digits and hyphens"),
        (lambda: Variant("-x"), "variant.name"),
        (lambda: Variant("A", model="s3://bucket/key"), "ModelArtifact.from_s3_prefix"),
        (lambda: Autoscaling(min_capacity=5, max_capacity=2), r"min_capacity=5 .*must not exceed max_capacity \(2\)"),
        (lambda: Autoscaling(min_capacity=0), "min_capacity=0"),
        (lambda: Autoscaling(target_invocations_per_instance=0), "target_invocations_per_instance"),
        (lambda: StepScaling(steps=((2000, 50), (1000, 10))), "strictly increasing"),
        (lambda: StepScaling(steps=()), "at least one"),
        (lambda: StepScaling(steps=((1000, 0),)), "instances_to_add"),
        (lambda: StepScaling(scale_in_below=1000), "scale_in_below=1000 .*flaps"),
        (lambda: Rollout.canary(percent=60), r"rollout.percent=60 .*1-50 percent"),
        (lambda: Rollout.linear(step_percent=0), "rollout.percent=0"),
        (lambda: Rollout.canary(wait=Duration.hours(2)), r"rollout.wait='7200s' .*between 0 and 3600"),
        (lambda: Rollout.canary(wait=600), "pass an aws_cdk.Duration"),
        (lambda: EndpointAlarms(datapoints_to_alarm=6, evaluation_periods=5), "cannot exceed evaluation_periods"),
        (lambda: EndpointAlarms(invocation_5xx_errors=0), "invocation_5xx_errors=0"),
        (lambda: EndpointAlarms(period=Duration.seconds(30)), "whole minutes"),
        (lambda: EndpointAlarms(model_latency_p99=5), "pass an aws_cdk.Duration"),
        (lambda: DataCapture(sampling_percentage=0), "sampling_percentage=0"),
        (lambda: DataCapture(sampling_percentage=101), "at most 100"),
        (lambda: DataCapture(capture_requests=False, capture_responses=False), "capture requests, responses"),
        (lambda: DataCapture(prefix="s3://b/p"), "data_capture.prefix"),
    ],
)
def test_bad_value_objects(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_rollout_renders_blue_green_canary_with_rollback_alarms():
    config = Rollout.canary(percent=10, wait=Duration.minutes(10), bake=Duration.minutes(3)).render(["a1", "a2"])
    routing = config.blue_green_update_policy.traffic_routing_configuration
    assert routing.type == "CANARY"
    assert routing.canary_size.value == 10 and routing.canary_size.type == "CAPACITY_PERCENT"
    assert routing.wait_interval_in_seconds == 600
    assert config.blue_green_update_policy.termination_wait_in_seconds == 180
    assert [a.alarm_name for a in config.auto_rollback_configuration.alarms] == ["a1", "a2"]


def test_rollout_without_auto_rollback_has_no_alarms():
    config = Rollout.linear(step_percent=25, auto_rollback=False).render(["a1"])
    assert config.auto_rollback_configuration is None
    assert config.blue_green_update_policy.traffic_routing_configuration.linear_step_size.value == 25


def test_rolling_rollout_renders_a_rolling_update_policy():
    config = Rollout.rolling(batch_percent=25).render([])
    assert config.blue_green_update_policy is None
    assert config.rolling_update_policy.maximum_batch_size.value == 25
