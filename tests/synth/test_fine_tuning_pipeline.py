"""FineTuningPipeline: the workflow's states, the job definitions, IAM scope, alarms and bad props."""

from __future__ import annotations

import json

import pytest
from aws_cdk import App, Duration, Environment, Stack
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template

from genai_cdk import FineTuningPipeline, QualityGate, TrainingJobSettings

IMAGE = "111122223333.dkr.ecr.us-east-1.amazonaws.com/genai-train:1.0"


def _stack():
    stack = Stack(App(), "Pipeline", env=Environment(account="123456789012", region="us-east-1"))
    return (
        stack,
        s3.Bucket.from_bucket_name(stack, "Models", "my-models"),
        s3.Bucket.from_bucket_name(stack, "Data", "my-data"),
    )


@pytest.fixture(scope="module")
def built():
    stack, models, data = _stack()
    pipeline = FineTuningPipeline(
        stack,
        "Sft",
        training_image=IMAGE,
        base_model_bucket=models,
        base_model_prefix="llama2-7b/",
        data_bucket=data,
        hyperparameters={"mode": "lora", "lora__r": "16"},
        quality_gate=QualityGate("rougeL", 0.25),
        training=TrainingJobSettings("ml.trn1.32xlarge", 2),
    )
    template = Template.from_stack(stack)
    machine = next(iter(template.find_resources("AWS::StepFunctions::StateMachine").values()))
    definition = json.loads(
        "".join(
            part if isinstance(part, str) else "ARN"
            for part in machine["Properties"]["DefinitionString"]["Fn::Join"][1]
        )
    )
    return pipeline, template, definition


def test_train_evaluate_gate_register(built):
    _, _, definition = built
    states = definition["States"]
    assert definition["StartAt"] == "Hyperparameters"
    assert {c["Next"] for c in states["Hyperparameters"]["Choices"]} == {"MergeHyperparameters"}
    assert states["Hyperparameters"]["Default"] == "DefaultHyperparameters"
    assert states["MergeHyperparameters"]["Next"] == states["DefaultHyperparameters"]["Next"] == "Train"
    assert states["Train"]["Next"] == "Evaluate" and states["Evaluate"]["Next"] == "QualityGate"
    gate = states["QualityGate"]
    assert gate["Choices"][0] == {
        "Variable": "$.evaluation.Score[0]",
        "NumericGreaterThanEquals": 0.25,
        "Next": "Register",
    }
    assert gate["Default"] == "BelowQualityGate" and states["BelowQualityGate"]["Type"] == "Fail"
    assert states["Register"]["Next"] == "Registered"


def test_training_job_uses_spot_with_checkpoints_on_trainium(built):
    _, _, definition = built
    job = definition["States"]["Train"]["Parameters"]
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 86400, "MaxWaitTimeInSeconds": 129600}
    assert job["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"
    assert job["ResourceConfig"]["InstanceType"] == "ml.trn1.32xlarge" and job["ResourceConfig"]["InstanceCount"] == 2
    assert job["HyperParameters.$"] == "$.job.hyperparameters"
    states = definition["States"]
    assert states["DefaultHyperparameters"]["Result"] == {
        "hyperparameters": {"evaluate": "false", "mode": "lora", "lora__r": "16"}
    }
    merge = states["MergeHyperparameters"]["Parameters"]["hyperparameters.$"]
    assert merge == (
        "States.JsonMerge(States.StringToJson('"
        + '\\{"evaluate":"false","lora__r":"16","mode":"lora"\\}'
        + "'), $.hyperparameters, false)"
    )
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"] for c in job["InputDataConfig"]}
    assert channels["train"]["S3Uri.$"] == "$.dataset"
    assert channels["model"]["S3Uri"] == "s3://my-models/llama2-7b/"
    assert job["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    assert job["AlgorithmSpecification"]["ContainerEntrypoint"] == ["genai", "train", "launch"]
    assert job["EnableInterContainerTrafficEncryption"] is True
    # trn1 has local NVMe: CreateTrainingJob refuses a VolumeKmsKeyId there; the m5 evaluation job gets one.
    assert "VolumeKmsKeyId" not in job["ResourceConfig"]
    assert "VolumeKmsKeyId" in definition["States"]["Evaluate"]["Parameters"]["ResourceConfig"]


def test_evaluation_job_reports_rouge_as_metrics(built):
    _, _, definition = built
    evaluate = definition["States"]["Evaluate"]
    spec = evaluate["Parameters"]["AlgorithmSpecification"]
    assert spec["ContainerEntrypoint"] == ["genai", "train", "evaluate"]
    assert {m["Name"] for m in spec["MetricDefinitions"]} == {"rouge1", "rouge2", "rougeL"}
    assert evaluate["ResultSelector"]["Score.$"] == "$.FinalMetricDataList[?(@.MetricName == 'rougeL')].Value"


def test_registration_carries_lineage_metadata(built):
    pipeline, template, definition = built
    register = definition["States"]["Register"]["Parameters"]
    assert register["ModelApprovalStatus"] == "PendingManualApproval"
    metadata = register["CustomerMetadataProperties"]
    assert metadata["base_model"] == "s3://my-models/llama2-7b/"
    assert metadata["dataset.$"] == "$.dataset" and "rougeL.$" in metadata and "training_job.$" in metadata
    assert metadata["artifacts.$"] == "$.train.ModelArtifacts"
    template.has_resource_properties(
        "AWS::SageMaker::ModelPackageGroup", {"ModelPackageGroupName": register["ModelPackageGroupName"]}
    )


def test_failures_notify_and_raise_an_alarm(built):
    _, template, definition = built
    states = definition["States"]
    for name in ("Train", "Evaluate", "Register"):
        assert states[name]["Catch"][0]["Next"] == "NotifyFailure"
    assert states["NotifyFailure"]["Next"] == "Failed"
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "ExecutionsFailed",
            "Namespace": "AWS/States",
            "Threshold": 1,
            "AlarmActions": [Match.any_value()],
        },
    )
    template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {"TracingConfiguration": {"Enabled": True}, "LoggingConfiguration": Match.object_like({"Level": "ALL"})},
    )


def test_iam_is_scoped(built):
    _, template, _ = built
    for role in template.find_resources("AWS::IAM::Role").values():
        assert "ManagedPolicyArns" not in role["Properties"]
    statements = [
        s
        for p in template.find_resources("AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    create = next(s for s in statements if "sagemaker:CreateTrainingJob" in s["Action"])
    resources = [r["Fn::Join"][1][-1] for r in create["Resource"]]
    assert [r.rsplit(":", 1)[1] for r in resources] == ["training-job/sft-*", "training-job/eval-*"]
    passrole = next(s for s in statements if s["Action"] == "iam:PassRole")
    assert passrole["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"training_image": "docker.io/me/train:1"}, "training_image=.*SageMaker pulls from ECR only"),
        ({"base_model_prefix": "/"}, "base_model_prefix='/' is invalid"),
        ({"hyperparameters": {"lora__r": 16}}, "keys and values are strings"),
        ({"evaluation_instance_type": "ml.x1.big"}, "evaluation_instance_type='ml.x1.big' is invalid"),
    ],
)
def test_bad_props(kwargs, message):
    stack, models, data = _stack()
    props = {
        "training_image": IMAGE,
        "base_model_bucket": models,
        "base_model_prefix": "llama",
        "data_bucket": data,
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        FineTuningPipeline(stack, "Sft", **props)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: QualityGate("bleu"), "quality_gate.metric='bleu' is invalid"),
        (lambda: QualityGate(threshold=1.5), "quality_gate.threshold=1.5"),
        (lambda: TrainingJobSettings("ml.inf2.xlarge"), "training.instance_type='ml.inf2.xlarge'"),
        (
            lambda: TrainingJobSettings(max_runtime=Duration.hours(10), max_wait=Duration.hours(5)),
            "managed spot needs max_wait >= max_runtime",
        ),
        (lambda: TrainingJobSettings(instance_count=0), "training.instance_count=0"),
    ],
)
def test_bad_settings(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def _minimal(**kwargs):
    stack, models, data = _stack()
    settings = {"training_image": IMAGE, "base_model_bucket": models, "base_model_prefix": "m/", "data_bucket": data}
    FineTuningPipeline(stack, "Sft", **{**settings, **kwargs})
    return stack


@pytest.mark.parametrize(
    ("hyperparameters", "message"),
    [
        ({"mdoe": "lora"}, r"mdoe: unknown key"),
        ({"lora__rr": "4"}, r"lora.rr: unknown key"),
        ({"lora__r": "sixteen"}, r"lora.r: Input should be a valid integer"),
        ({"mode": "dpo"}, r"mode: Input should be"),
    ],
)
def test_hyperparameter_typos_fail_at_synth(hyperparameters, message):
    with pytest.raises(ValueError, match=message):
        _minimal(hyperparameters=hyperparameters)


def test_a_tokenized_image_uri_is_refused_and_a_repository_works():
    from aws_cdk import aws_ecr as ecr

    from genai_cdk import TrainingImage

    stack, models, data = _stack()
    repository = ecr.Repository(stack, "Repo")
    with pytest.raises(ValueError, match=r"TrainingImage.from_ecr_repository"):
        FineTuningPipeline(
            stack,
            "Bad",
            training_image=repository.repository_uri_for_tag("v1"),
            base_model_bucket=models,
            base_model_prefix="m/",
            data_bucket=data,
        )
    FineTuningPipeline(
        stack,
        "Good",
        training_image=TrainingImage.from_ecr_repository(repository, "v1"),
        base_model_bucket=models,
        base_model_prefix="m/",
        data_bucket=data,
    )
    template = Template.from_stack(stack)
    statements = [
        s
        for p in template.find_resources("AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    pull = next(s for s in statements if "ecr:BatchGetImage" in s["Action"])
    assert pull["Resource"] == {"Fn::GetAtt": [next(iter(template.find_resources("AWS::ECR::Repository"))), "Arn"]}
    assert "ecr:ecr:" not in json.dumps(template.to_json())
