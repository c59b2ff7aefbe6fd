"""What SageMaker gives a bring-your-own training container, read the way the container gets it.

With a custom ``ContainerEntrypoint`` (the pipeline's ``genai train launch``) the SageMaker Training
Toolkit never runs, so no ``SM_*`` variable exists. SageMaker itself provides (developer guide, "How
Amazon SageMaker Runs Your Training Image" and "How Amazon SageMaker Provides Training Information"):

- ``/opt/ml/input/config/hyperparameters.json``: the job's ``HyperParameters``, every value a string;
- ``/opt/ml/input/config/inputdataconfig.json``: one entry per channel, whose files are in
  ``/opt/ml/input/data/<channel>/``;
- ``/opt/ml/input/config/resourceconfig.json``: ``current_host``, ``hosts``, ``current_instance_type``,
  ``network_interface_name``...;
- ``/opt/ml/input/config/checkpointconfig.json`` when checkpointing is on (``LocalPath``);
- ``/opt/ml/model`` for the model (uploaded as ``model.tar.gz``), ``/opt/ml/output/failure`` for the
  reason of a failure (shown as the job's ``FailureReason``);
- the environment: ``TRAINING_JOB_NAME``, ``TRAINING_JOB_ARN`` and the job's ``Environment`` only.

``GENAI_SAGEMAKER_ROOT`` moves ``/opt/ml`` (tests build the same layout in a temporary folder).
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genai_contracts.train_config import parse_hyperparameter

from ..errors import UsageError

ROOT_VARIABLE = "GENAI_SAGEMAKER_ROOT"
DEFAULT_ROOT = "/opt/ml"
TRAINER_VARIABLE = "GENAI_TRAINER"
"""The training image's trainer (``neuron`` in the Neuron image): an environment variable survives the
pipeline's ``ContainerEntrypoint`` override, which replaces the image's ENTRYPOINT and its flags."""
MAX_FAILURE_BYTES = 1024  # SageMaker keeps the first 1024 characters of FailureReason


@dataclass(frozen=True)
class TrainingJob:
    """One SageMaker training job as its container sees it."""

    root: Path
    hyperparameters: dict[str, str]
    channels: dict[str, Path]
    current_host: str
    hosts: list[str]
    instance_type: str
    checkpoint_dir: Path | None

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def failure_file(self) -> Path:
        return self.root / "output" / "failure"

    @property
    def host_rank(self) -> int:
        return sorted(self.hosts).index(self.current_host)  # every host must agree on the ranks

    def accelerators(self) -> int:
        """NeuronCores or GPUs of this host, from the construct library's instance facts."""
        from genai_contracts.instance_types import INSTANCE_SPECS

        spec = INSTANCE_SPECS.get(self.instance_type)
        return spec.accelerator_count if spec is not None else 1  # a CPU instance: one process


def current_job(environ: Mapping[str, str] | None = None) -> TrainingJob | None:
    """The job this process runs in, or ``None`` outside SageMaker (no ``resourceconfig.json``)."""
    environ = os.environ if environ is None else environ
    root = Path(environ.get(ROOT_VARIABLE, DEFAULT_ROOT))
    config = root / "input" / "config"
    resources = _read(config / "resourceconfig.json")
    if resources is None:
        return None
    hosts = resources.get("hosts")
    current = resources.get("current_host")
    if not isinstance(hosts, list) or not hosts or current not in hosts:
        raise UsageError(f"{config / 'resourceconfig.json'}: current_host {current!r} is not among hosts {hosts!r}")
    hyperparameters = _read(config / "hyperparameters.json") or {}
    if not isinstance(hyperparameters, dict):
        raise UsageError(f"{config / 'hyperparameters.json'}: expected a JSON object of strings")
    channels = {name: root / "input" / "data" / name for name in (_read(config / "inputdataconfig.json") or {})}
    checkpoint = _read(config / "checkpointconfig.json")
    checkpoint_dir = Path(checkpoint.get("LocalPath", "/opt/ml/checkpoints")) if isinstance(checkpoint, dict) else None
    return TrainingJob(
        root=root,
        hyperparameters={str(k): str(v) for k, v in hyperparameters.items()},
        channels=channels,
        current_host=str(current),
        hosts=[str(h) for h in hosts],
        instance_type=str(resources.get("current_instance_type", "")),
        checkpoint_dir=checkpoint_dir,
    )


def job_overrides(job: TrainingJob) -> dict[str, Any]:
    """The job as ``TrainConfig`` overrides: channels, model dir, checkpoints, then hyperparameters.

    Hyperparameters are strings (``"16"``, ``"true"``, ``"qlora"``); each is read as JSON when it parses
    and as text otherwise, then validated by ``TrainConfig``, which names an unknown key. ``__`` nests:
    ``lora__r`` is ``lora.r``.
    """
    found: dict[str, Any] = {"output_dir": str(job.model_dir)}
    if "train" in job.channels:
        found["data.train"] = str(job.channels["train"])
    if "model" in job.channels:
        found["model"] = str(job.channels["model"])
    if job.checkpoint_dir is not None:
        found["checkpoint_dir"] = str(job.checkpoint_dir)  # synced to S3 by SageMaker (spot resume)
    for key, value in job.hyperparameters.items():
        found[key.replace("__", ".")] = parse_hyperparameter(value)
    return found


def record_failure(error: BaseException, environ: dict[str, str] | None = None) -> None:
    """Write the reason to ``/opt/ml/output/failure`` inside a job (the first writer wins)."""
    try:
        job = current_job(environ)
    except UsageError:
        return
    if job is None or job.failure_file.exists():
        return
    reason = str(error) if isinstance(error, UsageError) else "".join(traceback.format_exception_only(error))
    job.failure_file.parent.mkdir(parents=True, exist_ok=True)
    job.failure_file.write_text(reason.strip()[:MAX_FAILURE_BYTES] + "\n")


def _read(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise UsageError(f"{path}: not readable JSON ({error})") from None
