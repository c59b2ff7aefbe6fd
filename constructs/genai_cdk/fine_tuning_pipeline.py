"""``FineTuningPipeline``: a Step Functions workflow that fine-tunes, evaluates, gates on quality and
registers the model with its lineage (the book's FMOps registry).

Train (SageMaker training job: Trainium or GPU, managed spot with S3 checkpoints) -> Evaluate
(a second job running ``genai train evaluate``, ROUGE read from its metric definitions) -> Gate
(metric >= threshold) -> Register (a model package in a Model Package Group, pending approval,
with base model, dataset, artifacts and metrics as metadata). Any failure notifies the topic;
an alarm watches failed executions.

``method`` picks the job: ``"sft"`` (``genai train launch``, the default) or one of the book's chapter 7
alignment methods on top of an SFT model (``genai align reward|dpo|rl``). An alignment Train job writes
its ``/opt/ml/model/metrics.json`` uncompressed; its Evaluate step reads that file (the workflow's JSON
property file) and the gate compares the method's own metric there: ``pairwise_accuracy`` (reward),
``preference_accuracy`` (dpo), ``reward_gain`` and, where measured, ``toxicity_improvement`` (rl).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Literal, cast, get_args

from aws_cdk import ArnFormat, CfnResource, Duration, Names, Stack, Token
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct, IConstruct

from genai_contracts.evaluation import ROUGE_METRICS, RougeMetric, metric_regex
from genai_contracts.train_config import hyperparameter_problems

from ._validation import invalid, require_choice, require_int, require_number
from .instance_types import INSTANCE_SPECS
from .lmi_image import LmiImage
from .nag import acknowledge_policy_wildcards, allow
from .notifications import encrypted_alarm_topic
from .storage import prefer_bucket_policy_access_logs, secure_bucket

TRAINING_TYPES = (
    "ml.trn1.2xlarge",
    "ml.trn1.32xlarge",
    "ml.trn1n.32xlarge",
    "ml.g5.2xlarge",
    "ml.g5.12xlarge",
    "ml.g5.48xlarge",
    "ml.p4d.24xlarge",
    "ml.p5.48xlarge",
    "ml.m5.2xlarge",
    "ml.m5.4xlarge",
)


@dataclass(frozen=True)
class QualityGate:
    """Register only if ``metric`` (after fine-tuning) reaches ``threshold``."""

    metric: RougeMetric = "rouge1"
    threshold: float = 0.2

    def __post_init__(self) -> None:
        require_choice("quality_gate.metric", self.metric, ROUGE_METRICS)
        require_number("quality_gate.threshold", self.threshold, minimum=0.0, maximum=1.0)


AlignmentMethod = Literal["reward", "dpo", "rl"]
ALIGNMENT_METHODS: tuple[str, ...] = get_args(AlignmentMethod)
METHODS: tuple[str, ...] = ("sft", *ALIGNMENT_METHODS)
# The gate's metric per alignment method: a key of the metrics.json `genai align METHOD` writes.
ALIGNMENT_METRICS: dict[str, str] = {
    "reward": "pairwise_accuracy",
    "dpo": "preference_accuracy",
    "rl": "reward_gain",
}
# What the registered model package records of metrics.json (keys every run of the method writes;
# CustomerMetadataProperties values must be plain strings, so each is formatted on its own).
ALIGNMENT_RECORDED_METRICS: dict[str, tuple[str, ...]] = {
    "reward": ("pairwise_accuracy", "pairwise_accuracy_before", "pairs"),
    "dpo": ("preference_accuracy", "preference_accuracy_before", "reward_margin"),
    "rl": ("reward_before", "reward_after", "reward_gain", "kl_final"),
}
# Channels of an alignment job, as the runtime's SageMaker contract reads them (genai_runtime.train.platform:
# "train" is data.train, "model" is the model to train): "train" (preference pairs, or prompts for rl), "model"
# (the SFT model it starts from), "base" (the foundation model under it, for an adapter-only SFT model) and, for
# rl, "classifier" (a classifier reward, where `genai align rl` looks for one) or "reward" (a reward model), named in
# the "reward" hyperparameter as `genai align rl --reward` takes it (KIND:DIR[,label=L]).
METRICS_FILE = "metrics.json"
CHANNEL_ROOT = "/opt/ml/input/data"  # SageMaker's: a channel's files are in /opt/ml/input/data/<channel>/


@dataclass(frozen=True)
class AlignmentGate:
    """Register an aligned model only if its metrics.json passes.

    :param min_accuracy: reward: ``pairwise_accuracy >=`` it; dpo: ``preference_accuracy >=`` it; default 0.6.
    :param min_reward_gain: rl: ``reward_gain >`` it (strictly: the policy must improve); default 0.0.
    :param min_toxicity_improvement: rl, when the run measured toxicity (``toxicity_improvement`` is a
        number): ``toxicity_improvement >=`` it; default 0.0.
    """

    min_accuracy: float = 0.6
    min_reward_gain: float = 0.0
    min_toxicity_improvement: float = 0.0

    def __post_init__(self) -> None:
        require_number("alignment_gate.min_accuracy", self.min_accuracy, minimum=0.0, maximum=1.0)
        require_number("alignment_gate.min_reward_gain", self.min_reward_gain)
        require_number("alignment_gate.min_toxicity_improvement", self.min_toxicity_improvement, maximum=1.0)


@dataclass(frozen=True)
class RewardSource:
    """rl only: what scores the policy's completions, in the job's ``reward`` channel.

    ``RewardSource.reward_model(s3_uri)`` (a ``genai align reward`` output), ``RewardSource.from_model_package(arn)``
    (a registered reward model, resolved at run time) or ``RewardSource.classifier(s3_uri, label)`` (the book's
    toxicity classifier, scored on ``label``, e.g. ``"nothate"``).
    """

    kind: Literal["reward-model", "classifier"]
    s3_uri: str | None = None
    model_package_arn: str | None = None
    label: str | None = None
    subfolder: str = ""  # where the model sits inside the channel

    @staticmethod
    def reward_model(s3_uri: str) -> RewardSource:
        return RewardSource("reward-model", s3_uri=_require_s3_uri("reward.s3_uri", s3_uri))

    @staticmethod
    def from_model_package(model_package_arn: str) -> RewardSource:
        # A reward package registered by a method="reward" pipeline: its uncompressed output/model/ prefix, in which
        # `genai align reward` wrote the model to model/.
        return RewardSource(
            "reward-model",
            model_package_arn=_require_package_arn("reward.model_package_arn", model_package_arn),
            subfolder="model",
        )

    @staticmethod
    def classifier(s3_uri: str, label: str = "nothate") -> RewardSource:
        if not isinstance(label, str) or not re.fullmatch(r"[A-Za-z0-9_.:+=@/-]{1,128}", label):
            raise invalid("reward.label", label, "name the classifier's label to reward, e.g. 'nothate'.")
        return RewardSource("classifier", s3_uri=_require_s3_uri("reward.s3_uri", s3_uri), label=label)

    @property
    def channel(self) -> str:
        """The job's channel: ``classifier`` (where ``genai align rl`` looks for a classifier reward) or ``reward``."""
        return "classifier" if self.kind == "classifier" else "reward"

    def hyperparameters(self) -> dict[str, str]:
        """``reward``: the ``genai align rl --reward`` spec, ``KIND:DIR[,label=L]``, DIR in the job's reward channel."""
        folder = f"{CHANNEL_ROOT}/{self.channel}" + (f"/{self.subfolder}" if self.subfolder else "")
        return {"reward": f"{self.kind}:{folder}" + (f",label={self.label}" if self.label else "")}


@dataclass(frozen=True)
class TrainingJobSettings:
    """The Train job's compute.

    :param instance_type: Trainium, GPU or CPU training instance; default ``ml.trn1.32xlarge``.
    :param instance_count: hosts of the job (``genai train launch`` spans them all); default 1.
    :param volume_size_gb: EBS volume per host; default 200.
    :param max_runtime: stop the job after this long; default 24 hours.
    :param use_spot: managed spot training, resumed from its S3 checkpoints; default True.
    :param max_wait: spot only: the longest to wait for capacity plus run, at least ``max_runtime``; default 36 hours.
    """

    instance_type: str = "ml.trn1.32xlarge"
    instance_count: int = 1
    volume_size_gb: int = 200
    max_runtime: Duration = field(default_factory=lambda: Duration.hours(24))
    use_spot: bool = True
    max_wait: Duration = field(default_factory=lambda: Duration.hours(36))

    def __post_init__(self) -> None:
        require_choice("training.instance_type", self.instance_type, TRAINING_TYPES)
        require_int("training.instance_count", self.instance_count, minimum=1, maximum=64)
        require_int("training.volume_size_gb", self.volume_size_gb, minimum=1, maximum=16384)
        if self.use_spot and self.max_wait.to_seconds() < self.max_runtime.to_seconds():
            raise invalid(
                "training.max_wait",
                self.max_wait.to_human_string(),
                f"managed spot needs max_wait >= max_runtime ({self.max_runtime.to_human_string()}).",
            )


class TrainingImage:
    """The training image (``containers/training``): a repository of yours plus a tag, or an ECR URI.

    ``bind`` returns the URI and lets the role pull that one repository; a repository works across
    stacks and with tokens, where a URI string cannot be parsed.
    """

    def __init__(self, image: LmiImage) -> None:
        self._image = image

    @staticmethod
    def from_ecr_repository(repository: ecr.IRepository, tag: str = "latest") -> TrainingImage:
        if not isinstance(tag, str) or not tag or ":" in tag or "/" in tag:
            raise invalid("training_image.tag", tag, "give only the tag, e.g. 'v1'.")
        return TrainingImage(LmiImage.from_ecr_repository(repository, tag))

    @staticmethod
    def from_image_uri(image_uri: str) -> TrainingImage:
        if isinstance(image_uri, str) and Token.is_unresolved(image_uri):
            raise invalid(
                "training_image",
                image_uri,
                "a token's text cannot be parsed into the repository the role must pull from; pass "
                "TrainingImage.from_ecr_repository(repository, tag) instead of repository.repository_uri_for_tag(tag).",
            )
        try:
            return TrainingImage(LmiImage.from_image_uri(image_uri))
        except ValueError:
            raise invalid(
                "training_image",
                image_uri,
                "SageMaker pulls from ECR only: give ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO:TAG, or "
                "TrainingImage.from_ecr_repository(repository, tag).",
            ) from None

    def bind(self, scope: Construct, role: iam.IRole) -> str:
        return self._image.bind(scope, role)


class FineTuningPipeline(Construct):
    """Escape hatches: ``state_machine``, ``training_role``, ``artifacts_bucket``, ``model_package_group``,
    ``failure_alarm``, ``topic``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        training_image: str | TrainingImage,
        base_model_bucket: s3.IBucket,
        base_model_prefix: str,
        data_bucket: s3.IBucket,
        training: TrainingJobSettings | None = None,
        evaluation_instance_type: str = "ml.m5.2xlarge",
        hyperparameters: dict[str, str] | None = None,
        quality_gate: QualityGate | None = None,
        model_package_group_name: str | None = None,
        encryption_key: kms.IKey | None = None,
        alarm_topic: sns.ITopic | None = None,
        method: str = "sft",
        base_model_package_arn: str | None = None,
        base_model_s3_uri: str | None = None,
        alignment_gate: AlignmentGate | None = None,
        reward: RewardSource | None = None,
        beta: float | None = None,
    ) -> None:
        """
        :param training_image: the runtime training image (containers/training): a ``TrainingImage`` or
            its ECR URI; the jobs start it as ``genai train launch`` / ``genai train evaluate``
            (``genai align METHOD`` for an alignment method).
        :param base_model_bucket: where the base model lives (``base_model_prefix``, uncompressed).
        :param data_bucket: the datasets; each execution names its dataset's S3 URI in its input.
        :param hyperparameters: ``genai train sft`` config keys (``lora__r``: "16"), per environment; checked
            against ``TrainConfig`` at synth time (passed through unchecked to ``genai align``). An execution's
            ``"hyperparameters"`` input is merged over them.
        :param training: the Train job's ``TrainingJobSettings``; default one spot ``ml.trn1.32xlarge``.
        :param evaluation_instance_type: the SFT Evaluate job's instance; default ``ml.m5.2xlarge``.
        :param quality_gate: sft: the ROUGE score a model needs to be registered; default ``QualityGate()``.
        :param model_package_group_name: the Model Package Group to register in; default derived from the path.
        :param encryption_key: KMS key for artifacts, logs and the topic; default a new rotated key.
        :param alarm_topic: where failures notify; default a new KMS-encrypted topic.
        :param method: ``"sft"`` (default), or an alignment method on an SFT model: ``"reward"`` (a reward
            model from preference pairs), ``"dpo"`` or ``"rl"`` (PPO against a reward model or classifier).
        :param base_model_package_arn: alignment: the SFT model package version it starts from (resolved at
            run time with DescribeModelPackage; grant the training role its artifacts, e.g.
            ``sft_pipeline.grant_read_models(pipeline.training_role)``). Exclusive with ``base_model_s3_uri``.
        :param base_model_s3_uri: alignment: the SFT model's artifact (its ``model.tar.gz`` or a prefix).
        :param alignment_gate: alignment: thresholds on the method's metric; default ``AlignmentGate()``.
        :param reward: rl only, required: the ``RewardSource`` scoring the policy.
        :param beta: dpo and rl: the KL coefficient, passed as the ``beta`` hyperparameter; default the runtime's.
        """
        super().__init__(scope, construct_id)
        prefer_bucket_policy_access_logs(self)
        stack = Stack.of(self)
        require_choice("method", method, METHODS)
        self.method = method
        aligned = method != "sft"
        training = training or TrainingJobSettings()
        require_choice("evaluation_instance_type", evaluation_instance_type, TRAINING_TYPES)
        if isinstance(training_image, str):
            training_image = TrainingImage.from_image_uri(training_image)
        if not isinstance(training_image, TrainingImage):
            raise invalid("training_image", training_image, "give a TrainingImage or the ECR URI of the image.")
        hyperparameters = dict(hyperparameters or {})
        for key, value in hyperparameters.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise invalid("hyperparameters", {key: value}, "keys and values are strings, as SageMaker passes them.")
        if aligned:
            alignment_gate = alignment_gate or AlignmentGate()
            hyperparameters = FineTuningPipeline.validate_alignment_props(
                method,
                base_model_package_arn=base_model_package_arn,
                base_model_s3_uri=base_model_s3_uri,
                reward=reward,
                beta=beta,
                hyperparameters=hyperparameters,
                quality_gate=quality_gate,
                alignment_gate=alignment_gate,
            )
        else:
            alignment_props: tuple[tuple[str, object], ...] = (
                ("base_model_package_arn", base_model_package_arn),
                ("base_model_s3_uri", base_model_s3_uri),
                ("alignment_gate", alignment_gate),
                ("reward", reward),
                ("beta", beta),
            )
            for name, given in alignment_props:
                if given is not None:
                    raise invalid(name, given, "only an alignment method (method='reward', 'dpo' or 'rl') takes it.")
            quality_gate = quality_gate or QualityGate()
            # The Evaluate step is the pipeline's ROUGE gate: the Train job need not score the same split first.
            hyperparameters = {"evaluate": "false", **hyperparameters}
            problems = hyperparameter_problems(hyperparameters)
            if problems:
                raise invalid(
                    "hyperparameters",
                    hyperparameters,
                    f"genai train launch would refuse them ({'; '.join(problems)}); use TrainConfig keys, '__' for "
                    "nesting (lora__r).",
                )
        prefix = base_model_prefix.strip("/")
        if not prefix:
            raise invalid("base_model_prefix", base_model_prefix, "name the folder of the base model.")

        self.key = encryption_key or kms.Key(
            self, "Key", enable_key_rotation=True, description="Fine-tuning pipeline: artifacts, logs, topic"
        )
        self.topic = alarm_topic or encrypted_alarm_topic(self, "Topic", self.key, "genai-cdk fine-tuning pipeline")
        self.artifacts_bucket = secure_bucket(self, "Artifacts", key=self.key, logs_prefix="artifacts/")
        group_name = model_package_group_name or Names.unique_resource_name(self, max_length=63, separator="-")
        self.model_package_group = sagemaker.CfnModelPackageGroup(
            self,
            "ModelPackageGroup",
            model_package_group_name=group_name,
            model_package_group_description=(
                f"Models aligned by the genai-cdk pipeline ({method})"
                if aligned
                else "Fine-tuned models registered by the genai-cdk pipeline"
            ),
        )

        self.training_role = iam.Role(
            self,
            "TrainingRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="Fine-tuning and evaluation jobs (least privilege)",
        )
        self._grant_training_role(stack, base_model_bucket, prefix, data_bucket)
        for prop, uri in (
            ("base_model_s3_uri", base_model_s3_uri),
            ("reward.s3_uri", reward.s3_uri if reward is not None else None),
        ):
            if uri is not None:
                self._grant_read_uri(prop, uri)
        image_uri = training_image.bind(self, self.training_role)

        base_uri = f"s3://{base_model_bucket.bucket_name}/{prefix}/"
        output_uri = f"s3://{self.artifacts_bucket.bucket_name}/jobs/"
        job_prefix = method if aligned else "sft"
        self._job_prefixes = (job_prefix,) if aligned else ("sft", "eval")
        # With CompressionType NONE SageMaker uploads /opt/ml/model file by file instead of one model.tar.gz
        # ("Uncompressed model output", SageMaker developer guide), under S3OutputPath/<job name>/output/model/ (the
        # layout of the compressed output/model.tar.gz; not checked against a real job here), so the Evaluate step
        # can read metrics.json and the model package points at the prefix.
        aligned_model_key = f"jobs/{job_prefix}-{{}}/output/model/"
        aligned_model_uri = f"s3://{self.artifacts_bucket.bucket_name}/{aligned_model_key}"

        def training_job(
            state_id: str, job_prefix: str, entrypoint: list[str], resources: dict, **parameters
        ) -> sfn.CustomState:
            """A createTrainingJob.sync state on the training image, its job named after the execution."""
            algorithm = {
                "TrainingImage": image_uri,
                "TrainingInputMode": "File",
                "ContainerEntrypoint": entrypoint,
                **parameters.pop("algorithm", {}),
            }
            result = parameters.pop("result")
            output = {"S3OutputPath": output_uri, "KmsKeyId": self.key.key_arn, **parameters.pop("output", {})}
            return sfn.CustomState(
                self,
                state_id,
                state_json={
                    "Type": "Task",
                    "Resource": f"arn:{stack.partition}:states:::sagemaker:createTrainingJob.sync",
                    "Parameters": {
                        "RoleArn": self.training_role.role_arn,
                        "OutputDataConfig": output,
                        "EnableNetworkIsolation": False,
                        "EnableInterContainerTrafficEncryption": True,
                        "TrainingJobName.$": f"States.Format('{job_prefix}-{{}}', $$.Execution.Name)",
                        "AlgorithmSpecification": algorithm,
                        "ResourceConfig": {**resources, **_volume_key(resources["InstanceType"], self.key)},
                        **parameters,
                    },
                    **result,
                },
            )

        # Alignment: the SFT model (and an rl reward model) named by a model package resolve to their artifact
        # at run time, so a new approved SFT version needs no redeploy.
        resolvers: list[tasks.CallAwsService] = []
        sft_uri = base_model_s3_uri or "$.base.ModelDataUrl"
        if aligned and base_model_package_arn is not None:
            # SFT packages (this construct's method="sft") hold a tarball: ModelDataUrl.
            resolvers.append(
                self._describe_package(
                    stack, "ResolveBaseModel", base_model_package_arn, "$.base", "Containers[0].ModelDataUrl"
                )
            )
        reward_uri = None
        if reward is not None:
            reward_uri = reward.s3_uri or "$.reward.ModelDataUrl"
            if reward.model_package_arn is not None:
                # Reward packages (method="reward") hold an uncompressed prefix: ModelDataSource.
                resolvers.append(
                    self._describe_package(
                        stack,
                        "ResolveRewardModel",
                        reward.model_package_arn,
                        "$.reward",
                        "Containers[0].ModelDataSource.S3DataSource.S3Uri",
                    )
                )

        if aligned:
            channels = [_channel("train", "$.dataset"), _channel("model", sft_uri), _channel("base", base_uri)]
            if reward_uri is not None:
                assert reward is not None
                channels.append(_channel(reward.channel, reward_uri))
        else:
            channels = [_channel("train", "$.dataset"), _channel("model", base_uri)]
        # torchrun over every NeuronCore/GPU and host of the job (SM_NUM_NEURONS, SM_HOSTS)
        train = training_job(
            "Train",
            job_prefix,
            ["genai", "align", method] if aligned else ["genai", "train", "launch"],
            {
                "InstanceType": training.instance_type,
                "InstanceCount": training.instance_count,
                "VolumeSizeInGB": training.volume_size_gb,
            },
            **{"HyperParameters.$": "$.job.hyperparameters"},
            InputDataConfig=channels,
            StoppingCondition={
                "MaxRuntimeInSeconds": int(training.max_runtime.to_seconds()),
                **({"MaxWaitTimeInSeconds": int(training.max_wait.to_seconds())} if training.use_spot else {}),
            },
            EnableManagedSpotTraining=training.use_spot,
            CheckpointConfig={
                "S3Uri.$": f"States.Format('s3://{self.artifacts_bucket.bucket_name}"
                "/checkpoints/{}/', $$.Execution.Name)",
                "LocalPath": "/opt/ml/checkpoints",
            },
            output={"CompressionType": "NONE"} if aligned else {},
            result={
                "ResultSelector": {
                    "ModelArtifacts.$": "$.ModelArtifacts.S3ModelArtifacts",
                    "TrainingJobArn.$": "$.TrainingJobArn",
                },
                "ResultPath": "$.train",
            },
        )
        evaluate: sfn.CustomState | tasks.CallAwsService
        if aligned:
            assert alignment_gate is not None
            # The JSON property file: the Train job's own metrics.json, parsed into $.evaluation.metrics. The SDK
            # integration's S3 GetObject returns the object's Body as a string, which States.StringToJson turns
            # into the JSON the gate reads (the usual Step Functions pattern; responses stay under 256 KiB, and a
            # metrics.json is a few hundred bytes).
            evaluate = tasks.CallAwsService(
                self,
                "Evaluate",
                service="s3",
                action="getObject",
                iam_action="s3:GetObject",
                iam_resources=[
                    self.artifacts_bucket.arn_for_objects(f"jobs/{job_prefix}-*/output/model/{METRICS_FILE}")
                ],
                parameters={
                    "Bucket": self.artifacts_bucket.bucket_name,
                    "Key.$": f"States.Format('{aligned_model_key}{METRICS_FILE}', $$.Execution.Name)",
                },
                result_selector={"metrics.$": "States.StringToJson($.Body)"},
                result_path="$.evaluation",
            )
            condition, gate_cause = _alignment_condition(method, alignment_gate)
        else:
            assert quality_gate is not None
            evaluate = training_job(
                "Evaluate",
                "eval",
                ["genai", "train", "evaluate"],
                {"InstanceType": evaluation_instance_type, "InstanceCount": 1, "VolumeSizeInGB": 100},
                # No container arguments: inside the job `genai train evaluate` reads the "model" and
                # "trained" channels and writes /opt/ml/model, the platform's own paths.
                algorithm={
                    "MetricDefinitions": [{"Name": m, "Regex": metric_regex(m)} for m in ROUGE_METRICS],
                },
                InputDataConfig=[_channel("model", base_uri), _channel("trained", "$.train.ModelArtifacts")],
                StoppingCondition={"MaxRuntimeInSeconds": 4 * 3600},
                result={
                    "ResultSelector": {
                        "Score.$": f"$.FinalMetricDataList[?(@.MetricName == '{quality_gate.metric}')].Value",
                        "Metrics.$": "$.FinalMetricDataList",
                    },
                    "ResultPath": "$.evaluation",
                },
            )
            condition = sfn.Condition.number_greater_than_equals("$.evaluation.Score[0]", quality_gate.threshold)
            gate_cause = f"{quality_gate.metric} below {quality_gate.threshold}"
        # An execution's "hyperparameters" reach the job, merged over the construct's (genai train submit
        # checks them first); without any, the construct's own apply.
        with_overrides = sfn.Pass(
            self,
            "MergeHyperparameters",
            parameters={
                "hyperparameters.$": f"States.JsonMerge(States.StringToJson('{_json(hyperparameters)}'), "
                "$.hyperparameters, false)"
            },
            result_path="$.job",
        )
        defaults = sfn.Pass(
            self,
            "DefaultHyperparameters",
            result=sfn.Result.from_object({"hyperparameters": hyperparameters}),
            result_path="$.job",
        )
        prepare = (
            sfn.Choice(self, "Hyperparameters")
            .when(sfn.Condition.is_present("$.hyperparameters"), with_overrides)
            .otherwise(defaults)
        )
        first: sfn.IChainable = train
        for resolver in reversed(resolvers):
            resolver.next(first)
            first = resolver
        with_overrides.next(first)
        defaults.next(first)
        if aligned:
            container = {
                "Image": image_uri,
                # Uncompressed output: the model is the job's output/model/ prefix, not a tarball.
                "ModelDataSource": {
                    "S3DataSource": {
                        "S3Uri.$": f"States.Format('{aligned_model_uri}', $$.Execution.Name)",
                        "S3DataType": "S3Prefix",
                        "CompressionType": "None",
                    }
                },
            }
            lineage = self._alignment_lineage(method, base_uri, base_model_package_arn, base_model_s3_uri, reward, beta)
            metrics = {
                f"{name}.$": f"States.Format('{{}}', $.evaluation.metrics.{name})"
                for name in ALIGNMENT_RECORDED_METRICS[method]
            }
            extra = {
                "ModelMetrics": {
                    "ModelQuality": {
                        "Statistics": {
                            "ContentType": "application/json",
                            "S3Uri.$": f"States.Format('{aligned_model_uri}{METRICS_FILE}', $$.Execution.Name)",
                        }
                    }
                }
            }
            description = f"States.Format('Aligned ({method}) by execution {{}}', $$.Execution.Name)"
        else:
            assert quality_gate is not None
            container = {"Image": image_uri, "ModelDataUrl.$": "$.train.ModelArtifacts"}
            lineage = {"base_model": base_uri}
            metrics = {f"{quality_gate.metric}.$": "States.Format('{}', $.evaluation.Score[0])"}
            extra = {}
            description = "States.Format('Fine-tuned by execution {}', $$.Execution.Name)"
        register = tasks.CallAwsService(
            self,
            "Register",
            service="sagemaker",
            action="createModelPackage",
            iam_resources=[
                stack.format_arn(service="sagemaker", resource="model-package", resource_name=f"{group_name.lower()}/*")
            ],
            parameters={
                "ModelPackageGroupName": group_name,
                "ModelApprovalStatus": "PendingManualApproval",
                "ModelPackageDescription.$": description,
                "InferenceSpecification": {
                    "Containers": [container],
                    "SupportedContentTypes": ["application/json"],
                    "SupportedResponseMIMETypes": ["application/json"],
                },
                # Lineage (botocore's sagemaker model, CreateModelPackage): "CustomerMetadataProperties: The metadata
                # properties associated with the model package versions", a map of at most 50 entries, keys of
                # 1-128 and values of 1-256 characters matching [\p{L}\p{Z}\p{N}_.:\/=+\-@]* (ARNs, S3 URIs and
                # numbers fit; JSON does not). Its other candidates do not fit: "SourceUri" is "the model package
                # ARN" only "if you want to clone a model package", and the container's "BaseModel" names SageMaker
                # hub content (HubContentName/HubContentVersion/RecipeName), not a model package of ours.
                "CustomerMetadataProperties": {
                    **lineage,
                    "dataset.$": "$.dataset",
                    "training_job.$": "$.train.TrainingJobArn",
                    # sft: model/ (the adapter or full model) and, with merge_adapter, merged/ inside the tarball;
                    # alignment: the job's S3ModelArtifacts (its uncompressed output/model/ prefix)
                    "artifacts.$": "$.train.ModelArtifacts",
                    **metrics,
                },
                **extra,
            },
            result_path="$.registered",
        )
        notify_failure = tasks.SnsPublish(
            self,
            "NotifyFailure",
            topic=self.topic,
            subject="genai-cdk fine-tuning failed",
            message=sfn.TaskInput.from_json_path_at("$.error"),
            result_path=sfn.JsonPath.DISCARD,
        )
        failed = sfn.Fail(self, "Failed", error="FineTuningFailed", cause="See the execution's error output")
        below_gate = sfn.Fail(self, "BelowQualityGate", error="QualityGateFailed", cause=gate_cause)
        notify_failure.next(failed)
        for state in (*resolvers, train, evaluate):
            state.add_catch(notify_failure, result_path="$.error")
        register.add_catch(notify_failure, result_path="$.error")
        registered = register.next(sfn.Succeed(self, "Registered"))
        passed: sfn.IChainable = registered
        if method == "rl":
            assert alignment_gate is not None
            # Toxicity counts only where the run measured it. Choice rules are tried in order and the first that
            # matches wins, so the numeric comparison is reached only for a present, non-null value (a numeric
            # operator on a missing path is a runtime error in Step Functions).
            toxicity = "$.evaluation.metrics.toxicity_improvement"
            passed = (
                sfn.Choice(self, "ToxicityGate")
                .when(sfn.Condition.not_(sfn.Condition.is_present(toxicity)), registered)
                .when(sfn.Condition.is_null(toxicity), registered)
                .when(
                    sfn.Condition.number_greater_than_equals(toxicity, alignment_gate.min_toxicity_improvement),
                    registered,
                )
                .otherwise(below_gate)
            )
        gate = sfn.Choice(self, "QualityGate").when(condition, passed).otherwise(below_gate)
        train.next(evaluate).next(gate)

        log_group = logs.LogGroup(self, "ExecutionLogs", encryption_key=self.key, retention=logs.RetentionDays.ONE_YEAR)
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": stack.format_arn(
                            service="logs",
                            resource="log-group",
                            resource_name="*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    }
                },
            )
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            definition_body=sfn.DefinitionBody.from_chainable(prepare),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
        )
        self._grant_state_machine(stack)
        # cfn-lint W3005: aws-cdk-lib adds a DependsOn the role that the RoleArn GetAtt already implies.
        cast(CfnResource, self.state_machine.node.default_child).add_metadata(
            "cfn-lint", {"config": {"ignore_checks": ["W3005"]}}
        )
        acknowledge_policy_wildcards(
            cast(IConstruct, self.state_machine.role.node.find_child("DefaultPolicy").node.default_child),
            "aws-cdk-lib adds X-Ray tracing and CloudWatch Logs delivery actions, which have no resource-level "
            "permissions, to the state machine role.",
        )
        self.failure_alarm = cloudwatch.Alarm(
            self,
            "FailedExecutions",
            metric=self.state_machine.metric_failed(period=Duration.minutes(5)),
            threshold=1,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            alarm_description="A fine-tuning pipeline execution failed",
        )
        self.failure_alarm.add_alarm_action(cw_actions.SnsAction(self.topic))

    @staticmethod
    def validate_alignment_props(
        method: str,
        *,
        base_model_package_arn: str | None = None,
        base_model_s3_uri: str | None = None,
        reward: RewardSource | None = None,
        beta: float | None = None,
        hyperparameters: dict[str, str] | None = None,
        quality_gate: QualityGate | None = None,
        alignment_gate: AlignmentGate | None = None,
    ) -> dict[str, str]:
        """The checks an alignment method's props get at synth time (``cdk_app/config.py`` runs them at load
        time); returns the job's hyperparameters: ``beta`` and the reward settings over ``hyperparameters``."""
        require_choice("method", method, ALIGNMENT_METHODS)
        hyperparameters = dict(hyperparameters or {})
        if alignment_gate is not None and not isinstance(alignment_gate, AlignmentGate):
            raise invalid("alignment_gate", alignment_gate, "give an AlignmentGate.")
        if quality_gate is not None:
            raise invalid(
                "quality_gate",
                quality_gate,
                f"the ROUGE gate is SFT's; method={method!r} gates on {ALIGNMENT_METRICS[method]}: pass "
                "alignment_gate=AlignmentGate(...).",
            )
        if (base_model_package_arn is None) == (base_model_s3_uri is None):
            raise invalid(
                "base_model_package_arn",
                base_model_package_arn,
                f"method={method!r} starts from an SFT model: give exactly one of base_model_package_arn (a "
                "registered SFT model package version) or base_model_s3_uri (its S3 artifact).",
            )
        if base_model_package_arn is not None:
            _require_package_arn("base_model_package_arn", base_model_package_arn)
        if base_model_s3_uri is not None:
            _require_s3_uri("base_model_s3_uri", base_model_s3_uri)
        if method == "rl" and not isinstance(reward, RewardSource):
            raise invalid(
                "reward",
                reward,
                "method='rl' needs what scores the policy: RewardSource.reward_model(s3_uri), "
                "RewardSource.from_model_package(arn) or RewardSource.classifier(s3_uri, label).",
            )
        if method != "rl" and reward is not None:
            raise invalid("reward", reward, f"only method='rl' takes a reward source, not {method!r}.")
        construct_keys: dict[str, str] = {}
        if beta is not None:
            if method == "reward":
                raise invalid("beta", beta, "a reward model has no KL coefficient; beta is for dpo and rl.")
            construct_keys["beta"] = format(require_number("beta", beta, minimum=0.0), "g")
        if reward is not None:
            construct_keys.update(reward.hyperparameters())
        clash = sorted(set(construct_keys) & set(hyperparameters))
        if clash:
            raise invalid(
                "hyperparameters",
                {key: hyperparameters[key] for key in clash},
                "beta and the reward settings come from their own props (beta=, reward=); remove them here.",
            )
        return {**construct_keys, **hyperparameters}

    def grant_read_models(self, grantee: iam.IRole) -> None:
        """Let ``grantee`` (e.g. an alignment pipeline's ``training_role``) read the models this pipeline's jobs
        write (``jobs/``, the model packages' artifacts) and decrypt them."""
        allow(
            grantee,
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[self.artifacts_bucket.arn_for_objects("jobs/*")]),
            "Model artifacts live under per-job names in the pipeline's own bucket; reads stay under jobs/.",
        )
        self.key.grant_decrypt(grantee)

    def _grant_read_uri(self, prop: str, uri: str) -> None:
        """The training role reads an S3 object or prefix given as a literal URI (the SFT model, a reward model)."""
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        partition = Stack.of(self).partition
        allow(
            self.training_role,
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[f"arn:{partition}:s3:::{bucket}/{key}*"]),
            f"The {prop} model is an object or a prefix of files; reads stay under it.",
        )
        allow(
            self.training_role,
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[f"arn:{partition}:s3:::{bucket}"]),
        )

    def _describe_package(
        self, stack: Stack, state_id: str, arn: str, result_path: str, location: str
    ) -> tasks.CallAwsService:
        """A model package version's artifact (``location`` in its InferenceSpecification), read at run time:
        ``{result_path}.ModelDataUrl``."""
        return tasks.CallAwsService(
            self,
            state_id,
            service="sagemaker",
            action="describeModelPackage",
            iam_resources=[arn],
            parameters={"ModelPackageName": arn},
            result_selector={
                "ModelPackageArn.$": "$.ModelPackageArn",
                "ModelDataUrl.$": f"$.InferenceSpecification.{location}",
            },
            result_path=result_path,
        )

    @staticmethod
    def _alignment_lineage(
        method: str,
        foundation_uri: str,
        package_arn: str | None,
        sft_uri: str | None,
        reward: RewardSource | None,
        beta: float | None,
    ) -> dict[str, str]:
        """What the aligned model package records of where it came from (CustomerMetadataProperties)."""
        lineage = {"method": method, "foundation_model": foundation_uri}
        if package_arn is not None:
            lineage["base_model_package"] = package_arn
            lineage["base_model_artifacts.$"] = "$.base.ModelDataUrl"
        else:
            assert sft_uri is not None
            lineage["base_model_artifacts"] = sft_uri
        if reward is not None:
            lineage["reward_type"] = reward.kind
            if reward.model_package_arn is not None:
                lineage["reward_model_package"] = reward.model_package_arn
                lineage["reward_source.$"] = "$.reward.ModelDataUrl"
            else:
                assert reward.s3_uri is not None
                lineage["reward_source"] = reward.s3_uri
            if reward.label:
                lineage["reward_label"] = reward.label
        if beta is not None:
            lineage["beta"] = format(beta, "g")
        return lineage

    def _grant_training_role(self, stack: Stack, base_bucket: s3.IBucket, prefix: str, data_bucket: s3.IBucket) -> None:
        role = self.training_role
        allow(
            role,
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[base_bucket.arn_for_objects(f"{prefix}/*")]),
            "Training reads every file of the base model under its own prefix.",
        )
        allow(
            role,
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[data_bucket.arn_for_objects("*")]),
            "Each execution names its dataset at run time; reads stay in the data bucket.",
        )
        allow(
            role,
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[base_bucket.bucket_arn, data_bucket.bucket_arn, self.artifacts_bucket.bucket_arn],
            ),
        )
        allow(
            role,
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:PutObject"], resources=[self.artifacts_bucket.arn_for_objects("*")]
            ),
            "Jobs write model artifacts and spot checkpoints under per-execution names in their own bucket.",
        )
        self.key.grant(role, "kms:Decrypt", "kms:GenerateDataKey", "kms:CreateGrant", "kms:DescribeKey")
        allow(
            role,
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
                resources=[
                    stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name="/aws/sagemaker/TrainingJobs*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            ),
            "Training jobs log to streams named after each job under SageMaker's training log group.",
        )
        allow(
            role,
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*"]}},
            ),
            "cloudwatch:PutMetricData has no resource-level permissions; a namespace condition scopes it.",
        )

    def _grant_state_machine(self, stack: Stack) -> None:
        role = self.state_machine.role
        jobs = [
            stack.format_arn(service="sagemaker", resource="training-job", resource_name=f"{kind}-*")
            for kind in self._job_prefixes
        ]
        allow(
            role,
            iam.PolicyStatement(
                actions=[
                    "sagemaker:CreateTrainingJob",
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:StopTrainingJob",
                    "sagemaker:AddTags",
                ],
                resources=jobs,
            ),
            "Job names carry the execution name, so the pipeline may manage only its own "
            f"{' and '.join(k + '-*' for k in self._job_prefixes)} jobs.",
        )
        if self.method != "sft":
            # The Evaluate step reads the Train job's metrics.json, which SageMaker wrote with this key.
            self.key.grant_decrypt(role)
        allow(
            role,
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.training_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            ),
        )
        allow(
            role,
            iam.PolicyStatement(
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[
                    stack.format_arn(
                        service="events",
                        resource="rule",
                        resource_name="StepFunctionsGetEventsForSageMakerTrainingJobsRule",
                    )
                ],
            ),
        )
        allow(
            role,
            iam.PolicyStatement(
                actions=["sagemaker:AddTags"],
                resources=[
                    stack.format_arn(
                        service="sagemaker",
                        resource="model-package",
                        resource_name=f"{self.model_package_group.model_package_group_name.lower()}/*",
                    )
                ],
            ),
            "Model packages get version numbers at registration; the grant stays inside the pipeline's group.",
        )


def _alignment_condition(method: str, gate: AlignmentGate) -> tuple[sfn.Condition, str]:
    """The QualityGate's condition on ``$.evaluation.metrics`` (the job's metrics.json) and the Fail cause."""
    metric = f"$.evaluation.metrics.{ALIGNMENT_METRICS[method]}"
    if method == "rl":  # then ToxicityGate, where toxicity was measured
        return (
            sfn.Condition.number_greater_than(metric, gate.min_reward_gain),
            f"reward_gain not above {gate.min_reward_gain}, or toxicity_improvement below "
            f"{gate.min_toxicity_improvement}",
        )
    return (
        sfn.Condition.number_greater_than_equals(metric, gate.min_accuracy),
        f"{ALIGNMENT_METRICS[method]} below {gate.min_accuracy}",
    )


def _require_s3_uri(prop: str, uri: object) -> str:
    if (
        not isinstance(uri, str)
        or Token.is_unresolved(uri)
        or not re.fullmatch(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/\S*", uri)
    ):
        raise invalid(prop, uri, "give a literal s3://BUCKET/KEY URI (its bucket is granted to the training role).")
    return uri


def _require_package_arn(prop: str, arn: object) -> str:
    if isinstance(arn, str) and Token.is_unresolved(arn):  # e.g. stack.format_arn(...) of a group of this app
        return arn
    if not isinstance(arn, str) or not re.fullmatch(
        r"arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/[a-zA-Z0-9-]{1,63}/\d+", arn
    ):
        raise invalid(
            prop,
            arn,
            "give a model package version ARN, arn:aws:sagemaker:REGION:ACCOUNT:model-package/GROUP/VERSION.",
        )
    return arn


def _volume_key(instance_type: str, key: kms.IKey) -> dict:
    """``VolumeKmsKeyId`` where SageMaker takes one: CreateTrainingJob refuses it on instance types with local
    NVMe storage ("You can't request a VolumeKmsKeyId when using an instance type with local storage",
    botocore's sagemaker ResourceConfig docs), whose instance store SageMaker encrypts itself."""
    spec = INSTANCE_SPECS.get(instance_type)
    return {} if spec is not None and spec.local_nvme else {"VolumeKmsKeyId": key.key_arn}


def _json(value: dict) -> str:
    """``value`` as a string literal for an intrinsic function: ASL wants ' { } and \\ escaped there."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return "".join("\\" + ch if ch in "'{}\\" else ch for ch in text)


def _channel(name: str, uri: str) -> dict:
    """An S3-prefix input channel; a ``$.`` path is resolved from the execution input."""
    source = {"S3DataType": "S3Prefix", "S3DataDistributionType": "FullyReplicated"}
    if uri.startswith("$."):
        source["S3Uri.$"] = uri
    else:
        source["S3Uri"] = uri
    return {"ChannelName": name, "DataSource": {"S3DataSource": source}}
