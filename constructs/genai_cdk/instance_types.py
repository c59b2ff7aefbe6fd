"""Instance-type facts: moved to ``genai_contracts.instance_types``, the contract layer.

Re-exported so ``genai_cdk.instance_types`` imports keep working; new code imports ``genai_contracts.instance_types``.
"""

from __future__ import annotations

from genai_contracts.instance_types import INSTANCE_SPECS, AcceleratorKind, InstanceSpec, instance_spec

__all__ = [
    "INSTANCE_SPECS",
    "AcceleratorKind",
    "InstanceSpec",
    "instance_spec",
]
