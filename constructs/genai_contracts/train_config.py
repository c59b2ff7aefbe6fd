"""``TrainConfig``: the typed configuration of ``genai train sft`` (pydantic only).

One home for the training contract: the runtime loads it from YAML/JSON and the SageMaker job, and
``FineTuningPipeline`` checks its ``hyperparameters`` against it at synth time, so a typo such as
``mdoe`` or ``lora__rr`` fails ``cdk synth`` instead of a paid training job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Strict):
    train: Path
    input_column: str = "dialogue"
    output_column: str = "summary"
    template: str = "samsum"
    general: Path | None = None
    """Other-task instruction examples (JSONL with prompt/completion) mixed in at ``mix_ratio``."""
    mix_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    validation_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    test_fraction: float = Field(0.1, ge=0.0, lt=1.0)


class LoraSettings(_Strict):
    r: int = Field(16, ge=1, le=1024)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | None = None
    """Default per architecture (attention projections)."""


class PromptTuningSettings(_Strict):
    virtual_tokens: int = Field(20, ge=1, le=1000)
    init_text: str = "Summarize the following conversation."


class TrainingSettings(_Strict):
    epochs: float = Field(1.0, gt=0)
    max_steps: int = Field(-1, ge=-1)
    learning_rate: float = Field(2e-4, gt=0, lt=1)
    batch_size: int = Field(4, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_length: int = Field(512, ge=16)
    logging_steps: int = Field(10, ge=1)
    save_steps: int = Field(100, ge=1)
    save_total_limit: int = Field(2, ge=1)
    seed: int = 42
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    """auto: bf16 on accelerators that support it, fp32 on CPU (bf16 matmuls crawl there)."""
    gradient_checkpointing: bool = False


class TrainConfig(_Strict):
    model: Path
    data: DataConfig
    output_dir: Path
    checkpoint_dir: Path | None = None
    """Where checkpoints go (and resume from); default ``output_dir/checkpoints``."""
    mode: Literal["full", "lora", "qlora", "prompt_tuning"] = "lora"
    lora: LoraSettings = LoraSettings()
    prompt_tuning: PromptTuningSettings = PromptTuningSettings()
    training: TrainingSettings = TrainingSettings()
    sharding_degree: int = Field(1, ge=1)
    """FSDP as the book uses it: 1 = plain data parallel (DDP); N = shard over N devices."""
    trainer: Literal["transformers", "neuron"] = "transformers"
    merge_adapter: bool = False
    evaluate: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.data.validation_fraction + self.data.test_fraction >= 1:
            raise ValueError("data.validation_fraction + data.test_fraction must stay below 1")
        if self.merge_adapter and self.mode not in ("lora", "qlora"):
            raise ValueError(f"merge_adapter applies to lora/qlora, not mode={self.mode!r}")
        if self.data.mix_ratio > 0 and self.data.general is None:
            raise ValueError("data.mix_ratio > 0 needs data.general")
        return self

    @property
    def checkpoints(self) -> Path:
        return self.checkpoint_dir or self.output_dir / "checkpoints"


# Where SageMaker mounts what the pipeline's Train step gives the job (placeholders for a synth-time check).
_JOB_PATHS = {
    "model": "/opt/ml/input/data/model",
    "data": {"train": "/opt/ml/input/data/train"},
    "output_dir": "/opt/ml/model",
}


def parse_hyperparameter(value: Any) -> Any:
    """SageMaker passes hyperparameters as strings: JSON where it parses (``"16"``, ``"true"``), else text."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def set_dotted(raw: dict, dotted: str, value: Any) -> None:
    """``raw[a][b] = value`` for ``a.b``; a ``ValueError`` when ``a`` holds a value, not a section."""
    node = raw
    *parents, leaf = dotted.split(".")
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ValueError(f"{dotted}: {part} is not a section")
        node = child
    node[leaf] = value


def describe(error: ValidationError) -> list[str]:
    """One ``key: problem`` per error, with the key as written in a config file."""
    problems = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"]) or "config"
        message = "unknown key (misspelled?)" if item["type"] == "extra_forbidden" else item["msg"]
        problems.append(f"{key}: {message.removeprefix('Value error, ')}")
    return problems


def hyperparameter_problems(hyperparameters: Mapping[str, str]) -> list[str]:
    """What ``genai train launch`` would refuse in these job hyperparameters (``lora__r`` is ``lora.r``)."""
    raw: dict[str, Any] = json.loads(json.dumps(_JOB_PATHS))
    problems = []
    for key, value in hyperparameters.items():
        try:
            set_dotted(raw, key.replace("__", "."), parse_hyperparameter(value))
        except ValueError as error:
            problems.append(str(error))
    if problems:
        return problems
    try:
        TrainConfig.model_validate(raw)
    except ValidationError as error:
        return describe(error)
    return []
