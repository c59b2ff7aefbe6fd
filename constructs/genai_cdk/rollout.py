"""How an endpoint update moves traffic to the new fleet, and when it rolls back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from aws_cdk import Duration
from aws_cdk import aws_sagemaker as sagemaker

from ._validation import invalid

Strategy = Literal["ALL_AT_ONCE", "CANARY", "LINEAR", "ROLLING"]
_MAX_WAIT_SECONDS = 3600


def _seconds(prop: str, value: Duration, minimum: int = 0, maximum: int = _MAX_WAIT_SECONDS) -> int:
    if not isinstance(value, Duration):
        raise invalid(prop, value, "pass an aws_cdk.Duration, e.g. Duration.minutes(10).")
    seconds = int(value.to_seconds())
    if not minimum <= seconds <= maximum:
        raise invalid(prop, f"{seconds}s", f"must be between {minimum} and {maximum} seconds.")
    return seconds


@dataclass(frozen=True)
class Rollout:
    """A SageMaker deployment guardrail. Build one with the static methods.

    Auto-rollback watches the endpoint's own error and latency alarms.

    :param strategy: ``ALL_AT_ONCE``, ``CANARY``, ``LINEAR`` (blue/green) or ``ROLLING``.
    :param percent: the canary size, linear step or rolling batch, in % of capacity.
    :param wait: time between traffic shifts (or batches); default 5 minutes, at most 1 hour.
    :param bake: blue/green: time the new fleet serves all traffic before the old one goes; default 5 minutes.
    :param auto_rollback: roll back when one of the endpoint's alarms fires; default True.
    :param maximum_execution_timeout: the longest the whole update may take (10 minutes-8 hours); default 2 hours.
    """

    strategy: Strategy
    percent: int = 100
    wait: Duration = field(default_factory=lambda: Duration.minutes(5))
    bake: Duration = field(default_factory=lambda: Duration.minutes(5))
    auto_rollback: bool = True
    maximum_execution_timeout: Duration = field(default_factory=lambda: Duration.hours(2))

    def __post_init__(self) -> None:
        _seconds("rollout.wait", self.wait)
        _seconds("rollout.bake", self.bake)
        _seconds("rollout.maximum_execution_timeout", self.maximum_execution_timeout, 600, 28800)
        limits = {"CANARY": (1, 50), "LINEAR": (1, 99), "ROLLING": (1, 99)}
        if self.strategy in limits:
            low, high = limits[self.strategy]
            if isinstance(self.percent, bool) or not isinstance(self.percent, int) or not low <= self.percent <= high:
                raise invalid(
                    "rollout.percent",
                    self.percent,
                    f"a {self.strategy.lower()} step must be {low}-{high} percent of the fleet.",
                )

    @staticmethod
    def all_at_once(bake: Duration | None = None, auto_rollback: bool = True) -> Rollout:
        """Blue/green: shift all traffic at once, then bake before the old fleet goes."""
        return Rollout("ALL_AT_ONCE", bake=bake or Duration.minutes(5), auto_rollback=auto_rollback)

    @staticmethod
    def canary(
        percent: int = 10, wait: Duration | None = None, bake: Duration | None = None, auto_rollback: bool = True
    ) -> Rollout:
        """Blue/green: ``percent`` of capacity first, the rest after ``wait`` if no alarm fired."""
        return Rollout(
            "CANARY",
            percent=percent,
            wait=wait or Duration.minutes(10),
            bake=bake or Duration.minutes(5),
            auto_rollback=auto_rollback,
        )

    @staticmethod
    def linear(
        step_percent: int = 20, wait: Duration | None = None, bake: Duration | None = None, auto_rollback: bool = True
    ) -> Rollout:
        """Blue/green: shift ``step_percent`` of capacity every ``wait``."""
        return Rollout(
            "LINEAR",
            percent=step_percent,
            wait=wait or Duration.minutes(5),
            bake=bake or Duration.minutes(5),
            auto_rollback=auto_rollback,
        )

    @staticmethod
    def rolling(
        batch_percent: int = 25,
        wait: Duration | None = None,
        auto_rollback: bool = True,
        maximum_execution_timeout: Duration | None = None,
    ) -> Rollout:
        """Rolling: replace the fleet in batches without doubling capacity (single-variant endpoints only)."""
        return Rollout(
            "ROLLING",
            percent=batch_percent,
            wait=wait or Duration.minutes(5),
            auto_rollback=auto_rollback,
            maximum_execution_timeout=maximum_execution_timeout or Duration.hours(2),
        )

    def render(self, rollback_alarm_names: list[str]) -> sagemaker.CfnEndpoint.DeploymentConfigProperty:
        rollback = None
        if self.auto_rollback and rollback_alarm_names:
            rollback = sagemaker.CfnEndpoint.AutoRollbackConfigProperty(
                alarms=[sagemaker.CfnEndpoint.AlarmProperty(alarm_name=name) for name in rollback_alarm_names]
            )
        wait = int(self.wait.to_seconds())
        if self.strategy == "ROLLING":
            return sagemaker.CfnEndpoint.DeploymentConfigProperty(
                auto_rollback_configuration=rollback,
                rolling_update_policy=sagemaker.CfnEndpoint.RollingUpdatePolicyProperty(
                    maximum_batch_size=sagemaker.CfnEndpoint.CapacitySizeProperty(
                        type="CAPACITY_PERCENT", value=self.percent
                    ),
                    wait_interval_in_seconds=wait,
                    maximum_execution_timeout_in_seconds=int(self.maximum_execution_timeout.to_seconds()),
                ),
            )
        step = sagemaker.CfnEndpoint.CapacitySizeProperty(type="CAPACITY_PERCENT", value=self.percent)
        routing = sagemaker.CfnEndpoint.TrafficRoutingConfigProperty(
            type=self.strategy,
            wait_interval_in_seconds=wait if self.strategy != "ALL_AT_ONCE" else None,
            canary_size=step if self.strategy == "CANARY" else None,
            linear_step_size=step if self.strategy == "LINEAR" else None,
        )
        return sagemaker.CfnEndpoint.DeploymentConfigProperty(
            auto_rollback_configuration=rollback,
            blue_green_update_policy=sagemaker.CfnEndpoint.BlueGreenUpdatePolicyProperty(
                traffic_routing_configuration=routing,
                termination_wait_in_seconds=int(self.bake.to_seconds()),
                maximum_execution_timeout_in_seconds=int(self.maximum_execution_timeout.to_seconds()),
            ),
        )
