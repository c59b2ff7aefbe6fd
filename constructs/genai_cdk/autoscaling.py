"""Autoscaling policy for an endpoint variant (shared by every construct with a fleet)."""

from __future__ import annotations

from dataclasses import dataclass, field

from aws_cdk import Duration

from ._validation import invalid, require_int


@dataclass(frozen=True)
class StepScaling:
    """Add instances in steps as invocations per instance per minute cross thresholds.

    The book's policy: above 1000 add 10 instances, above 2000 add 50. Below
    ``scale_in_below`` one instance is removed per evaluation.

    :param steps: ``(threshold, instances_to_add)`` pairs, thresholds strictly increasing.
    :param scale_in_below: invocations per instance under which to remove one instance; default 100.
    :param cooldown: wait after a step before the next; default 5 minutes.
    """

    steps: tuple[tuple[int, int], ...] = ((1000, 10), (2000, 50))
    scale_in_below: int = 100
    cooldown: Duration = field(default_factory=lambda: Duration.minutes(5))

    def __post_init__(self) -> None:
        if not self.steps:
            raise invalid("step_scaling.steps", self.steps, "give at least one (threshold, instances_to_add) pair.")
        thresholds = [t for t, _ in self.steps]
        if thresholds != sorted(set(thresholds)):
            raise invalid("step_scaling.steps", self.steps, "thresholds must be strictly increasing.")
        for threshold, add in self.steps:
            require_int("step_scaling.steps threshold", threshold, minimum=1)
            require_int("step_scaling.steps instances_to_add", add, minimum=1)
        require_int("step_scaling.scale_in_below", self.scale_in_below, minimum=0)
        if self.scale_in_below >= thresholds[0]:
            raise invalid(
                "step_scaling.scale_in_below",
                self.scale_in_below,
                f"must be below the first scale-out threshold ({thresholds[0]}) or the policy flaps.",
            )


@dataclass(frozen=True)
class Autoscaling:
    """Target tracking on ``SageMakerVariantInvocationsPerInstance`` with optional step scaling.

    :param min_capacity: fewest instances per production variant; default 1.
    :param max_capacity: most instances per production variant; default 4.
    :param target_invocations_per_instance: the tracked target, invocations per instance per minute; default 1000.
    :param scale_in_cooldown: wait after scaling in; default 5 minutes.
    :param scale_out_cooldown: wait after scaling out; default 1 minute.
    :param step_scaling: a ``StepScaling`` on top of target tracking for bursts; default none.
    """

    min_capacity: int = 1
    max_capacity: int = 4
    target_invocations_per_instance: int = 1000
    scale_in_cooldown: Duration = field(default_factory=lambda: Duration.minutes(5))
    scale_out_cooldown: Duration = field(default_factory=lambda: Duration.minutes(1))
    step_scaling: StepScaling | None = None

    def __post_init__(self) -> None:
        require_int("autoscaling.min_capacity", self.min_capacity, minimum=1)
        require_int("autoscaling.max_capacity", self.max_capacity, minimum=1)
        if self.min_capacity > self.max_capacity:
            raise invalid(
                "autoscaling.min_capacity",
                self.min_capacity,
                f"must not exceed max_capacity ({self.max_capacity}); raise max_capacity or lower min_capacity.",
            )
        require_int("autoscaling.target_invocations_per_instance", self.target_invocations_per_instance, minimum=1)
