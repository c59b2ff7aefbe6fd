"""What ``genai train evaluate`` reports and ``FineTuningPipeline`` reads: ROUGE names and metric lines.

The evaluation job prints one ``NAME=VALUE`` line per metric (``metric_line``); the pipeline's
SageMaker metric definitions read them back with ``metric_regex``, and its quality gate names one of
``ROUGE_METRICS``.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

RougeMetric = Literal["rouge1", "rouge2", "rougeL"]
ROUGE_METRICS: tuple[str, ...] = get_args(RougeMetric)
"""``rouge_score`` names: unigram and bigram overlap, and the longest common subsequence."""


def metric_line(name: str, value: float) -> str:
    """The line the evaluation job prints for one metric (SageMaker scans the job's logs for it)."""
    return f"{name}={value}"


def metric_regex(name: str) -> str:
    """The SageMaker ``MetricDefinitions`` regex that reads ``metric_line(name, ...)`` back."""
    return f"^{re.escape(name)}=([0-9.]+)$"
