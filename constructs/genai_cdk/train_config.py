"""``TrainConfig``: moved to ``genai_contracts.train_config``, the contract layer.

Re-exported so ``genai_cdk.train_config`` imports keep working; new code imports ``genai_contracts.train_config``.
"""

from __future__ import annotations

from genai_contracts.train_config import (
    DataConfig,
    LoraSettings,
    PromptTuningSettings,
    TrainConfig,
    TrainingSettings,
    describe,
    hyperparameter_problems,
    parse_hyperparameter,
    set_dotted,
)

__all__ = [
    "DataConfig",
    "LoraSettings",
    "PromptTuningSettings",
    "TrainConfig",
    "TrainingSettings",
    "describe",
    "hyperparameter_problems",
    "parse_hyperparameter",
    "set_dotted",
]
