"""`genai train job`: one SageMaker training job through the SageMaker Python SDK v3 (``ModelTrainer``), on the
pipeline's Train-step contract.

Argument checks need no SDK. The requests are the ones the real SDK sends: it runs in the separate environment
``make setup-sagemaker`` builds (the SDK conflicts with four pins of the main one; ``make test`` builds it and
points GENAI_SAGEMAKER_PYTHON at it), with every botocore client stubbed (``botocore.stub.Stubber``: an API call
without a queued response fails) and sockets refused, so nothing reaches the network. Each CreateTrainingJob body
is compared with the synthesized pipeline's Train state, checked against botocore's own input shape, and laid
out as SageMaker gives it to the container, where ``genai train launch`` reads it back.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from genai_runtime.cli import main

ROOT = Path(__file__).resolve().parents[2]
SAGEMAKER_PYTHON = os.environ.get("GENAI_SAGEMAKER_PYTHON") or str(ROOT / ".venv-sagemaker" / "bin" / "python")
SAGEMAKER_PYTHON = os.path.abspath(SAGEMAKER_PYTHON)  # keeps the venv's symlink; the subprocess runs elsewhere
needs_sdk = pytest.mark.skipif(
    not Path(SAGEMAKER_PYTHON).exists(),
    reason="needs the SageMaker SDK environment: run `make setup-sagemaker` (`make test` does)",
)

IMAGE = "111122223333.dkr.ecr.us-east-1.amazonaws.com/genai-train:1.0"
ROLE = "arn:aws:iam::111122223333:role/genai-training"
KEY = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ARN = "arn:aws:sagemaker:us-east-1:111122223333:training-job/sft-1"
REQUIRED = [
    "train",
    "job",
    "--instance-type=ml.trn1.32xlarge",
    f"--image={IMAGE}",
    f"--role={ROLE}",
    "--dataset=s3://my-data/samsum/train.jsonl",
    "--base-model=s3://my-models/llama2-7b",
    "--output=s3://my-artifacts/jobs/",
]
SETS = ["mode=qlora", "lora.r=8", "training.max_steps=50", "training.learning_rate=1e-4", "merge_adapter=true"]


def _run(argv: list[str]) -> tuple[int, str]:
    """Exit status and standard error of ``genai ARGV`` (argparse's own refusals included)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code
    return code, err.getvalue()


def _with(*flags: str, drop: str | None = None) -> list[str]:
    kept = [arg for arg in REQUIRED if drop is None or not arg.startswith(drop + "=")]
    return kept + list(flags)


# ---- arguments: each refusal exits 2 and names its flag, before any SDK import --------------------------------


@pytest.mark.parametrize(
    "argv, flag",
    [
        (_with("--instance-type=ml.inf2.48xlarge", drop="--instance-type"), "--instance-type"),
        (_with("--instance-type=ml.trn1.16xlarge", drop="--instance-type"), "--instance-type"),
        (_with("--instance-type=trn1.32xlarge", drop="--instance-type"), "--instance-type"),
        (_with("--image=docker.io/me/train:1", drop="--image"), "--image"),
        (_with("--role=genai-training", drop="--role"), "--role"),
        (_with("--base-model=s3://my-models/llama2-7b/model.tar.gz", drop="--base-model"), "--base-model"),
        (_with("--output=/tmp/out", drop="--output"), "--output"),
        (_with("--instance-count=65"), "--instance-count"),
        (_with("--instance-count=0"), "--instance-count"),
        (_with("--volume-size=20000"), "--volume-size"),
        (_with("--max-runtime=700"), "--max-runtime"),
        (_with("--max-runtime=inf"), "--max-runtime"),
        (_with("--max-wait=30"), "--max-wait"),  # without --spot
        (_with("--spot", "--checkpoints=s3://c/x/", "--max-wait=12"), "--max-wait"),  # below max runtime
        (_with("--spot"), "--spot"),  # a spot job without checkpoints would start over when interrupted
        (_with("--checkpoints=s3://my-models/llama2-7b/ck/"), "--checkpoints"),  # inside the base model
        (_with("--checkpoints=s3://my-data/samsum/"), "--checkpoints"),  # holds the dataset
        (_with("--checkpoints=s3://my-artifacts"), "--checkpoints"),  # a whole bucket synced into the job
        (_with("--set=lora.rr=4"), "--set"),
        (_with("--set=mdoe=lora"), "--set"),
        (_with("--set=nokey"), "--set"),
        (_with("--set=training.batch_size=0"), "--set"),
        (_with("--kms-key=my key"), "--kms-key"),
        (_with("--subnet=subnet-0123456789abcdef0"), "--security-group"),
        (_with("--security-group=sg-12345678"), "--subnet"),
        (_with("--subnet=net-1", "--security-group=sg-12345678"), "--subnet"),
        (REQUIRED[:-1], "--output"),  # required
    ],
)
def test_a_bad_argument_exits_2_naming_its_flag(argv, flag):
    code, err = _run(argv)
    assert code == 2, err
    assert flag in err, err


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(count=st.integers(max_value=10**6).filter(lambda n: not 1 <= n <= 64))
def test_any_instance_count_outside_1_to_64_is_refused(count):
    code, err = _run(_with(f"--instance-count={count}"))
    assert code == 2 and "--instance-count" in err, err


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hours=st.one_of(st.floats(max_value=0.0), st.floats(min_value=672.01), st.just(float("nan"))))
def test_any_runtime_outside_the_sagemaker_limit_is_refused(hours):
    code, err = _run(_with(f"--max-runtime={hours}"))
    assert code == 2 and "--max-runtime" in err, err


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(uri=st.text(min_size=1, max_size=40).filter(lambda text: "\x00" not in text))
def test_any_dataset_that_is_not_an_s3_object_is_refused(uri):
    assume(not re.match(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+$", uri))
    code, err = _run(_with(f"--dataset={uri}", drop="--dataset"))
    assert code == 2 and "--dataset" in err, err


def test_the_spec_follows_the_pipeline_defaults():
    from genai_runtime.train.job import job_spec

    arguments = {
        "instance_type": "ml.trn1.32xlarge",
        "image": IMAGE,
        "role": ROLE,
        "dataset": "s3://my-data/samsum/train.jsonl",
        "base_model": "s3://my-models/llama2-7b",
        "output": "s3://my-artifacts/jobs/",
        "spot": True,
        "checkpoints": "s3://my-artifacts/checkpoints/run-1",
        "overrides": {"lora.r": 8, "mode": "qlora"},
        "kms_key": KEY,
    }
    spec = job_spec(**arguments)
    assert spec.channels == {"train": "s3://my-data/samsum/train.jsonl", "model": "s3://my-models/llama2-7b/"}
    assert (spec.max_runtime_seconds, spec.max_wait_seconds, spec.volume_size_gb) == (86400, 129600, 200)
    assert spec.checkpoints == "s3://my-artifacts/checkpoints/run-1/"
    assert spec.hyperparameters == {"lora__r": "8", "mode": "qlora"}
    assert spec.volume_kms_key is None  # local NVMe: SageMaker refuses a VolumeKmsKeyId there
    assert job_spec(**{**arguments, "instance_type": "ml.m5.2xlarge"}).volume_kms_key == KEY
    assert job_spec(**{**arguments, "spot": False, "checkpoints": None}).max_wait_seconds is None


@pytest.mark.skipif(importlib.util.find_spec("sagemaker") is not None, reason="the SageMaker SDK is installed here")
def test_without_the_sdk_valid_arguments_say_which_extra_to_install():
    code, err = _run(REQUIRED)
    assert code == 2
    assert "genai-cdk[sagemaker]" in err and "make setup-sagemaker" in err
    assert "sagemaker" not in sys.modules


# ---- through the real SDK, every client stubbed -------------------------------------------------------------

HARNESS = r"""
import contextlib, datetime, io, json, socket, sys, threading

scenarios = json.load(open(sys.argv[1]))
attempts = []


def refuse(*args, **kwargs):
    attempts.append(repr(args[-1] if args else kwargs))
    raise OSError("genai test: no network")


socket.socket.connect = socket.socket.connect_ex = refuse
socket.getaddrinfo = socket.create_connection = refuse

import boto3.session
from botocore.stub import Stubber

calls, current = [], {}
original = boto3.session.Session.client
logs = [item for scenario in scenarios for item in scenario.get("logs", [])]  # one client: the SDK's singleton


def dates(value):
    if isinstance(value, dict):
        return {k: datetime.datetime.fromisoformat(v) if k.endswith("Time") and isinstance(v, str) else dates(v)
                for k, v in value.items()}
    return [dates(v) for v in value] if isinstance(value, list) else value


def client(self, service_name, *args, **kwargs):
    made = original(self, service_name, *args, **kwargs)

    def record(model, params, **_):
        body = params.get("body") or b"{}"
        try:
            body = json.loads(body)
        except ValueError:
            body = body.decode() if isinstance(body, bytes) else body
        calls.append({"scenario": current["name"], "service": service_name, "operation": model.name, "params": body})

    made.meta.events.register_first("before-call.*.*", record)
    stubber = Stubber(made)
    for method, response in logs if service_name == "logs" else current.get(service_name, []):
        if "error" in response:
            stubber.add_client_error(method, response["error"]["code"], response["error"]["message"], 400)
        else:
            stubber.add_response(method, dates(response))
    stubber.activate()
    return made


boto3.session.Session.client = client
from genai_runtime.cli import main

results = []
for scenario in scenarios:
    current.clear()
    current.update(scenario)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(scenario["argv"])
        except SystemExit as exit_:
            code = exit_.code
        except Exception as error:  # reported, not raised: the other scenarios still run
            code = f"{type(error).__name__}: {error}"
    results.append({"name": scenario["name"], "code": code, "stdout": out.getvalue(), "stderr": err.getvalue()})
for thread in threading.enumerate():
    if thread.name == "sagemaker-telemetry":
        thread.join(5)
json.dump({"results": results, "calls": calls, "attempts": attempts}, open(sys.argv[2], "w"))
"""


def _describe(status: str, **extra) -> dict:
    return {
        "TrainingJobName": "sft-1",
        "TrainingJobArn": ARN,
        "ModelArtifacts": {"S3ModelArtifacts": "s3://my-artifacts/jobs/sft-1/output/model.tar.gz"},
        "TrainingJobStatus": status,
        "SecondaryStatus": {"InProgress": "Starting"}.get(status, status),
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "ResourceConfig": {"InstanceType": "ml.g5.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 200},
        "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
        "CreationTime": "2026-12-01T12:00:00+00:00",
        **extra,
    }


def _logs(*messages: str) -> list:
    stream = "sft-1/algo-1-1764590400"
    events = [
        {"timestamp": 1764590400000 + i, "message": m, "ingestionTime": 1764590400000} for i, m in enumerate(messages)
    ]
    return [
        ["describe_log_streams", {"logStreams": [{"logStreamName": stream}]}],
        ["get_log_events", {"events": events, "nextForwardToken": "f/1", "nextBackwardToken": "b/1"}],
        ["get_log_events", {"events": [], "nextForwardToken": "f/1", "nextBackwardToken": "b/1"}],
    ]


CREATED = ["create_training_job", {"TrainingJobArn": ARN}]
# ~/.config/sagemaker/config.yaml (JSON is YAML): without genai's own SDK config, ModelTrainer would add this
# Environment to every job and send a telemetry request per train() call.
SDK_DEFAULTS_FILE = {
    "SchemaVersion": "1.0",
    "SageMaker": {
        "PythonSDK": {"Modules": {"TelemetryOptOut": False}},
        "TrainingJob": {"Environment": {"INJECTED": "yes"}, "EnableNetworkIsolation": True},
    },
}
SCENARIOS = [
    {
        "name": "spot",
        "argv": _with(
            "--instance-count=2",
            "--spot",
            "--checkpoints=s3://my-artifacts/checkpoints/run-1",
            f"--kms-key={KEY}",
            *(f"--set={item}" for item in SETS),
        ),
        "sagemaker": [CREATED, ["describe_training_job", _describe("InProgress")]],
    },
    {
        "name": "cpu-in-a-vpc",
        "argv": _with(
            "--instance-type=ml.m5.2xlarge",
            "--max-runtime=2",
            "--kms-key=alias/genai",
            "--subnet=subnet-0123456789abcdef0",
            "--subnet=subnet-0fedcba9876543210",
            "--security-group=sg-0123456789abcdef0",
            "--network-isolation",
            drop="--instance-type",
        ),
        "sagemaker": [CREATED, ["describe_training_job", _describe("InProgress")]],
    },
    {
        "name": "wait-completed",
        "argv": _with("--instance-type=ml.g5.2xlarge", "--wait", drop="--instance-type"),
        "sagemaker": [
            CREATED,
            ["describe_training_job", _describe("InProgress")],
            ["describe_training_job", _describe("Completed")],
        ],
        "logs": _logs("torch.distributed.run --nproc_per_node=1", "train_loss=1.23"),
    },
    {
        "name": "wait-failed",
        "argv": _with("--instance-type=ml.g5.2xlarge", "--wait", drop="--instance-type"),
        "sagemaker": [
            CREATED,
            ["describe_training_job", _describe("InProgress")],
            ["describe_training_job", _describe("Failed", FailureReason="AlgorithmError: lora.rr: unknown key")],
        ],
        "logs": _logs("genai: error: lora.rr: unknown key (misspelled?)"),
    },
    {
        "name": "refused",
        "argv": REQUIRED,
        "sagemaker": [
            ["create_training_job", {"error": {"code": "ResourceLimitExceeded", "message": "ml.trn1.32xlarge: 0 left"}}]
        ],
    },
]


@pytest.fixture(scope="module")
def sdk(tmp_path_factory) -> dict:
    """Every scenario in one SDK process (its import and each ModelTrainer cost about a second): the results, the
    API calls, the socket attempts; and, synthesized meanwhile, the pipeline's Train state to compare with."""
    folder = tmp_path_factory.mktemp("sdk")
    (folder / "scenarios.json").write_text(json.dumps(SCENARIOS))
    (folder / ".config" / "sagemaker").mkdir(parents=True)  # the user's SDK defaults, which must not apply
    (folder / ".config" / "sagemaker" / "config.yaml").write_text(json.dumps(SDK_DEFAULTS_FILE))
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(folder),  # no ~/.aws
        "PYTHONPATH": os.pathsep.join([str(ROOT / "runtime"), str(ROOT / "constructs")]),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    process = subprocess.Popen(
        [SAGEMAKER_PYTHON, "-c", HARNESS, str(folder / "scenarios.json"), str(folder / "out.json")],
        env=environ,
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    from tests.runtime.test_sagemaker_contract import HYPERPARAMETERS, _definition

    train = _definition(hyperparameters=HYPERPARAMETERS)["States"]["Train"]["Parameters"]
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output[-6000:]
    found = json.loads((folder / "out.json").read_text())
    found["results"] = {result["name"]: result for result in found["results"]}
    found["output"], found["pipeline_train"] = output, train
    return found


def _request(sdk: dict, scenario: str) -> dict:
    created = [c for c in sdk["calls"] if c["scenario"] == scenario and c["operation"] == "CreateTrainingJob"]
    assert len(created) == 1, sdk["calls"]
    return created[0]["params"]


@needs_sdk
def test_the_sdk_starts_the_image_as_the_pipeline_does(sdk):
    """The synthesized pipeline's Train state (what test_sagemaker_contract.py replays) against the SDK's request."""
    request, pipeline_train = _request(sdk, "spot"), sdk["pipeline_train"]
    spec, pipeline = request["AlgorithmSpecification"], pipeline_train["AlgorithmSpecification"]
    assert spec["ContainerEntrypoint"] == pipeline["ContainerEntrypoint"] == ["genai", "train", "launch"]
    assert "ContainerArguments" not in spec and "ContainerArguments" not in pipeline
    assert spec["TrainingImage"] == IMAGE and spec["TrainingInputMode"] == pipeline["TrainingInputMode"] == "File"
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"] for c in request["InputDataConfig"]}
    assert list(channels) == [c["ChannelName"] for c in pipeline_train["InputDataConfig"]] == ["train", "model"]
    assert channels["train"]["S3Uri"] == "s3://my-data/samsum/train.jsonl"
    assert channels["model"]["S3Uri"] == "s3://my-models/llama2-7b/"
    for name, source in channels.items():
        assert (source["S3DataType"], source["S3DataDistributionType"]) == ("S3Prefix", "FullyReplicated"), name
    for key in ("EnableNetworkIsolation", "EnableInterContainerTrafficEncryption", "EnableManagedSpotTraining"):
        assert request[key] == pipeline_train[key], key  # the pipeline's defaults: spot, encrypted, not isolated
    assert request["StoppingCondition"] == pipeline_train["StoppingCondition"]  # 24 h, 36 h for spot
    assert request["CheckpointConfig"] == {
        "S3Uri": "s3://my-artifacts/checkpoints/run-1/",
        "LocalPath": pipeline_train["CheckpointConfig"]["LocalPath"],
    }
    assert request["ResourceConfig"] == {"InstanceType": "ml.trn1.32xlarge", "InstanceCount": 2, "VolumeSizeInGB": 200}
    assert request["OutputDataConfig"] == {
        "S3OutputPath": "s3://my-artifacts/jobs/",
        "KmsKeyId": KEY,
        "CompressionType": "GZIP",
    }
    assert request["RoleArn"] == ROLE and re.fullmatch(r"sft-\d{14}", request["TrainingJobName"])
    assert "Environment" not in request and "VpcConfig" not in request  # the SDK defaults file adds nothing


@needs_sdk
def test_hyperparameters_are_the_converted_set_values_as_strings(sdk):
    from genai_runtime.cli.train import _pairs
    from genai_runtime.train.submit import job_hyperparameters

    hyperparameters = _request(sdk, "spot")["HyperParameters"]
    assert hyperparameters == job_hyperparameters(_pairs(SETS))
    assert hyperparameters == {
        "mode": "qlora",
        "lora__r": "8",
        "training__max_steps": "50",
        "training__learning_rate": "0.0001",
        "merge_adapter": "true",
    }
    assert all(isinstance(value, str) for value in hyperparameters.values())
    assert "HyperParameters" in _request(sdk, "cpu-in-a-vpc") and not _request(sdk, "cpu-in-a-vpc")["HyperParameters"]


@needs_sdk
def test_on_demand_cpu_in_a_vpc(sdk):
    request = _request(sdk, "cpu-in-a-vpc")
    assert request["EnableManagedSpotTraining"] is False and "CheckpointConfig" not in request
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200}
    # EBS-only instance: the volume is encrypted with the key as well (trn1/g5/p4d have NVMe: no VolumeKmsKeyId)
    assert request["ResourceConfig"]["VolumeKmsKeyId"] == "alias/genai"
    assert "VolumeKmsKeyId" not in _request(sdk, "spot")["ResourceConfig"]
    assert request["VpcConfig"] == {
        "SecurityGroupIds": ["sg-0123456789abcdef0"],
        "Subnets": ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"],
    }
    assert request["EnableNetworkIsolation"] is True and request["EnableInterContainerTrafficEncryption"] is True


@needs_sdk
def test_every_request_is_valid_for_botocores_create_training_job_shape(sdk):
    import botocore.session
    from botocore.validate import ParamValidator

    shape = botocore.session.get_session().get_service_model("sagemaker").operation_model("CreateTrainingJob")
    requests = [c["params"] for c in sdk["calls"] if c["operation"] == "CreateTrainingJob"]
    assert len(requests) == len(SCENARIOS)
    for request in requests:
        report = ParamValidator().validate(request, shape.input_shape)
        assert not report.has_errors(), report.generate_report()


@needs_sdk
def test_only_sagemaker_and_its_logs_were_called_and_nothing_left_the_machine(sdk):
    """No IAM role simulation, no STS, no default bucket, no telemetry request (which the user's SDK defaults
    file asks for): the flags are the whole job."""
    operations = {(c["service"], c["operation"]) for c in sdk["calls"]}
    assert operations == {
        ("sagemaker", "CreateTrainingJob"),
        ("sagemaker", "DescribeTrainingJob"),
        ("logs", "DescribeLogStreams"),
        ("logs", "GetLogEvents"),
    }
    assert sdk["attempts"] == []


@needs_sdk
def test_a_started_job_is_reported(sdk):
    result = sdk["results"]["spot"]
    assert result["code"] == 0, result
    report = json.loads(result["stdout"])
    assert report["TrainingJobArn"] == ARN and report["TrainingJobStatus"] == "InProgress"
    assert report["Checkpoints"] == "s3://my-artifacts/checkpoints/run-1/"


@needs_sdk
def test_wait_streams_the_logs_and_exits_with_the_jobs_outcome(sdk):
    completed, failed = sdk["results"]["wait-completed"], sdk["results"]["wait-failed"]
    assert completed["code"] == 0, completed
    report = json.loads(completed["stdout"])
    assert report["TrainingJobStatus"] == "Completed"
    assert report["ModelArtifacts"] == "s3://my-artifacts/jobs/sft-1/output/model.tar.gz"
    assert "train_loss=1.23" in completed["stderr"]  # the job's CloudWatch lines, which the SDK logs
    assert failed["code"] == 1, failed
    report = json.loads(failed["stdout"])
    assert report["TrainingJobStatus"] == "Failed"
    assert report["FailureReason"] == "AlgorithmError: lora.rr: unknown key"


@needs_sdk
def test_a_refused_request_exits_2_with_sagemakers_reason(sdk):
    result = sdk["results"]["refused"]
    assert result["code"] == 2, result
    assert "SageMaker refused the request: ResourceLimitExceeded: ml.trn1.32xlarge: 0 left" in result["stderr"]


@needs_sdk
def test_genai_train_launch_reads_the_job_back(sdk, tmp_path):
    """The request laid out as SageMaker gives it to the container: channels, checkpoints and hyperparameters
    become the TrainConfig that `genai train launch` runs."""
    from genai_runtime.train.config import load_config
    from tests.runtime.test_sagemaker_contract import Job

    request = _request(sdk, "spot")
    data, model = tmp_path / "train.jsonl", tmp_path / "llama"
    data.write_text("{}\n")
    model.mkdir()
    job = Job(tmp_path / "job", {"Parameters": request}, request["HyperParameters"], {"train": data, "model": model})
    assert job.command == ["genai", "train", "launch"]
    config = load_config(environ=job.environ)
    assert config.data.train == job.root / "input" / "data" / "train"
    assert config.model == job.root / "input" / "data" / "model"
    assert config.checkpoint_dir == job.root / "checkpoints"
    assert config.output_dir == job.root / "model"
    assert (config.mode, config.lora.r, config.training.max_steps, config.merge_adapter) == ("qlora", 8, 50, True)
