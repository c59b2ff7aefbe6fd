"""``TrainConfig``: the typed configuration of ``genai train sft``, from YAML/JSON, overridden by
the SageMaker training contract when it is present (channels, model dir, checkpoints, hyperparameters).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import UsageError

SAGEMAKER_CHECKPOINTS = Path("/opt/ml/checkpoints")


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


def load_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None, environ: dict[str, str] | None = None
) -> TrainConfig:
    """Config file, then the SageMaker contract, then explicit overrides (dotted keys)."""
    environ = dict(os.environ if environ is None else environ)
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"--config={path}: no such file")
        try:
            raw = (json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())) or {}
        except (json.JSONDecodeError, yaml.YAMLError) as error:
            raise UsageError(f"--config={path}: not valid {path.suffix.lstrip('.') or 'YAML'}: {error}") from None
        if not isinstance(raw, dict):
            raise UsageError(f"--config={path}: expected a mapping of keys")
    for key, value in {**sagemaker_overrides(environ), **(overrides or {})}.items():
        _set(raw, key, value)
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            key = ".".join(str(p) for p in item["loc"]) or "config"
            message = "unknown key (misspelled?)" if item["type"] == "extra_forbidden" else item["msg"]
            problems.append(f"{key}: {message.removeprefix('Value error, ')}")
        raise UsageError("; ".join(problems)) from None


def sagemaker_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """The SageMaker training contract as config overrides (absent outside a training job)."""
    found: dict[str, Any] = {}
    if "SM_CHANNEL_TRAIN" in environ:
        found["data.train"] = environ["SM_CHANNEL_TRAIN"]
    if "SM_CHANNEL_MODEL" in environ:
        found["model"] = environ["SM_CHANNEL_MODEL"]
    if "SM_MODEL_DIR" in environ:
        found["output_dir"] = environ["SM_MODEL_DIR"]
    if "SM_MODEL_DIR" in environ and SAGEMAKER_CHECKPOINTS.is_dir():
        found["checkpoint_dir"] = str(SAGEMAKER_CHECKPOINTS)  # synced to S3 by SageMaker (spot resume)
    if "SM_HPS" in environ:
        try:
            hyperparameters = json.loads(environ["SM_HPS"])
        except json.JSONDecodeError:
            raise UsageError("SM_HPS is not JSON") from None
        for key, value in hyperparameters.items():
            found[key.replace("__", ".")] = _parse_scalar(value)
    return found


def _parse_scalar(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _set(raw: dict, dotted: str, value: Any) -> None:
    node = raw
    *parents, leaf = dotted.split(".")
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UsageError(f"{dotted}: {part} is not a section")
        node = child
    node[leaf] = value
