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


# --- Alignment methods (book chapter 7): reward, dpo, rl on top of an SFT model -------------------------------

SFT_PACKAGE = "arn:aws:sagemaker:us-east-1:123456789012:model-package/sft-models/3"
REWARD_PACKAGE = "arn:aws:sagemaker:us-east-1:123456789012:model-package/reward-models/2"


def _definition_of(body: dict) -> dict:
    machines = [r for r in body["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"]
    parts = machines[0]["Properties"]["DefinitionString"]["Fn::Join"][1]
    return json.loads("".join(part if isinstance(part, str) else "ARN" for part in parts))


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    """One app, one synth with cdk-nag attached, a stack per alignment variant: {name: (template body, definition)}."""
    from aws_cdk import Validations
    from cdk_nag import AwsSolutionsChecks

    from genai_cdk.fine_tuning_pipeline import AlignmentGate, RewardSource

    out = tmp_path_factory.mktemp("aligned")
    app = App(outdir=str(out))
    env = Environment(account="123456789012", region="us-east-1")
    variants = {
        "reward": {"method": "reward", "base_model_s3_uri": "s3://sft-out/jobs/sft-run1/output/model.tar.gz"},
        "dpo": {
            "method": "dpo",
            "base_model_package_arn": SFT_PACKAGE,
            "beta": 0.1,
            "alignment_gate": AlignmentGate(min_accuracy=0.7),
            "hyperparameters": {"learning_rate": "5e-6"},
        },
        "rl": {
            "method": "rl",
            "base_model_s3_uri": "s3://sft-out/flan-t5-sft/",
            "reward": RewardSource.classifier("s3://my-models/roberta-hate-speech/", "nothate"),
            "beta": 0.2,
            "alignment_gate": AlignmentGate(min_reward_gain=0.05, min_toxicity_improvement=0.1),
        },
        "rl-package": {
            "method": "rl",
            "base_model_package_arn": SFT_PACKAGE,
            "reward": RewardSource.from_model_package(REWARD_PACKAGE),
        },
    }
    stacks = {}
    for name, props in variants.items():
        stack = Stack(app, f"Align-{name}", env=env)
        models = s3.Bucket.from_bucket_name(stack, "Models", "my-models")
        data = s3.Bucket.from_bucket_name(stack, "Data", "my-data")
        pipeline = FineTuningPipeline(
            stack,
            "Align",
            training_image=IMAGE,
            base_model_bucket=models,
            base_model_prefix="flan-t5/",
            data_bucket=data,
            training=TrainingJobSettings("ml.g5.2xlarge"),
            **props,
        )
        if "base_model_package_arn" in props:  # the SFT pipeline beside it lets the alignment job read its models
            sft = FineTuningPipeline(
                stack,
                "Sft",
                training_image=IMAGE,
                base_model_bucket=models,
                base_model_prefix="flan-t5/",
                data_bucket=data,
            )
            sft.grant_read_models(pipeline.training_role)
        stacks[name] = stack.artifact_id
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    assembly = app.synth()  # raises on an unacknowledged cdk-nag error
    result = {}
    for name, artifact_id in stacks.items():
        path = out / assembly.get_stack_by_name(artifact_id).template_file
        body = json.loads(path.read_text())
        result[name] = (path, body, _definition_of(body))
    return result


@pytest.mark.parametrize(
    ("name", "channels"),
    [
        ("reward", {"train", "model", "base"}),
        ("dpo", {"train", "model", "base"}),
        ("rl", {"train", "model", "base", "classifier"}),
        ("rl-package", {"train", "model", "base", "reward"}),
    ],
)
def test_alignment_job_runs_its_command_on_the_sft_model(aligned, name, channels):
    _, _, definition = aligned[name]
    method = name.split("-")[0]
    states = definition["States"]
    job = states["Train"]["Parameters"]
    assert job["AlgorithmSpecification"]["ContainerEntrypoint"] == ["genai", "align", method]
    assert job["TrainingJobName.$"] == f"States.Format('{method}-{{}}', $$.Execution.Name)"
    assert job["OutputDataConfig"]["CompressionType"] == "NONE"  # metrics.json readable on its own
    assert job["HyperParameters.$"] == "$.job.hyperparameters" and job["EnableManagedSpotTraining"] is True
    by_name = {c["ChannelName"]: c["DataSource"]["S3DataSource"] for c in job["InputDataConfig"]}
    assert set(by_name) == channels
    # the runtime's contract: "model" is the model to train (the SFT model), "train" its data
    assert by_name["train"]["S3Uri.$"] == "$.dataset" and by_name["base"]["S3Uri"] == "s3://my-models/flan-t5/"
    if name in ("dpo", "rl-package"):
        assert by_name["model"]["S3Uri.$"] == "$.base.ModelDataUrl"
        resolve = states["ResolveBaseModel"]
        assert resolve["Resource"].endswith(":states:::aws-sdk:sagemaker:describeModelPackage")
        assert resolve["Parameters"] == {"ModelPackageName": SFT_PACKAGE}
        assert resolve["ResultSelector"]["ModelDataUrl.$"] == "$.InferenceSpecification.Containers[0].ModelDataUrl"
        assert states["DefaultHyperparameters"]["Next"] in ("ResolveBaseModel", "ResolveRewardModel")
    else:
        assert by_name["model"]["S3Uri"].startswith("s3://sft-out/") and "ResolveBaseModel" not in states
        assert states["DefaultHyperparameters"]["Next"] == "Train"
    assert states["Train"]["Next"] == "Evaluate" and states["Evaluate"]["Next"] == "QualityGate"
    for state in (
        "Train",
        "Evaluate",
        "Register",
        *(s for s in ("ResolveBaseModel", "ResolveRewardModel") if s in states),
    ):
        assert states[state]["Catch"][0]["Next"] == "NotifyFailure"


def test_alignment_hyperparameters_carry_beta_and_the_reward_source(aligned):
    hp = {name: aligned[name][2]["States"]["DefaultHyperparameters"]["Result"]["hyperparameters"] for name in aligned}
    assert hp["reward"] == {}  # no SFT "evaluate" default: genai align has its own config
    assert hp["dpo"] == {"beta": "0.1", "learning_rate": "5e-6"}
    # `genai align rl --reward KIND:DIR[,label=L]`, DIR in the job's reward channel
    assert hp["rl"] == {"beta": "0.2", "reward": "classifier:/opt/ml/input/data/classifier,label=nothate"}
    assert hp["rl-package"] == {"reward": "reward-model:/opt/ml/input/data/reward/model"}
    rl = aligned["rl-package"][2]["States"]
    assert rl["ResolveBaseModel"]["Next"] == "ResolveRewardModel" and rl["ResolveRewardModel"]["Next"] == "Train"
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"] for c in rl["Train"]["Parameters"]["InputDataConfig"]}
    assert channels["reward"]["S3Uri.$"] == "$.reward.ModelDataUrl"
    assert rl["ResolveRewardModel"]["Parameters"] == {"ModelPackageName": REWARD_PACKAGE}
    # a reward package of a method="reward" pipeline is an uncompressed prefix; an SFT package a tarball
    assert rl["ResolveRewardModel"]["ResultSelector"]["ModelDataUrl.$"] == (
        "$.InferenceSpecification.Containers[0].ModelDataSource.S3DataSource.S3Uri"
    )


def test_evaluate_reads_the_jobs_metrics_json(aligned):
    for name, (_, _, definition) in aligned.items():
        method = name.split("-")[0]
        evaluate = definition["States"]["Evaluate"]
        assert evaluate["Resource"].endswith(":states:::aws-sdk:s3:getObject")
        assert evaluate["Parameters"]["Key.$"] == (
            f"States.Format('jobs/{method}-{{}}/output/model/metrics.json', $$.Execution.Name)"
        )
        assert evaluate["ResultSelector"] == {"metrics.$": "States.StringToJson($.Body)"}
        assert evaluate["ResultPath"] == "$.evaluation"


def test_each_method_gates_on_its_own_metric(aligned):
    def gate(name):
        states = aligned[name][2]["States"]
        return states, states["QualityGate"]["Choices"], states["QualityGate"]["Default"]

    states, choices, default = gate("reward")
    assert choices == [
        {"Variable": "$.evaluation.metrics.pairwise_accuracy", "NumericGreaterThanEquals": 0.6, "Next": "Register"}
    ]
    assert default == "BelowQualityGate" and "pairwise_accuracy below 0.6" in states["BelowQualityGate"]["Cause"]
    _, choices, _ = gate("dpo")
    assert choices == [
        {"Variable": "$.evaluation.metrics.preference_accuracy", "NumericGreaterThanEquals": 0.7, "Next": "Register"}
    ]
    states, choices, default = gate("rl")
    assert choices == [
        {"Variable": "$.evaluation.metrics.reward_gain", "NumericGreaterThan": 0.05, "Next": "ToxicityGate"}
    ]
    toxicity = "$.evaluation.metrics.toxicity_improvement"
    assert states["ToxicityGate"]["Choices"] == [
        {"Not": {"Variable": toxicity, "IsPresent": True}, "Next": "Register"},
        {"Variable": toxicity, "IsNull": True, "Next": "Register"},
        {"Variable": toxicity, "NumericGreaterThanEquals": 0.1, "Next": "Register"},
    ]
    assert states["ToxicityGate"]["Default"] == "BelowQualityGate"
    _, choices, _ = gate("rl-package")  # defaults: reward_gain > 0, toxicity_improvement >= 0
    assert choices[0]["NumericGreaterThan"] == 0


def test_registration_records_the_sft_model_it_started_from(aligned):
    def register(name):
        return aligned[name][2]["States"]["Register"]["Parameters"]

    reward = register("reward")
    metadata = reward["CustomerMetadataProperties"]
    assert metadata["method"] == "reward" and metadata["foundation_model"] == "s3://my-models/flan-t5/"
    assert metadata["base_model_artifacts"] == "s3://sft-out/jobs/sft-run1/output/model.tar.gz"
    assert metadata["pairwise_accuracy.$"] == "States.Format('{}', $.evaluation.metrics.pairwise_accuracy)"
    assert {"dataset.$", "training_job.$", "artifacts.$", "pairs.$", "pairwise_accuracy_before.$"} <= set(metadata)
    container = reward["InferenceSpecification"]["Containers"][0]
    assert "ModelDataUrl.$" not in container
    assert container["ModelDataSource"]["S3DataSource"]["S3DataType"] == "S3Prefix"
    assert container["ModelDataSource"]["S3DataSource"]["CompressionType"] == "None"
    assert container["ModelDataSource"]["S3DataSource"]["S3Uri.$"].endswith(
        "/jobs/reward-{}/output/model/', $$.Execution.Name)"
    )
    statistics = reward["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["ContentType"] == "application/json" and "metrics.json" in statistics["S3Uri.$"]

    dpo = register("dpo")["CustomerMetadataProperties"]
    assert dpo["base_model_package"] == SFT_PACKAGE and dpo["base_model_artifacts.$"] == "$.base.ModelDataUrl"
    assert dpo["beta"] == "0.1" and {"preference_accuracy.$", "reward_margin.$"} <= set(dpo)

    rl = register("rl")["CustomerMetadataProperties"]
    assert rl["reward_type"] == "classifier" and rl["reward_label"] == "nothate"
    assert rl["reward_source"] == "s3://my-models/roberta-hate-speech/" and rl["beta"] == "0.2"
    assert {"reward_before.$", "reward_after.$", "reward_gain.$", "kl_final.$"} <= set(rl)
    rl_package = register("rl-package")["CustomerMetadataProperties"]
    assert rl_package["reward_model_package"] == REWARD_PACKAGE
    assert rl_package["reward_source.$"] == "$.reward.ModelDataUrl"
    for name in aligned:  # CreateModelPackage: at most 50 properties
        assert len(register(name)["CustomerMetadataProperties"]) <= 50


def _statements(body):
    return [
        (logical, s)
        for logical, p in body["Resources"].items()
        if p["Type"] == "AWS::IAM::Policy"
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_alignment_iam_is_scoped(aligned):
    _, body, _ = aligned["dpo"]
    statements = [s for _, s in _statements(body)]
    create = [s for s in statements if "sagemaker:CreateTrainingJob" in s["Action"]]
    resources = [s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]] for s in create]
    tails = sorted([r["Fn::Join"][1][-1].rsplit(":", 1)[1] for r in rs] for rs in resources)
    assert tails == [["training-job/dpo-*"], ["training-job/sft-*", "training-job/eval-*"]]  # its own, the SFT's
    describe = next(s for s in statements if s["Action"] == "sagemaker:describeModelPackage")
    assert describe["Resource"] == SFT_PACKAGE
    read_metrics = next(s for s in statements if s["Action"] == "s3:GetObject" and "metrics.json" in json.dumps(s))
    assert json.dumps(read_metrics["Resource"]).endswith('"/jobs/dpo-*/output/model/metrics.json"]]}')
    # sft.grant_read_models(alignment role): the SFT artifacts under jobs/ only
    assert any(s["Action"] == "s3:GetObject" and json.dumps(s["Resource"]).endswith('"/jobs/*"]]}') for s in statements)
    for role in (r for r in body["Resources"].values() if r["Type"] == "AWS::IAM::Role"):
        assert "ManagedPolicyArns" not in role["Properties"]

    _, body, _ = aligned["rl"]
    statements = [s for _, s in _statements(body)]
    reads = {json.dumps(s["Resource"]) for s in statements if s["Action"] == "s3:GetObject"}
    assert any(r.endswith('":s3:::sft-out/flan-t5-sft/*"]]}') for r in reads)  # the SFT model's prefix only
    assert any(r.endswith('":s3:::my-models/roberta-hate-speech/*"]]}') for r in reads)  # the classifier's


def test_alignment_templates_pass_cfn_lint(aligned):
    from cdk_app.demo import lint_template

    for name, (path, _, _) in aligned.items():
        errors, warnings = lint_template(path)
        assert errors == [] and warnings == [], (name, errors, warnings)


def _align(**kwargs):
    stack, models, data = _stack()
    props = {
        "training_image": IMAGE,
        "base_model_bucket": models,
        "base_model_prefix": "m/",
        "data_bucket": data,
        "method": "dpo",
        "base_model_s3_uri": "s3://sft-out/model.tar.gz",
        **kwargs,
    }
    FineTuningPipeline(stack, "Align", **props)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "ppo"}, r"method='ppo' is invalid: choose one of sft, reward, dpo, rl"),
        ({"base_model_s3_uri": None}, r"base_model_package_arn=None is invalid: .*exactly one of"),
        ({"base_model_package_arn": SFT_PACKAGE}, r"exactly one of base_model_package_arn"),
        ({"base_model_s3_uri": None, "base_model_package_arn": "sft-models/3"}, r"model package version ARN"),
        ({"base_model_s3_uri": "https://x/y"}, r"base_model_s3_uri='https://x/y' is invalid: give a literal s3://"),
        ({"method": "rl"}, r"reward=None is invalid: method='rl' needs"),
        ({"reward": "s3://x/y"}, r"only method='rl' takes a reward source"),
        ({"method": "reward", "beta": 0.1}, r"beta=0.1 is invalid: a reward model has no KL coefficient"),
        ({"beta": -1.0}, r"beta=-1.0 is invalid: must be at least 0.0"),
        ({"beta": 0.1, "hyperparameters": {"beta": "0.2"}}, r"come from their own props"),
        ({"quality_gate": QualityGate()}, r"quality_gate=.*gates on preference_accuracy: pass alignment_gate"),
        ({"method": "sft"}, r"base_model_s3_uri=.*only an alignment method"),
    ],
)
def test_bad_alignment_props(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _align(**kwargs)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        ("AlignmentGate(min_accuracy=1.5)", r"alignment_gate.min_accuracy=1.5"),
        ("AlignmentGate(min_reward_gain='high')", r"alignment_gate.min_reward_gain='high'"),
        ("RewardSource.classifier('s3://m/roberta/', label='not hate!')", r"reward.label='not hate!'"),
        ("RewardSource.reward_model('roberta/')", r"reward.s3_uri='roberta/'"),
        ("RewardSource.from_model_package('arn:aws:s3:::x')", r"reward.model_package_arn="),
    ],
)
def test_bad_alignment_settings(make, message):
    from genai_cdk.fine_tuning_pipeline import AlignmentGate, RewardSource

    with pytest.raises(ValueError, match=message):
        eval(make, {"AlignmentGate": AlignmentGate, "RewardSource": RewardSource})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"method": "dpo"}, r"exactly one of base_model_package_version"),
        ({"method": "dpo", "base_model_package_version": 1, "base_model_s3_uri": "s3://b/m/"}, r"exactly one"),
        ({"method": "ppo", "base_model_package_version": 1}, r"method"),
        ({"method": "rl", "base_model_package_version": 1}, r"method='rl' needs what scores the policy"),
        ({"method": "reward", "base_model_package_version": 1, "beta": 0.1}, r"a reward model has no KL"),
        ({"method": "dpo", "base_model_package_version": 1, "min_accuracy": 2}, r"min_accuracy"),
        ({"method": "dpo", "base_model_package_version": 1, "gate": 0.5}, r"gate"),  # unknown key
        (
            {"method": "rl", "base_model_s3_uri": "s3://b/m/", "reward": {"kind": "classifier"}},
            r"a classifier needs s3_uri",
        ),
        ({"method": "dpo", "base_model_package_version": 1, "instance_type": "ml.x9.huge"}, r"instance_type"),
    ],
)
def test_alignment_config_is_checked_at_load_time(values, message):
    from pydantic import ValidationError

    from cdk_app.config import AlignmentConfig

    with pytest.raises((ValidationError, ValueError), match=message):
        AlignmentConfig(**values)


@pytest.mark.slow
def test_the_shipped_dev_app_aligns_with_dpo_beside_the_sft_pipeline(synthesized):
    body = synthesized.body("dev", "training")
    assert "AlignmentStateMachineArn" in body["Outputs"] and "FineTuningPipelineArn" in body["Outputs"]
    definitions = [
        _definition_of({"Resources": {"M": resource}})
        for resource in body["Resources"].values()
        if resource["Type"] == "AWS::StepFunctions::StateMachine"
    ]
    commands = sorted(
        d["States"]["Train"]["Parameters"]["AlgorithmSpecification"]["ContainerEntrypoint"][1] for d in definitions
    )
    assert commands == ["align", "train"]
    dpo = next(d for d in definitions if "ResolveBaseModel" in d["States"])
    assert dpo["States"]["Train"]["Parameters"]["AlgorithmSpecification"]["ContainerEntrypoint"] == [
        "genai",
        "align",
        "dpo",
    ]
    assert dpo["States"]["QualityGate"]["Choices"][0]["Variable"] == "$.evaluation.metrics.preference_accuracy"
    groups = [
        r["Properties"]["ModelPackageGroupName"]
        for r in body["Resources"].values()
        if r["Type"] == "AWS::SageMaker::ModelPackageGroup"
    ]
    package = dpo["States"]["ResolveBaseModel"]["Parameters"]["ModelPackageName"]
    assert any(package.endswith(f":model-package/{group.lower()}/1") for group in groups)  # the SFT group's version 1
    for env in ("staging", "prod"):
        for name, path in synthesized.templates.items():
            if name[0] == env:
                assert "AlignmentStateMachineArn" not in json.loads(path.read_text()).get("Outputs", {})
