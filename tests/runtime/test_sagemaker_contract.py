"""The pipeline's Train and Evaluate jobs, replayed as SageMaker runs a bring-your-own container.

The job definitions come from a synthesized ``FineTuningPipeline``. The container gets what SageMaker
gives it (developer guide, "How Amazon SageMaker Runs Your Training Image" / "Provides Training
Information"): ``input/config/{hyperparameters,inputdataconfig,resourceconfig,checkpointconfig}.json``,
``input/data/<channel>/``, ``model/``, ``output/failure``, and only ``TRAINING_JOB_NAME`` and
``TRAINING_JOB_ARN`` in the environment: no ``SM_*`` variable, since a custom entrypoint bypasses the
Training Toolkit that writes them. ``GENAI_SAGEMAKER_ROOT`` stands in for ``/opt/ml``; ``MASTER_PORT``
only keeps parallel test workers off each other's port.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

HYPERPARAMETERS = {
    "mode": "lora",
    "evaluate": "false",
    "training__max_steps": "40",
    "training__save_steps": "10",
    "training__logging_steps": "10",
    "training__save_total_limit": "2",
}


def _definition(**kwargs) -> dict:
    from aws_cdk import App, Environment, Stack
    from aws_cdk import aws_s3 as s3
    from aws_cdk.assertions import Template

    from genai_cdk import FineTuningPipeline, TrainingJobSettings

    stack = Stack(App(), "Pipeline", env=Environment(account="123456789012", region="us-east-1"))
    FineTuningPipeline(
        stack,
        "Sft",
        training_image="111122223333.dkr.ecr.us-east-1.amazonaws.com/genai-train:1.0",
        base_model_bucket=s3.Bucket.from_bucket_name(stack, "Models", "my-models"),
        base_model_prefix="tiny/",
        data_bucket=s3.Bucket.from_bucket_name(stack, "Data", "my-data"),
        training=TrainingJobSettings("ml.g5.2xlarge"),  # one GPU: one process, which CPU can stand in for
        **kwargs,
    )
    machine = next(iter(Template.from_stack(stack).find_resources("AWS::StepFunctions::StateMachine").values()))
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    return json.loads("".join(part if isinstance(part, str) else "ARN" for part in parts))


@pytest.fixture(scope="module")
def definition():
    return _definition(hyperparameters=HYPERPARAMETERS)


class Job:
    """One training job's container: the filesystem SageMaker lays out, and the entrypoint it runs."""

    def __init__(self, root: Path, state: dict, hyperparameters: dict[str, str], channels: dict[str, Path]) -> None:
        self.root, self.parameters = root, state["Parameters"]
        config = root / "input" / "config"
        config.mkdir(parents=True)
        names = [channel["ChannelName"] for channel in self.parameters["InputDataConfig"]]
        assert sorted(names) == sorted(channels), "the test must stage exactly the job's channels"
        for name, source in channels.items():
            target = root / "input" / "data" / name
            if source.is_dir():
                shutil.copytree(source, target)
            else:
                target.mkdir(parents=True)
                shutil.copy(source, target / source.name)
        (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
        (config / "inputdataconfig.json").write_text(
            json.dumps(
                {
                    name: {
                        "TrainingInputMode": "File",
                        "S3DistributionType": "FullyReplicated",
                        "RecordWrapperType": "None",
                    }
                    for name in names
                }
            )
        )
        resources = self.parameters["ResourceConfig"]
        (config / "resourceconfig.json").write_text(
            json.dumps(
                {
                    "current_host": "algo-1",
                    "current_instance_type": resources["InstanceType"],
                    "current_group_name": "homogeneousCluster",
                    "hosts": ["algo-1"],
                    "network_interface_name": "eth0",
                    "instance_groups": [
                        {
                            "instance_group_name": "homogeneousCluster",
                            "hosts": ["algo-1"],
                            "instance_type": resources["InstanceType"],
                        }
                    ],
                }
            )
        )
        checkpoint = self.parameters.get("CheckpointConfig")
        if checkpoint:  # LocalPath under /opt/ml moves with the root
            local = str(root / Path(checkpoint["LocalPath"]).relative_to("/opt/ml"))
            (config / "checkpointconfig.json").write_text(json.dumps({"LocalPath": local}))
        (root / "model").mkdir()
        (root / "output").mkdir()
        spec = self.parameters["AlgorithmSpecification"]
        self.command = [*spec["ContainerEntrypoint"], *spec.get("ContainerArguments", [])]
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.environ = {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin",
            "HOME": os.environ.get("HOME", "/root"),
            "TRAINING_JOB_NAME": "sft-replay",
            "TRAINING_JOB_ARN": "arn:aws:sagemaker:us-east-1:123456789012:training-job/sft-replay",
            "GENAI_SAGEMAKER_ROOT": str(root),
            "MASTER_PORT": str(port),
            "HF_HUB_OFFLINE": "1",
        }
        assert not any(key.startswith("SM_") for key in self.environ)

    def start(self) -> subprocess.Popen:
        return subprocess.Popen(
            self.command,
            env=self.environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def run(self, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(self.command, env=self.environ, capture_output=True, text=True, timeout=timeout)

    @property
    def failure(self) -> str | None:
        path = self.root / "output" / "failure"
        return path.read_text() if path.exists() else None


def _hyperparameters(definition) -> dict[str, str]:
    """What the job gets from an execution without overrides (the DefaultHyperparameters state)."""
    states = definition["States"]
    assert states["Train"]["Parameters"]["HyperParameters.$"] == "$.job.hyperparameters"
    return states["DefaultHyperparameters"]["Result"]["hyperparameters"]


@pytest.mark.slow
def test_train_then_evaluate_as_sagemaker_runs_them(definition, tiny_model, dialogues, tmp_path):
    train_state = definition["States"]["Train"]
    hyperparameters = _hyperparameters(definition)
    assert all(isinstance(value, str) for value in hyperparameters.values())
    train = Job(tmp_path / "train", train_state, hyperparameters, {"train": dialogues, "model": tiny_model})
    assert train.command == ["genai", "train", "launch"]

    first = train.start()  # killed at its second checkpoint, as a spot interruption would
    checkpoints = tmp_path / "train" / "checkpoints"
    deadline = time.monotonic() + 300
    while not list(checkpoints.glob("checkpoint-20/trainer_state.json")):
        assert first.poll() is None, f"training ended before it could be killed:\n{first.stdout.read()[-3000:]}"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(30)
    assert not (train.root / "model" / "train_metrics.json").exists()

    second = train.run()
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "--nproc_per_node=1" in second.stdout  # ml.g5.2xlarge: one GPU, from the instance facts
    metrics = json.loads((train.root / "model" / "train_metrics.json").read_text())
    assert metrics["global_step"] == 40
    assert int(metrics["resumed_from"].rsplit("-", 1)[1]) >= 20
    assert (train.root / "model" / "model" / "adapter_config.json").is_file()
    assert train.failure is None

    # SageMaker uploads /opt/ml/model as model.tar.gz; Evaluate's "trained" channel holds that object.
    tarball = tmp_path / "model.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        for path in sorted((train.root / "model").iterdir()):
            archive.add(path, arcname=path.name)
    evaluate_state = definition["States"]["Evaluate"]
    evaluate = Job(tmp_path / "evaluate", evaluate_state, {}, {"model": tiny_model, "trained": tarball})
    assert evaluate.command == ["genai", "train", "evaluate"]
    done = evaluate.run()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for metric in evaluate_state["Parameters"]["AlgorithmSpecification"]["MetricDefinitions"]:
        assert re.search(metric["Regex"], done.stdout, re.MULTILINE), metric  # what SageMaker scrapes
    assert (evaluate.root / "model" / "eval.json").is_file()


def test_a_bad_hyperparameter_fails_the_job_with_its_reason(definition, tiny_model, dialogues, tmp_path):
    job = Job(
        tmp_path / "job",
        definition["States"]["Train"],
        {**_hyperparameters(definition), "lora__rr": "4"},
        {"train": dialogues, "model": tiny_model},
    )
    done = job.run(timeout=120)
    assert done.returncode == 2
    assert "lora.rr: unknown key" in job.failure  # what SageMaker shows as the job's FailureReason


def test_the_train_state_is_a_valid_create_training_job_request(definition):
    """Every parameter the state sets, resolved as Step Functions would, against botocore's own shape."""
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model("sagemaker")
    shape = model.operation_model("CreateTrainingJob").input_shape
    for state_name, hyperparameters in (("Train", _hyperparameters(definition)), ("Evaluate", None)):
        parameters = _resolve(definition["States"][state_name]["Parameters"], hyperparameters)
        parameters["RoleArn"] = "arn:aws:iam::123456789012:role/training"
        report = ParamValidator().validate(parameters, shape)
        assert not report.has_errors(), report.generate_report()


def _resolve(node, hyperparameters):
    """Step Functions' ``.$`` paths replaced by what an execution gives them."""
    if isinstance(node, list):
        return [_resolve(item, hyperparameters) for item in node]
    if not isinstance(node, dict):
        return "ARN" if node == "ARN" else node
    resolved = {}
    for key, value in node.items():
        if key.endswith(".$"):
            name = key[:-2]
            resolved[name] = {
                "HyperParameters": hyperparameters,
                "TrainingJobName": "sft-execution-1",
                "S3Uri": "s3://my-data/samsum/train.jsonl",
            }[name]
        else:
            resolved[key] = _resolve(value, hyperparameters)
    return resolved
