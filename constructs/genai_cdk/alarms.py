"""Alarm thresholds for an LMI endpoint, with defaults that suit LLM serving."""

from __future__ import annotations

from dataclasses import dataclass, field

from aws_cdk import Duration

from ._validation import invalid, require_int


@dataclass(frozen=True)
class EndpointAlarms:
    """Thresholds per production variant. ``None`` turns one alarm off.

    Latencies are p99 over ``period``; SageMaker reports them in microseconds, which the
    construct converts from these Durations.

    :param model_latency_p99: ModelLatency p99 above which to alarm; default 30 s.
    :param overhead_latency_p99: OverheadLatency p99 (SageMaker's own share); default 500 ms.
    :param invocation_5xx_errors: Invocation5XXErrors per period; default 1.
    :param invocation_4xx_errors: Invocation4XXErrors per period; default 50.
    :param model_setup_time: ModelSetupTime (a new instance loading the model); default 20 minutes.
    :param period: the metric period, whole minutes; default 1 minute.
    :param evaluation_periods: periods each alarm looks at; default 5.
    :param datapoints_to_alarm: breaching periods among them that fire it; default 3.
    """

    model_latency_p99: Duration | None = field(default_factory=lambda: Duration.seconds(30))
    overhead_latency_p99: Duration | None = field(default_factory=lambda: Duration.millis(500))
    invocation_5xx_errors: int | None = 1
    invocation_4xx_errors: int | None = 50
    model_setup_time: Duration | None = field(default_factory=lambda: Duration.minutes(20))
    period: Duration = field(default_factory=lambda: Duration.minutes(1))
    evaluation_periods: int = 5
    datapoints_to_alarm: int = 3

    def __post_init__(self) -> None:
        for name in ("model_latency_p99", "overhead_latency_p99", "model_setup_time", "period"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Duration):
                raise invalid(f"alarms.{name}", value, "pass an aws_cdk.Duration (or None to turn it off).")
            if value is not None and value.to_milliseconds() <= 0:
                raise invalid(f"alarms.{name}", value.to_human_string(), "must be longer than zero.")
        for name in ("invocation_5xx_errors", "invocation_4xx_errors"):
            if getattr(self, name) is not None:
                require_int(f"alarms.{name}", getattr(self, name), minimum=1)
        if int(self.period.to_seconds()) % 60 != 0:
            raise invalid(
                "alarms.period", self.period.to_human_string(), "SageMaker metrics are per minute; use whole minutes."
            )
        require_int("alarms.evaluation_periods", self.evaluation_periods, minimum=1)
        require_int("alarms.datapoints_to_alarm", self.datapoints_to_alarm, minimum=1)
        if self.datapoints_to_alarm > self.evaluation_periods:
            raise invalid(
                "alarms.datapoints_to_alarm",
                self.datapoints_to_alarm,
                f"cannot exceed evaluation_periods ({self.evaluation_periods}).",
            )
