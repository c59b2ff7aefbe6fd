"""``genai train job``: start ONE SageMaker training job without the pipeline, the way the book does from a
notebook, through the SageMaker Python SDK v3 (``sagemaker.train.ModelTrainer``), on exactly the contract of
``FineTuningPipeline``'s Train step:

- the training image started as ``genai train launch`` (``AlgorithmSpecification.ContainerEntrypoint``, no
  container arguments), which reads the job's own ``/opt/ml/input/config`` files;
- hyperparameters as strings, checked against ``TrainConfig`` first (``submit.job_hyperparameters``);
- the channels ``train`` (the dataset) and ``model`` (the uncompressed base model), S3 prefixes, File mode;
- checkpoints synced between S3 and ``/opt/ml/checkpoints`` (a restarted spot job resumes from them);
- inter-container traffic encryption on, network isolation off unless asked, KMS for the artifacts (and for
  the storage volume where the instance type has one: SageMaker refuses ``VolumeKmsKeyId`` on instance types
  with local NVMe storage, whose volumes the hardware encrypts).

SDK facts this relies on (sagemaker-train 1.27 / sagemaker-core 2.27, the ``sagemaker`` 3.27 meta-package):

- ``ModelTrainer`` sets ``ContainerEntrypoint`` only with ``source_code`` (``/bin/bash`` running its own
  ``sm_train.sh`` driver from extra ``code``/``sm_drivers`` channels); without it the field stays unset and the
  image's ENTRYPOINT would run as ``<ENTRYPOINT> train``. It has no parameter for the entrypoint, so a botocore
  ``before-parameter-build`` handler on this session's SageMaker client adds ``["genai", "train", "launch"]`` to
  the ``CreateTrainingJob`` request that the SDK builds, and refuses to run if the SDK ever sets another one.
- ``ModelTrainer`` validates an explicit role with ``iam:SimulatePrincipalPolicy`` + ``iam:GetRole`` and requires
  the EC2 network-interface actions even for a job without a VPC, which would refuse the pipeline's
  least-privilege training role; ``SAGEMAKER_VALIDATE_ROLE=false`` (the SDK's own switch) turns that off unless
  it is set already. SageMaker checks the role itself when the job starts.
- An explicit ``sagemaker_config`` on the SDK ``Session`` replaces the SDK's defaults files (``config.yaml``
  could add an Environment, a VPC, network isolation or tags to the job): the flags are the whole job. It also
  opts out of the SDK's telemetry, which would otherwise send an HTTP request per ``train()`` call.
- The job name is ``sft-<timestamp>`` (``ModelTrainer`` appends the time to ``base_job_name``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
from dataclasses import dataclass

from ..errors import MissingDependency, UsageError

ENTRYPOINT = ("genai", "train", "launch")
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
BASE_JOB_NAME = "sft"
MAX_INSTANCES = 64
MAX_RUNTIME_HOURS = 28 * 24  # SageMaker: "The maximum value is 28 days"
MAX_WAIT_HOURS = 2 * MAX_RUNTIME_HOURS  # undocumented; waiting for spot capacity plus the run
DEFAULT_MAX_RUNTIME_HOURS = 24.0  # the pipeline's TrainingJobSettings defaults
SPOT_WAIT_FACTOR = 1.5  # max_wait 36 h over max_runtime 24 h, as the pipeline
DEFAULT_VOLUME_GB = 200
MAX_VOLUME_GB = 16384
MAX_HYPERPARAMETERS, MAX_KEY, MAX_VALUE = 100, 256, 2500  # CreateTrainingJob's HyperParameters limits
SDK_CONFIG = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}
SDK_HINT = "genai train job starts the job with the SageMaker Python SDK v3 (sagemaker.train.ModelTrainer)"

_BUCKET = r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"
_S3_OBJECTS = re.compile(rf"^s3://(?P<bucket>{_BUCKET})/(?P<key>.+)$")
_S3_LOCATION = re.compile(rf"^s3://(?P<bucket>{_BUCKET})(/(?P<key>.*))?$")
# The construct library's ECR pattern (genai_cdk.lmi_image, which imports aws_cdk): SageMaker pulls from ECR only.
_ECR_URI = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?/"
    r"(?P<repository>[a-z0-9._/-]+)(:[\w.-]+|@sha256:[0-9a-f]{64})$"
)
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_KMS_KEY = re.compile(
    r"^(arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key/[\w-]+|alias/[\w/-]+)|alias/[\w/-]+|[0-9a-f-]{36}|mrk-[0-9a-f]{32})$"
)
_INSTANCE_TYPE = re.compile(r"^ml\.(?P<family>[a-z0-9-]+)\.(?P<size>[a-z0-9]+)$")
_ACCELERATED = re.compile(r"^(p\d|g\d|trn|inf|dl)")
_SUBNET = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_SECURITY_GROUP = re.compile(r"^sg-[0-9a-f]{8,17}$")


@dataclass(frozen=True)
class JobSpec:
    """One training job, validated: what ``start`` turns into ``ModelTrainer`` arguments."""

    instance_type: str
    image: str
    role: str
    dataset: str
    base_model: str
    output: str
    instance_count: int
    volume_size_gb: int
    spot: bool
    max_runtime_seconds: int
    max_wait_seconds: int | None
    checkpoints: str | None
    hyperparameters: dict[str, str]
    kms_key: str | None
    subnets: tuple[str, ...]
    security_groups: tuple[str, ...]
    network_isolation: bool

    @property
    def channels(self) -> dict[str, str]:
        """The pipeline's channel names: ``genai train launch`` reads exactly these two."""
        return {"train": self.dataset, "model": self.base_model}

    @property
    def volume_kms_key(self) -> str | None:
        """``kms_key`` for the storage volume, unless the instance type has local NVMe storage (the accelerated
        types from the instance facts; CPU types by the ``d`` of their family: ml.m5d, ml.c6id, ...)."""
        from genai_contracts.instance_types import INSTANCE_SPECS

        spec = INSTANCE_SPECS.get(self.instance_type)
        local_nvme = spec.local_nvme if spec is not None else "d" in self.instance_type.split(".")[1]
        return None if local_nvme else self.kms_key


def job_spec(
    *,
    instance_type: str,
    image: str,
    role: str,
    dataset: str,
    base_model: str,
    output: str,
    instance_count: int = 1,
    volume_size_gb: int = DEFAULT_VOLUME_GB,
    spot: bool = False,
    max_runtime_hours: float = DEFAULT_MAX_RUNTIME_HOURS,
    max_wait_hours: float | None = None,
    checkpoints: str | None = None,
    overrides: dict | None = None,
    kms_key: str | None = None,
    subnets: list[str] | tuple[str, ...] = (),
    security_groups: list[str] | tuple[str, ...] = (),
    network_isolation: bool = False,
) -> JobSpec:
    """Every argument checked, each refusal naming its flag (``UsageError``: the CLI exits 2)."""
    _instance_type(instance_type)
    if not isinstance(image, str) or not _ECR_URI.match(image):
        raise UsageError(
            f"--image={image}: SageMaker pulls training images from ECR only; give "
            "ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPOSITORY:TAG (or @sha256:DIGEST) of containers/training"
        )
    if not isinstance(role, str) or not _ROLE_ARN.match(role):
        raise UsageError(
            f"--role={role}: give the ARN of the job's execution role, arn:aws:iam::ACCOUNT:role/NAME "
            "(e.g. the training stack's FineTuningPipeline training role)"
        )
    dataset = _s3(dataset, "--dataset", "the training data, s3://BUCKET/KEY (a .jsonl/.csv/.parquet file or a prefix)")
    base_model = _s3(base_model, "--base-model", "the folder of the uncompressed base model, s3://BUCKET/PREFIX/")
    if base_model.endswith((".tar.gz", ".tgz", ".tar")):
        raise UsageError(
            f"--base-model={base_model}: the 'model' channel must hold the model's files (config.json, weights), "
            "not an archive; give their folder, s3://BUCKET/PREFIX/"
        )
    base_model = base_model.rstrip("/") + "/"  # a prefix: llama2-7b must not also match llama2-7b-chat/
    if not isinstance(output, str) or not _S3_LOCATION.match(output):
        raise UsageError(f"--output={output}: give where the model goes, s3://BUCKET/PREFIX/")
    if not isinstance(instance_count, int) or not 1 <= instance_count <= MAX_INSTANCES:
        raise UsageError(f"--instance-count={instance_count}: use 1 to {MAX_INSTANCES} instances")
    if not isinstance(volume_size_gb, int) or not 1 <= volume_size_gb <= MAX_VOLUME_GB:
        raise UsageError(f"--volume-size={volume_size_gb}: use 1 to {MAX_VOLUME_GB} GB")
    max_runtime = _hours(max_runtime_hours, "--max-runtime", MAX_RUNTIME_HOURS)
    max_wait = None
    if max_wait_hours is not None and not spot:
        raise UsageError(f"--max-wait={max_wait_hours}: applies to managed spot training only; add --spot")
    if spot:
        if max_wait_hours is None:
            max_wait = round(max_runtime * SPOT_WAIT_FACTOR)
        else:
            max_wait = _hours(max_wait_hours, "--max-wait", MAX_WAIT_HOURS)
        if max_wait < max_runtime:
            raise UsageError(
                f"--max-wait={max_wait_hours}: managed spot needs max wait >= max runtime ({max_runtime_hours} h)"
            )
        if checkpoints is None:
            raise UsageError(
                "--spot: also give --checkpoints s3://BUCKET/PREFIX/: an interrupted spot job restarts, and "
                "resumes from its checkpoints only if they are synced to S3 (otherwise it starts over)"
            )
    if checkpoints is not None:
        checkpoints = _s3(checkpoints, "--checkpoints", "a prefix of their own, s3://BUCKET/PREFIX/")
        checkpoints = checkpoints.rstrip("/") + "/"
        for flag, uri in (("--dataset", dataset), ("--base-model", base_model)):
            if checkpoints.startswith(uri.rstrip("/") + "/") or uri.startswith(checkpoints):
                raise UsageError(
                    f"--checkpoints={checkpoints}: overlaps {flag}={uri}; SageMaker syncs that prefix to and from "
                    f"{CHECKPOINT_LOCAL_PATH}: give it a prefix of its own"
                )
    from .submit import job_hyperparameters

    hyperparameters = job_hyperparameters(dict(overrides or {}))
    _hyperparameter_limits(hyperparameters)
    if kms_key is not None and not _KMS_KEY.match(kms_key):
        raise UsageError(f"--kms-key={kms_key}: give a KMS key ARN, key ID or alias (alias/NAME)")
    subnets, security_groups = tuple(subnets or ()), tuple(security_groups or ())
    for flag, values, pattern, most in (
        ("--subnet", subnets, _SUBNET, 16),
        ("--security-group", security_groups, _SECURITY_GROUP, 5),
    ):
        for value in values:
            if not pattern.match(value):
                raise UsageError(f"{flag}={value}: not a {flag.lstrip('-').replace('-', ' ')} ID")
        if len(values) > most:
            raise UsageError(f"{flag}: at most {most}, not {len(values)}")
    if bool(subnets) != bool(security_groups):
        missing = "--security-group" if subnets else "--subnet"
        raise UsageError(f"{missing}: a job in a VPC needs both --subnet and --security-group")
    return JobSpec(
        instance_type=instance_type,
        image=image,
        role=role,
        dataset=dataset,
        base_model=base_model,
        output=output,
        instance_count=instance_count,
        volume_size_gb=volume_size_gb,
        spot=spot,
        max_runtime_seconds=max_runtime,
        max_wait_seconds=max_wait,
        checkpoints=checkpoints,
        hyperparameters=hyperparameters,
        kms_key=kms_key,
        subnets=subnets,
        security_groups=security_groups,
        network_isolation=network_isolation,
    )


def start(spec: JobSpec, *, wait: bool = False, boto_session=None) -> dict:
    """Start the job through ``ModelTrainer`` (and with ``wait``, stream its logs until it ends).

    Returns the job's name, ARN, status and model artifact URI; with ``wait`` a failed job's reason too.
    """
    sdk = _sdk()
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

    session = boto_session or boto3.Session()
    if not session.region_name:
        raise UsageError("no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION) or a profile with a region")
    _keep_the_pipeline_entrypoint(session, spec.image)
    os.environ.setdefault("SAGEMAKER_VALIDATE_ROLE", "false")
    configs = sdk.configs
    trainer = sdk.ModelTrainer(
        sagemaker_session=sdk.Session(boto_session=session, sagemaker_config=json.loads(json.dumps(SDK_CONFIG))),
        role=spec.role,
        base_job_name=BASE_JOB_NAME,
        training_image=spec.image,
        training_input_mode="File",
        compute=configs.Compute(
            instance_type=spec.instance_type,
            instance_count=spec.instance_count,
            volume_size_in_gb=spec.volume_size_gb,
            volume_kms_key_id=spec.volume_kms_key,
            enable_managed_spot_training=spec.spot,
        ),
        networking=configs.Networking(
            subnets=list(spec.subnets) or None,
            security_group_ids=list(spec.security_groups) or None,
            enable_network_isolation=spec.network_isolation,
            enable_inter_container_traffic_encryption=True,
        ),
        stopping_condition=configs.StoppingCondition(
            max_runtime_in_seconds=spec.max_runtime_seconds, max_wait_time_in_seconds=spec.max_wait_seconds
        ),
        output_data_config=configs.OutputDataConfig(
            s3_output_path=spec.output, kms_key_id=spec.kms_key, compression_type="GZIP"
        ),
        checkpoint_config=(
            configs.CheckpointConfig(s3_uri=spec.checkpoints, local_path=CHECKPOINT_LOCAL_PATH)
            if spec.checkpoints
            else None
        ),
        hyperparameters=dict(spec.hyperparameters),
    )
    channels = [configs.InputData(channel_name=name, data_source=uri) for name, uri in spec.channels.items()]
    failure = None
    shown = _show_sdk_logs() if wait else None
    try:
        trainer.train(input_data_config=channels, wait=wait, logs=wait)
    except sdk.FailedStatusError as error:
        failure = str(error)
    except NoCredentialsError:
        raise UsageError("no AWS credentials: run `aws configure` or `aws sso login`, or set AWS_PROFILE") from None
    except NoRegionError:
        raise UsageError("no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION)") from None
    except ClientError as error:
        problem = error.response.get("Error", {})
        detail = f"{problem.get('Code', 'error')}: {problem.get('Message', error)}"
        raise UsageError(f"{_started(trainer)}SageMaker refused the request: {detail}") from None
    except BotoCoreError as error:
        raise UsageError(f"{_started(trainer)}could not reach SageMaker: {error}") from None
    except KeyboardInterrupt:
        if trainer._latest_training_job is not None:
            name = trainer._latest_training_job.training_job_name
            print(
                f"genai: {name} keeps running; stop it: aws sagemaker stop-training-job --training-job-name {name}",
                file=sys.stderr,
            )
        raise
    finally:
        if shown is not None:
            logging.getLogger("sagemaker").removeHandler(shown)
    job = trainer._latest_training_job  # what the SDK's own ModelTrainer example reads after train()
    name = job.training_job_name
    artifacts = getattr(getattr(job, "model_artifacts", None), "s3_model_artifacts", None)
    result = {
        "TrainingJobName": name,
        "TrainingJobArn": job.training_job_arn,
        "TrainingJobStatus": job.training_job_status,
        # SageMaker's layout, S3OutputPath/JOB/output/model.tar.gz, until the finished job reports it
        "ModelArtifacts": artifacts
        if isinstance(artifacts, str) and artifacts
        else f"{spec.output.rstrip('/')}/{name}/output/model.tar.gz",
    }
    if spec.checkpoints:
        result["Checkpoints"] = spec.checkpoints
    if failure is not None:
        reason = getattr(job, "failure_reason", None)
        result["FailureReason"] = reason if isinstance(reason, str) else failure
    return result


def _show_sdk_logs() -> logging.Handler:
    """The job's log lines, which the SDK logs at INFO and leaves to the application to show, on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_PlainFormatter("%(message)s"))
    handler.setLevel(logging.INFO)
    sdk_logger = logging.getLogger("sagemaker")
    sdk_logger.addHandler(handler)
    if sdk_logger.getEffectiveLevel() > logging.INFO:
        sdk_logger.setLevel(logging.INFO)
    return handler


class _PlainFormatter(logging.Formatter):
    """The SDK's status lines carry rich markup (``[bold]Completed``); container log lines are left as they are."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if getattr(record, "markup", True) is False else re.sub(r"\[/?bold\]", "", text)


def _started(trainer) -> str:
    job = trainer._latest_training_job
    return "" if job is None else f"training job {job.training_job_name} started, but waiting on it failed: "


class _Sdk:
    def __init__(self) -> None:
        from sagemaker.core.helper.session_helper import Session
        from sagemaker.core.training import configs
        from sagemaker.core.utils.exceptions import FailedStatusError
        from sagemaker.train.model_trainer import ModelTrainer

        self.ModelTrainer, self.Session, self.configs, self.FailedStatusError = (
            ModelTrainer,
            Session,
            configs,
            FailedStatusError,
        )


def _sdk() -> _Sdk:
    """The SageMaker Python SDK v3, imported only when a job starts (``--help`` and validation need none of it)."""
    try:
        return _Sdk()
    except ImportError:
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("sagemaker")
    except PackageNotFoundError:
        raise MissingDependency(
            "sagemaker", "sagemaker", f"{SDK_HINT}; in this repository: make setup-sagemaker"
        ) from None
    raise UsageError(f"sagemaker {installed} is installed, but {SDK_HINT}: pip install 'genai-cdk[sagemaker]'")


def _keep_the_pipeline_entrypoint(session, image: str) -> None:
    """Start the image as ``genai train launch``, as the pipeline does, in the request ``ModelTrainer`` builds.

    Registered on the boto3 session before the SDK creates its clients, which copy the session's handlers.
    """

    def add_entrypoint(params: dict, **_) -> None:
        algorithm = params.get("AlgorithmSpecification")
        if not isinstance(algorithm, dict) or algorithm.get("TrainingImage") != image:
            return
        current = algorithm.get("ContainerEntrypoint")
        if current not in (None, list(ENTRYPOINT)) or algorithm.get("ContainerArguments"):
            raise RuntimeError(
                f"the SageMaker SDK set ContainerEntrypoint={current} / ContainerArguments="
                f"{algorithm.get('ContainerArguments')}, which would replace `genai train launch`; "
                "genai train job needs a release of sagemaker-train that leaves them unset without source_code"
            )
        algorithm["ContainerEntrypoint"] = list(ENTRYPOINT)

    session.events.register(
        "before-parameter-build.sagemaker.CreateTrainingJob", add_entrypoint, unique_id="genai-train-launch"
    )


def _instance_type(instance_type: str) -> None:
    from genai_contracts.instance_types import INSTANCE_SPECS

    match = _INSTANCE_TYPE.match(instance_type) if isinstance(instance_type, str) else None
    if match is None:
        raise UsageError(f"--instance-type={instance_type}: give a SageMaker instance type, e.g. ml.trn1.32xlarge")
    if match["family"].startswith("inf"):
        raise UsageError(
            f"--instance-type={instance_type}: Inferentia serves models; train on Trainium (ml.trn1.*, ml.trn1n.*) "
            "or a GPU type (ml.g5.*, ml.p4d.*, ...)"
        )
    if _ACCELERATED.match(match["family"]) and instance_type not in INSTANCE_SPECS:
        known = sorted(name for name in INSTANCE_SPECS if not name.startswith("ml.inf"))
        raise UsageError(
            f"--instance-type={instance_type}: genai train launch would not know its NeuronCores/GPUs (one process "
            f"per device); use one of {', '.join(known)}, or a CPU type such as ml.m5.2xlarge"
        )


def _s3(uri: str, flag: str, what: str) -> str:
    if not isinstance(uri, str) or not _S3_OBJECTS.match(uri):
        raise UsageError(f"{flag}={uri}: give {what}")
    return uri


def _hours(value: float, flag: str, maximum: float) -> int:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise UsageError(f"{flag}={value}: give a positive number of hours")
    if value > maximum:
        raise UsageError(f"{flag}={value}: SageMaker allows at most {maximum:g} hours")
    seconds = round(value * 3600)
    if seconds < 60:
        raise UsageError(f"{flag}={value}: give at least one minute (0.017 hours)")
    return seconds


def _hyperparameter_limits(hyperparameters: dict[str, str]) -> None:
    if len(hyperparameters) > MAX_HYPERPARAMETERS:
        raise UsageError(f"--set: SageMaker takes at most {MAX_HYPERPARAMETERS} hyperparameters")
    for key, value in hyperparameters.items():
        if len(key) > MAX_KEY or len(value) > MAX_VALUE:
            raise UsageError(
                f"--set {key}: SageMaker takes keys of at most {MAX_KEY} and values of at most {MAX_VALUE} characters"
            )
