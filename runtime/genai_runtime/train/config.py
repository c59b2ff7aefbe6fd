"""``TrainConfig``: the typed configuration of ``genai train sft``, from YAML/JSON, overridden by
the SageMaker training contract when it is present (channels, model dir, checkpoints, hyperparameters):
the platform's own ``/opt/ml/input/config`` files (``train.platform``), or the Training Toolkit's
``SM_*`` variables where the toolkit ran, then ``--set`` overrides.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from genai_contracts.train_config import (
    DataConfig,
    LoraSettings,
    PromptTuningSettings,
    TrainConfig,
    TrainingSettings,
    describe,
    parse_hyperparameter,
    set_dotted,
)

from ..errors import UsageError

SAGEMAKER_CHECKPOINTS = Path("/opt/ml/checkpoints")
__all__ = ["DataConfig", "LoraSettings", "PromptTuningSettings", "TrainConfig", "TrainingSettings", "load_config"]


def read_config_file(path: str | Path | None) -> dict[str, Any]:
    """The mapping a ``--config`` YAML or JSON file holds (empty without one); a ``UsageError`` otherwise."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--config={path}: no such file")
    try:
        raw = (json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())) or {}
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise UsageError(f"--config={path}: not valid {path.suffix.lstrip('.') or 'YAML'}: {error}") from None
    if not isinstance(raw, dict):
        raise UsageError(f"--config={path}: expected a mapping of keys")
    return raw


def load_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None, environ: dict[str, str] | None = None
) -> TrainConfig:
    """Config file, then the SageMaker contract, then explicit overrides (dotted keys)."""
    environ = dict(os.environ if environ is None else environ)
    raw = read_config_file(path)
    from .platform import TRAINER_VARIABLE, current_job, job_overrides

    platform: dict[str, Any] = {}
    if environ.get(TRAINER_VARIABLE):
        platform["trainer"] = environ[TRAINER_VARIABLE]
    platform.update(sagemaker_overrides(environ))  # the Training Toolkit's SM_* variables, where it ran
    job = current_job(environ)
    if job is not None:  # SageMaker's own files: what a custom entrypoint gets
        platform.update(job_overrides(job))
    for key, value in {**platform, **(overrides or {})}.items():
        _set(raw, key, value)
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as error:
        raise UsageError("; ".join(describe(error))) from None


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
            found[key.replace("__", ".")] = parse_hyperparameter(value)
    return found


def _set(raw: dict, dotted: str, value: Any) -> None:
    try:
        set_dotted(raw, dotted, value)
    except ValueError as error:
        raise UsageError(str(error)) from None
