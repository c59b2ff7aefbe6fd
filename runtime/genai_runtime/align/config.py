"""Typed configuration of ``genai align reward`` and ``genai align dpo`` (pydantic), from YAML/JSON, then the
SageMaker training contract (``train.platform``: the ``train`` channel is ``data.train``, the ``model``
channel is ``model``, ``/opt/ml/model`` is ``output_dir``, hyperparameters with ``__`` for nesting), then
``--set`` / flag overrides, the same order as ``genai train sft``.

A reward run::

    model: models/base            # a causal LM folder; the reward head (score) is added and trained
    data: {train: pairs.jsonl, validation_fraction: 0.2}
    output_dir: out/reward
    lora: {enabled: true, r: 8}
    training: {max_steps: 100, learning_rate: 1e-4}

A DPO run adds ``beta`` (and ``method: orpo`` for ORPO, which needs no reference model).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from genai_contracts.train_config import describe, set_dotted

from ..errors import UsageError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PairsData(_Strict):
    train: Path
    """Preference pairs: a JSONL file of prompt/chosen/rejected, or a folder of them (a training channel)."""
    validation_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    """Share of the prompts held out (every pair of a prompt on one side) for the before/after accuracy."""


class AlignLora(_Strict):
    enabled: bool = True
    r: int = Field(8, ge=1, le=1024)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] | None = None
    """Default per architecture (the attention projections, as ``genai train sft``)."""


class AlignTraining(_Strict):
    epochs: float = Field(1.0, gt=0)
    max_steps: int = Field(-1, ge=-1)
    """-1: run ``epochs``."""
    learning_rate: float = Field(1e-4, gt=0, lt=1)
    batch_size: int = Field(8, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_length: int = Field(512, ge=16)
    logging_steps: int = Field(10, ge=1)
    seed: int = 42
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    """auto: bf16 on accelerators that support it, fp32 on CPU."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, about a third more time (trl's configs
    default to on; off here, as ``genai train sft``)."""


class _AlignConfig(_Strict):
    model: Path
    """The model to start from: a model folder, a LoRA adapter folder (merged into ``base`` first), or a
    ``genai train sft`` output (its ``merged/`` or ``model/``)."""
    base: Path | None = None
    """The base model under an adapter-only ``model`` (job: the ``base`` channel); default the adapter's
    ``base_model_name_or_path``."""
    data: PairsData
    output_dir: Path
    checkpoint_dir: Path | None = None
    """Where the trainer's checkpoints go; default ``output_dir/checkpoints``."""
    lora: AlignLora = AlignLora()
    training: AlignTraining = AlignTraining()

    @property
    def checkpoints(self) -> Path:
        return self.checkpoint_dir or self.output_dir / "checkpoints"


class RewardRunConfig(_AlignConfig):
    method: Literal["reward"] = "reward"
    center_rewards_coefficient: float | None = Field(None, ge=0.0)
    """trl's auxiliary loss that keeps rewards centred on 0 (Eisenstein et al. 2023); None: off."""


class DpoRunConfig(_AlignConfig):
    method: Literal["dpo", "orpo"] = "dpo"
    beta: float = Field(0.1, gt=0.0)
    """DPO: the KL strength of the implicit reward beta·(log π − log π_ref); ORPO: the odds-ratio weight (λ)."""
    merge_adapter: bool = False
    """Also write ``output_dir/merged``: the base with the LoRA adapter merged in."""


Config = TypeVar("Config", RewardRunConfig, DpoRunConfig)


def load_reward_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None, environ: dict[str, str] | None = None
) -> RewardRunConfig:
    return _load(RewardRunConfig, path, overrides, environ)


def load_dpo_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None, environ: dict[str, str] | None = None
) -> DpoRunConfig:
    return _load(DpoRunConfig, path, overrides, environ)


def _load(
    kind: type[Config], path: str | Path | None, overrides: dict[str, Any] | None, environ: dict[str, str] | None
) -> Config:
    """Config file, then the SageMaker contract, then explicit overrides (dotted keys)."""
    from ..train.config import read_config_file, sagemaker_overrides
    from ..train.platform import current_job, job_overrides

    environ = dict(os.environ if environ is None else environ)
    raw = read_config_file(path)
    platform: dict[str, Any] = dict(sagemaker_overrides(environ))  # the Training Toolkit's SM_*, where it ran
    job = current_job(environ)
    if job is not None:  # SageMaker's own /opt/ml/input/config files: what a custom entrypoint gets
        platform.update(job_overrides(job))
        if "base" in job.channels:  # the foundation model under an adapter-only SFT model
            platform.setdefault("base", str(job.channels["base"]))
    for key, value in {**platform, **(overrides or {})}.items():
        try:
            set_dotted(raw, key, value)
        except ValueError as error:
            raise UsageError(str(error)) from None
    try:
        return kind.model_validate(raw)
    except ValidationError as error:
        raise UsageError("; ".join(describe(error))) from None
