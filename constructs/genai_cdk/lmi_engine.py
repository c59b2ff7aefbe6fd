"""What the pinned LMI engines accept: moved to ``genai_contracts.lmi_engine``, the contract layer.

Re-exported so ``genai_cdk.lmi_engine`` imports keep working; new code imports ``genai_contracts.lmi_engine``.
"""

from __future__ import annotations

from genai_contracts.lmi_engine import (
    GPU_DTYPES,
    GPU_ROLLING_BATCH,
    HUGGINGFACE_SERVICE,
    LMI_ENTRY_POINTS,
    LMI_SERVER_KEYS,
    NEURON_DTYPES,
    NEURON_ROLLING_BATCH,
    PROPERTIES_FIELDS,
    TNX_PROPERTIES_FIELDS,
    TRANSFORMERS_NEURONX_SERVICE,
    VLLM_ASYNC_SERVICE,
    VLLM_RB_ALIASES,
    VLLM_RB_PROPERTIES_FIELDS,
    accepted_keys,
    vllm_engine_args,
)

__all__ = [
    "GPU_DTYPES",
    "GPU_ROLLING_BATCH",
    "HUGGINGFACE_SERVICE",
    "LMI_ENTRY_POINTS",
    "LMI_SERVER_KEYS",
    "NEURON_DTYPES",
    "NEURON_ROLLING_BATCH",
    "PROPERTIES_FIELDS",
    "TNX_PROPERTIES_FIELDS",
    "TRANSFORMERS_NEURONX_SERVICE",
    "VLLM_ASYNC_SERVICE",
    "VLLM_RB_ALIASES",
    "VLLM_RB_PROPERTIES_FIELDS",
    "accepted_keys",
    "vllm_engine_args",
]
