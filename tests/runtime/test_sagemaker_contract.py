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


# --- Alignment methods: the Evaluate step and the gate read the metrics.json `genai align METHOD` writes -------
#
# The contract agreed with the runtime: each `genai align METHOD` writes /opt/ml/model/metrics.json with these keys.
# The pipeline's Train job uploads /opt/ml/model uncompressed (OutputDataConfig.CompressionType NONE: SageMaker puts
# each file under S3OutputPath/<job name>/output/model/), Evaluate reads that object with S3 GetObject, parses the
# Body with States.StringToJson into $.evaluation.metrics, and the QualityGate (and ToxicityGate) Choice rules and the
# Register step's metadata read paths there. The replay below runs exactly those steps on sample files.

ALIGNED_METRICS = {
    "reward": {"method": "reward", "pairwise_accuracy": 0.72, "pairwise_accuracy_before": 0.5, "pairs": 512},
    "dpo": {"method": "dpo", "preference_accuracy": 0.81, "preference_accuracy_before": 0.49, "reward_margin": 0.37},
    "rl": {
        "method": "rl",
        "algorithm": "ppo",
        "beta": 0.1,
        "reward_before": -0.12,
        "reward_after": 0.31,
        "reward_gain": 0.43,
        "kl_final": 2.5,
        "toxicity_before": 0.081,
        "toxicity_after": 0.064,
        "toxicity_improvement": 0.21,
    },
}
EXECUTION = "run-2026-12-01"
# CreateModelPackage's CustomerMetadataProperties values, botocore: [\p{L}\p{Z}\p{N}_.:\/=+\-@]* of 1-256 (ASCII here)
METADATA_VALUE = re.compile(r"[a-zA-Z0-9 _.:/=+\-@]{1,256}")


def _aligned_definition(method: str, **kwargs) -> dict:
    from genai_cdk.fine_tuning_pipeline import RewardSource

    props = {"method": method, "base_model_s3_uri": "s3://sft-out/jobs/sft-run/output/model.tar.gz", **kwargs}
    if method == "rl":
        props.setdefault("reward", RewardSource.classifier("s3://my-models/roberta-hate/", "nothate"))
    return _definition(**props)


@pytest.fixture(scope="module")
def aligned_definitions():
    return {method: _aligned_definition(method) for method in ALIGNED_METRICS}


def _get(document, path: str):
    """A Step Functions reference path ($.a.b[0]) on ``document``; KeyError where it does not exist."""
    assert path.startswith("$"), path
    node = document
    for name, index in re.findall(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]", path[1:]):
        if name:
            if not isinstance(node, dict) or name not in node:
                raise KeyError(path)
            node = node[name]
        else:
            node = node[int(index)]
    return node


def _intrinsic(expression: str, document, execution: str = EXECUTION):
    """The intrinsic functions the pipeline uses: States.Format (its {} and $/$$ arguments) and States.StringToJson."""
    if expression.startswith("States.StringToJson("):
        return json.loads(_get(document, expression[len("States.StringToJson(") : -1]))
    match = re.fullmatch(r"States\.Format\('((?:[^'\\]|\\.)*)'((?:, *[^,]+)*)\)", expression)
    assert match, expression
    template = match.group(1)
    arguments = [a.strip() for a in match.group(2).split(",") if a.strip()]
    values = [execution if a == "$$.Execution.Name" else _get(document, a) for a in arguments]
    pieces = template.split("{}")
    assert len(pieces) == len(values) + 1, expression
    out = pieces[0]
    for value, piece in zip(values, pieces[1:], strict=True):
        out += (json.dumps(value) if not isinstance(value, str) else value) + piece
    return out


def _rule(rule: dict, document) -> bool:
    """One Choice rule as Step Functions evaluates it; a comparison on a missing path is a runtime error."""
    if "And" in rule:
        return all(_rule(r, document) for r in rule["And"])
    if "Or" in rule:
        return any(_rule(r, document) for r in rule["Or"])
    if "Not" in rule:
        return not _rule(rule["Not"], document)
    path = rule["Variable"]
    if "IsPresent" in rule:
        try:
            _get(document, path)
        except KeyError:
            return not rule["IsPresent"]
        return rule["IsPresent"]
    value = _get(document, path)  # KeyError: States.Runtime, the execution fails
    if "IsNull" in rule:
        return (value is None) == rule["IsNull"]
    if "IsNumeric" in rule:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    for operator, test in (
        ("NumericGreaterThanEquals", lambda a, b: a >= b),
        ("NumericGreaterThan", lambda a, b: a > b),
        ("NumericLessThan", lambda a, b: a < b),
    ):
        if operator in rule:
            return numeric and test(value, rule[operator])
    raise AssertionError(f"rule not replayed: {rule}")


def _run_gate(definition: dict, document) -> str:
    """From QualityGate through every Choice state, to the first state that is not one."""
    states, name = definition["States"], "QualityGate"
    while states[name]["Type"] == "Choice":
        state = states[name]
        name = next((c["Next"] for c in state["Choices"] if _rule(c, document)), state["Default"])
    return name


def _upload_uncompressed(train_state: dict, model_dir: Path, execution: str = EXECUTION) -> dict[str, str]:
    """What SageMaker writes to S3 for a job with CompressionType NONE: key -> text, per file of /opt/ml/model."""
    parameters = train_state["Parameters"]
    assert parameters["OutputDataConfig"]["CompressionType"] == "NONE"
    output_path = parameters["OutputDataConfig"]["S3OutputPath"]  # s3://BUCKET/jobs/
    prefix = output_path.split("/", 3)[3]
    job_name = _intrinsic(parameters["TrainingJobName.$"], {}, execution)
    return {
        f"{prefix}{job_name}/output/model/{path.relative_to(model_dir).as_posix()}": path.read_bytes().decode(
            "utf-8", "replace"
        )
        for path in model_dir.rglob("*")
        if path.is_file()
    }


def _evaluate(definition: dict, objects: dict[str, str], execution: str = EXECUTION) -> dict:
    """The Evaluate state: S3 GetObject of its Key, the Body as a string, its ResultSelector, at its ResultPath."""
    state = definition["States"]["Evaluate"]
    assert state["Resource"].endswith(":states:::aws-sdk:s3:getObject")
    key = _intrinsic(state["Parameters"]["Key.$"], {}, execution)
    assert key in objects, f"Evaluate reads {key}; the job wrote {sorted(objects)}"
    response = {"Body": objects[key], "ContentType": "application/json"}
    selected = {name[:-2]: _intrinsic(expression, response) for name, expression in state["ResultSelector"].items()}
    assert state["ResultPath"] == "$.evaluation"
    return {
        "dataset": "s3://my-data/hh-rlhf/",
        "train": {"TrainingJobArn": "arn:job", "ModelArtifacts": "s3://a/"},
        "evaluation": selected,
    }


@pytest.mark.parametrize("method", sorted(ALIGNED_METRICS))
def test_alignment_gate_reads_the_metrics_json_the_job_writes(aligned_definitions, method, tmp_path):
    definition = aligned_definitions[method]
    train = definition["States"]["Train"]
    assert train["Parameters"]["AlgorithmSpecification"]["ContainerEntrypoint"] == ["genai", "align", method]
    model_dir = tmp_path / "opt-ml" / "model"  # what the container leaves in /opt/ml/model
    model_dir.mkdir(parents=True)
    (model_dir / "metrics.json").write_text(json.dumps(ALIGNED_METRICS[method]))
    (model_dir / "model.safetensors").write_text("weights")
    document = _evaluate(definition, _upload_uncompressed(train, model_dir))
    assert document["evaluation"]["metrics"] == ALIGNED_METRICS[method]
    assert _run_gate(definition, document) == "Register"

    # Every metric the Register step records resolves on the file, as a value CreateModelPackage accepts.
    register = definition["States"]["Register"]["Parameters"]
    for key, expression in register["CustomerMetadataProperties"].items():
        value = (
            _intrinsic(expression, document)
            if key.endswith(".$") and "States." in expression
            else (_get(document, expression) if key.endswith(".$") else expression)
        )
        assert isinstance(value, str) and METADATA_VALUE.fullmatch(value), (key, value)
    # and the model package's ModelQuality statistics point at the same object Evaluate read
    statistics = register["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri.$"]
    evaluate_key = _intrinsic(definition["States"]["Evaluate"]["Parameters"]["Key.$"], {})
    assert _intrinsic(statistics, {}).endswith("/" + evaluate_key)


@pytest.mark.parametrize(
    ("method", "change", "outcome"),
    [
        ("reward", {"pairwise_accuracy": 0.59}, "BelowQualityGate"),
        ("reward", {"pairwise_accuracy": 0.6}, "Register"),
        ("dpo", {"preference_accuracy": 0.4}, "BelowQualityGate"),
        ("rl", {"reward_gain": 0.0}, "BelowQualityGate"),  # strictly greater: no gain, no registration
        ("rl", {"toxicity_improvement": -0.05}, "BelowQualityGate"),
        ("rl", {"toxicity_improvement": None}, "Register"),  # toxicity not measured: the reward gain decides
        ("rl", {"toxicity_improvement": ...}, "Register"),  # ... = key absent
    ],
)
def test_alignment_gate_outcomes(aligned_definitions, method, change, outcome):
    metrics = {**ALIGNED_METRICS[method], **{k: v for k, v in change.items() if v is not ...}}
    for key in [k for k, v in change.items() if v is ...]:
        del metrics[key]
    assert _run_gate(aligned_definitions[method], {"evaluation": {"metrics": metrics}}) == outcome


def test_a_metrics_json_without_the_gate_metric_fails_the_execution(aligned_definitions):
    metrics = {k: v for k, v in ALIGNED_METRICS["dpo"].items() if k != "preference_accuracy"}
    with pytest.raises(KeyError, match="preference_accuracy"):  # States.Runtime: no silent registration
        _run_gate(aligned_definitions["dpo"], {"evaluation": {"metrics": metrics}})


def test_the_alignment_states_are_valid_sagemaker_requests(aligned_definitions):
    """The alignment Train job and the Register call, resolved as Step Functions would, against botocore's shapes."""
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model("sagemaker")
    document = {
        "dataset": "s3://my-data/hh-rlhf/",
        "job": {"hyperparameters": {"beta": "0.1"}},
        "base": {"ModelDataUrl": "s3://sft-out/model.tar.gz"},
        "train": {
            "TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/x",
            "ModelArtifacts": "s3://a/b/",
        },
        "evaluation": {"metrics": ALIGNED_METRICS["rl"] | ALIGNED_METRICS["dpo"] | ALIGNED_METRICS["reward"]},
    }

    def resolve(node):
        if isinstance(node, list):
            return [resolve(item) for item in node]
        if not isinstance(node, dict):
            return node
        out = {}
        for key, value in node.items():
            if key.endswith(".$"):
                out[key[:-2]] = _intrinsic(value, document) if value.startswith("States.") else _get(document, value)
            else:
                out[key] = resolve(value)
        return out

    for method, definition in aligned_definitions.items():
        for state, operation in (("Train", "CreateTrainingJob"), ("Register", "CreateModelPackage")):
            parameters = resolve(definition["States"][state]["Parameters"])
            parameters.pop("RoleArn", None)
            if operation == "CreateTrainingJob":
                parameters["RoleArn"] = "arn:aws:iam::123456789012:role/training"
            parameters = json.loads(json.dumps(parameters).replace('"ARN"', '"arn:aws:kms:us-east-1:1:key/k"'))
            report = ParamValidator().validate(parameters, model.operation_model(operation).input_shape)
            assert not report.has_errors(), (method, state, report.generate_report())


ALIGN_PAIRS = Path(__file__).resolve().parents[1] / "data" / "align" / "pairs.jsonl"
ALIGN_FAST = {"training__max_steps": "20", "training__learning_rate": "3e-3", "training__logging_steps": "5"}


@pytest.mark.slow
@pytest.mark.parametrize("method", ["reward", "dpo"])
def test_genai_align_as_sagemaker_runs_it_feeds_the_gate(aligned_definitions, method, tiny_model, tmp_path):
    """The real `genai align reward|dpo` in the job's container layout (its channels, hyperparameters, /opt/ml/model),
    then SageMaker's uncompressed upload, Evaluate and the gate on the metrics.json it wrote."""
    if not ALIGN_PAIRS.is_file():
        pytest.skip("tests/data/align/pairs.jsonl (the align runtime's fixture) is not here")
    definition = aligned_definitions[method]
    train_state = definition["States"]["Train"]
    hyperparameters = {**_hyperparameters(definition), **ALIGN_FAST}
    channels = {"train": ALIGN_PAIRS, "model": tiny_model, "base": tiny_model}
    job = Job(tmp_path / "job", train_state, hyperparameters, channels)
    assert job.command == ["genai", "align", method]
    done = job.run(timeout=600)
    assert done.returncode == 0, (job.failure, done.stdout[-3000:], done.stderr[-3000:])
    written = json.loads((job.root / "model" / "metrics.json").read_text())
    assert written["method"] == method
    document = _evaluate(definition, _upload_uncompressed(train_state, job.root / "model"))
    assert document["evaluation"]["metrics"] == written
    metric = {"reward": "pairwise_accuracy", "dpo": "preference_accuracy"}[method]
    threshold = definition["States"]["QualityGate"]["Choices"][0]["NumericGreaterThanEquals"]
    expected = "Register" if written[metric] >= threshold else "BelowQualityGate"
    assert _run_gate(definition, document) == expected


ALIGN_TOXICITY = Path(__file__).resolve().parents[1] / "data" / "align" / "toxicity.jsonl"


@pytest.mark.slow
def test_genai_align_rl_as_sagemaker_runs_it_feeds_the_gate(tmp_path):
    """The real `genai align rl` in the job's layout: the policy in "model", prompts in "train", the local toxicity
    classifier in "classifier"; then the upload, Evaluate and the reward and toxicity gates on its metrics.json."""
    if not ALIGN_TOXICITY.is_file():
        pytest.skip("tests/data/align/toxicity.jsonl (the align runtime's fixture) is not here")
    from genai_cdk.fine_tuning_pipeline import RewardSource
    from genai_runtime.align.toxicity import PROMPTS, read_labelled, train_classifier, write_prompts, write_tiny_policy

    rows = read_labelled(ALIGN_TOXICITY)
    classifier = Path(train_classifier(rows, tmp_path / "classifier", seed=0).model_dir)
    policy = write_tiny_policy(tmp_path / "policy", rows, seed=0)
    prompts = write_prompts(tmp_path / "prompts.jsonl", PROMPTS)
    definition = _aligned_definition(
        "rl", reward=RewardSource.classifier("s3://my-models/toxicity-classifier/", label="not_toxic"), beta=0.05
    )
    train_state = definition["States"]["Train"]
    channels = {"train": prompts, "model": policy, "base": policy, "classifier": classifier}
    # max_steps: a short run once `genai align rl` reads the job's hyperparameters (today it reads only its channels,
    # so this run takes the CLI's default steps: about 2.5 minutes on 2 CPU cores)
    hyperparameters = {**_hyperparameters(definition), "max_steps": "2"}
    job = Job(tmp_path / "job", train_state, hyperparameters, channels)
    assert job.command == ["genai", "align", "rl"]
    done = job.run(timeout=600)
    assert done.returncode == 0, (job.failure, done.stdout[-3000:], done.stderr[-3000:])
    written = json.loads((job.root / "model" / "metrics.json").read_text())
    assert written["method"] == "rl" and "toxicity_improvement" in written  # a classifier reward measures toxicity
    document = _evaluate(definition, _upload_uncompressed(train_state, job.root / "model"))
    assert document["evaluation"]["metrics"] == written
    passes = written["reward_gain"] > 0 and written["toxicity_improvement"] >= 0
    assert _run_gate(definition, document) == ("Register" if passes else "BelowQualityGate")
