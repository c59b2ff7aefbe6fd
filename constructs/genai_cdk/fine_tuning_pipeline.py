"""``FineTuningPipeline``: a Step Functions workflow that fine-tunes, evaluates, gates on quality and
registers the model with its lineage (the book's FMOps registry).

Train (SageMaker training job: Trainium or GPU, managed spot with S3 checkpoints) -> Evaluate
(a second job running ``genai train evaluate``, ROUGE read from its metric definitions) -> Gate
(metric >= threshold) -> Register (a model package in a Model Package Group, pending approval,
with base model, dataset, artifacts and metrics as metadata). Any failure notifies the topic;
an alarm watches failed executions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import cast

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
    ) -> None:
        """
        :param training_image: the runtime training image (containers/training): a ``TrainingImage`` or
            its ECR URI; the jobs start it as ``genai train launch`` / ``genai train evaluate``.
        :param base_model_bucket: where the base model lives (``base_model_prefix``, uncompressed).
        :param data_bucket: the datasets; each execution names its dataset's S3 URI in its input.
        :param hyperparameters: ``genai train sft`` config keys (``lora__r``: "16"), per environment; checked
            against ``TrainConfig`` at synth time. An execution's ``"hyperparameters"`` input is merged over them.
        :param training: the Train job's ``TrainingJobSettings``; default one spot ``ml.trn1.32xlarge``.
        :param evaluation_instance_type: the Evaluate job's instance; default ``ml.m5.2xlarge``.
        :param quality_gate: the ROUGE score a model needs to be registered; default ``QualityGate()``.
        :param model_package_group_name: the Model Package Group to register in; default derived from the path.
        :param encryption_key: KMS key for artifacts, logs and the topic; default a new rotated key.
        :param alarm_topic: where failures notify; default a new KMS-encrypted topic.
        """
        super().__init__(scope, construct_id)
        prefer_bucket_policy_access_logs(self)
        stack = Stack.of(self)
        training = training or TrainingJobSettings()
        quality_gate = quality_gate or QualityGate()
        require_choice("evaluation_instance_type", evaluation_instance_type, TRAINING_TYPES)
        if isinstance(training_image, str):
            training_image = TrainingImage.from_image_uri(training_image)
        if not isinstance(training_image, TrainingImage):
            raise invalid("training_image", training_image, "give a TrainingImage or the ECR URI of the image.")
        hyperparameters = dict(hyperparameters or {})
        for key, value in hyperparameters.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise invalid("hyperparameters", {key: value}, "keys and values are strings, as SageMaker passes them.")
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
            model_package_group_description="Fine-tuned models registered by the genai-cdk pipeline",
        )

        self.training_role = iam.Role(
            self,
            "TrainingRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="Fine-tuning and evaluation jobs (least privilege)",
        )
        self._grant_training_role(stack, base_model_bucket, prefix, data_bucket)
        image_uri = training_image.bind(self, self.training_role)

        base_uri = f"s3://{base_model_bucket.bucket_name}/{prefix}/"
        output_uri = f"s3://{self.artifacts_bucket.bucket_name}/jobs/"

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
            return sfn.CustomState(
                self,
                state_id,
                state_json={
                    "Type": "Task",
                    "Resource": f"arn:{stack.partition}:states:::sagemaker:createTrainingJob.sync",
                    "Parameters": {
                        "RoleArn": self.training_role.role_arn,
                        "OutputDataConfig": {"S3OutputPath": output_uri, "KmsKeyId": self.key.key_arn},
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

        # torchrun over every NeuronCore/GPU and host of the job (SM_NUM_NEURONS, SM_HOSTS)
        train = training_job(
            "Train",
            "sft",
            ["genai", "train", "launch"],
            {
                "InstanceType": training.instance_type,
                "InstanceCount": training.instance_count,
                "VolumeSizeInGB": training.volume_size_gb,
            },
            **{"HyperParameters.$": "$.job.hyperparameters"},
            InputDataConfig=[_channel("train", "$.dataset"), _channel("model", base_uri)],
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
            result={
                "ResultSelector": {
                    "ModelArtifacts.$": "$.ModelArtifacts.S3ModelArtifacts",
                    "TrainingJobArn.$": "$.TrainingJobArn",
                },
                "ResultPath": "$.train",
            },
        )
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
        with_overrides.next(train)
        defaults.next(train)
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
                "ModelPackageDescription.$": "States.Format('Fine-tuned by execution {}', $$.Execution.Name)",
                "InferenceSpecification": {
                    "Containers": [{"Image": image_uri, "ModelDataUrl.$": "$.train.ModelArtifacts"}],
                    "SupportedContentTypes": ["application/json"],
                    "SupportedResponseMIMETypes": ["application/json"],
                },
                "CustomerMetadataProperties": {
                    "base_model": base_uri,
                    "dataset.$": "$.dataset",
                    "training_job.$": "$.train.TrainingJobArn",
                    # model/ (the adapter or full model) and, with merge_adapter, merged/ inside the tarball
                    "artifacts.$": "$.train.ModelArtifacts",
                    f"{quality_gate.metric}.$": "States.Format('{}', $.evaluation.Score[0])",
                },
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
        below_gate = sfn.Fail(
            self,
            "BelowQualityGate",
            error="QualityGateFailed",
            cause=f"{quality_gate.metric} below {quality_gate.threshold}",
        )
        notify_failure.next(failed)
        for state in (train, evaluate):
            state.add_catch(notify_failure, result_path="$.error")
        register.add_catch(notify_failure, result_path="$.error")
        gate = (
            sfn.Choice(self, "QualityGate")
            .when(
                sfn.Condition.number_greater_than_equals("$.evaluation.Score[0]", quality_gate.threshold),
                register.next(sfn.Succeed(self, "Registered")),
            )
            .otherwise(below_gate)
        )
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
            for kind in ("sft", "eval")
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
            "Job names carry the execution name, so the pipeline may manage only sft-* and eval-* jobs.",
        )
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
