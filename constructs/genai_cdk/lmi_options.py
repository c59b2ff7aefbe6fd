"""Typed LMI (DJL Serving) options: moved to ``genai_contracts.lmi_options``, the contract layer.

Re-exported so ``genai_cdk.lmi_options`` imports keep working; new code imports ``genai_contracts.lmi_options``.
"""

from __future__ import annotations

from genai_contracts.lmi_options import (
    DTYPE_CHOICES,
    MAX_STARTUP_SECONDS,
    ROLLING_BATCH_CHOICES,
    Dtype,
    LmiOptions,
    RollingBatch,
)

__all__ = [
    "DTYPE_CHOICES",
    "MAX_STARTUP_SECONDS",
    "ROLLING_BATCH_CHOICES",
    "Dtype",
    "LmiOptions",
    "RollingBatch",
]
