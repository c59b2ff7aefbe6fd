"""Typed, validated configuration of one deployment environment (``environments/NAME.yaml``).

Every model forbids unknown keys, so a misspelled key fails synth with its path named, and the
values that feed a construct are checked by building the construct's own value objects.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import typing
from pathlib import Path
from typing import Literal, cast

import yaml
from aws_cdk import Duration
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator

from genai_cdk import Autoscaling, EndpointAlarms, LmiOptions, Rollout, StepScaling, instance_spec
from genai_contracts.chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE
from genai_contracts.evaluation import RougeMetric

from .environments import ENVIRONMENTS_DIR, available_environments

LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)
ENVIRONMENT_NAME = re.compile(r"^[a-z][a-z0-9-]{0,19}$")


class ConfigError(ValueError):
    """A configuration file is missing, malformed or holds a bad value."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NetworkConfig(_Strict):
    cidr: str = "10.0.0.0/16"
    availability_zones: list[str] = Field(min_length=2, max_length=6)
    nat_gateways: int = Field(1, ge=1, le=6)
    flow_log_retention_days: int = Field(90, ge=1)

    @field_validator("flow_log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"CloudWatch Logs keeps logs for one of {LOG_RETENTION_DAYS} days")
        return value

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        network = ipaddress.ip_network(value, strict=True)
        if network.prefixlen > 20:
            raise ValueError(f"{value} leaves too little room for subnets; use a /20 or larger block")
        return value

    @model_validator(mode="after")
    def _nat_fits(self) -> NetworkConfig:
        if self.nat_gateways > len(self.availability_zones):
            raise ValueError(
                f"nat_gateways={self.nat_gateways} exceeds the {len(self.availability_zones)} availability_zones"
            )
        return self


class ModelLocation(_Strict):
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    prefix: str = Field(min_length=1)


class _OptionsBase(_Strict):
    def build(self) -> LmiOptions:
        return LmiOptions(**{name: getattr(self, name) for name in _OPTION_FIELDS})

    @model_validator(mode="after")
    def _valid(self) -> _OptionsBase:
        self.build()  # raises the construct's own ValueError, which pydantic reports with this path
        return self


# ``inference.options`` holds LmiOptions' own fields, declared once there (types, defaults; LmiOptions checks the
# values). Only one key is spelled differently, because every duration in these files names its unit.
_OPTION_FIELDS = tuple(field.name for field in dataclasses.fields(LmiOptions))
_OPTION_KEYS = {"model_loading_timeout": "model_loading_timeout_seconds"}


def _option_field(field: dataclasses.Field) -> tuple:
    kind, alias = typing.get_type_hints(LmiOptions)[field.name], _OPTION_KEYS.get(field.name)
    if field.default_factory is not dataclasses.MISSING:
        return kind, Field(default_factory=field.default_factory, alias=alias)
    return kind, Field(field.default, alias=alias)


OptionsConfig = create_model(
    "OptionsConfig",
    __base__=_OptionsBase,
    __module__=__name__,
    __doc__="The endpoint's ``LmiOptions``, one key per field.",
    **{field.name: _option_field(field) for field in dataclasses.fields(LmiOptions)},
)


class VariantConfig(_Strict):
    name: str
    weight: float = 1.0
    instance_count: int = Field(1, ge=1)
    instance_type: str | None = None
    model_prefix: str | None = None
    """A different model prefix in the same bucket (the B of an A/B test)."""


class AutoscalingConfig(_Strict):
    min_capacity: int = Field(1, ge=1)
    max_capacity: int = Field(4, ge=1)
    target_invocations_per_instance: int = Field(1000, ge=1)
    scale_in_cooldown_seconds: int = Field(300, ge=0)
    scale_out_cooldown_seconds: int = Field(60, ge=0)
    step_scaling: bool = False

    def build(self) -> Autoscaling:
        return Autoscaling(
            min_capacity=self.min_capacity,
            max_capacity=self.max_capacity,
            target_invocations_per_instance=self.target_invocations_per_instance,
            scale_in_cooldown=Duration.seconds(self.scale_in_cooldown_seconds),
            scale_out_cooldown=Duration.seconds(self.scale_out_cooldown_seconds),
            step_scaling=StepScaling() if self.step_scaling else None,
        )

    @model_validator(mode="after")
    def _valid(self) -> AutoscalingConfig:
        self.build()
        return self


class RolloutConfig(_Strict):
    strategy: Literal["all_at_once", "canary", "linear", "rolling"] = "all_at_once"
    percent: int | None = None
    wait_minutes: int = Field(5, ge=0, le=60)
    bake_minutes: int = Field(5, ge=0, le=60)

    def build(self) -> Rollout:
        wait, bake = Duration.minutes(self.wait_minutes), Duration.minutes(self.bake_minutes)
        if self.strategy == "all_at_once":
            if self.percent is not None:
                raise ValueError("percent applies to canary, linear and rolling only")
            return Rollout.all_at_once(bake=bake)
        if self.strategy == "canary":
            return Rollout.canary(percent=self.percent or 10, wait=wait, bake=bake)
        if self.strategy == "linear":
            return Rollout.linear(step_percent=self.percent or 20, wait=wait, bake=bake)
        return Rollout.rolling(batch_percent=self.percent or 25, wait=wait)

    @model_validator(mode="after")
    def _valid(self) -> RolloutConfig:
        self.build()
        return self


class AlarmsConfig(_Strict):
    model_latency_p99_ms: int | None = Field(30_000, ge=1)
    overhead_latency_p99_ms: int | None = Field(500, ge=1)
    invocation_5xx_errors: int | None = Field(1, ge=1)
    invocation_4xx_errors: int | None = Field(50, ge=1)
    model_setup_time_minutes: int | None = Field(20, ge=1)
    evaluation_periods: int = Field(5, ge=1)
    datapoints_to_alarm: int = Field(3, ge=1)
    email: str | None = Field(None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

    def build(self) -> EndpointAlarms:
        def ms(value: int | None) -> Duration | None:
            return None if value is None else Duration.millis(value)

        return EndpointAlarms(
            model_latency_p99=ms(self.model_latency_p99_ms),
            overhead_latency_p99=ms(self.overhead_latency_p99_ms),
            invocation_5xx_errors=self.invocation_5xx_errors,
            invocation_4xx_errors=self.invocation_4xx_errors,
            model_setup_time=None
            if self.model_setup_time_minutes is None
            else Duration.minutes(self.model_setup_time_minutes),
            evaluation_periods=self.evaluation_periods,
            datapoints_to_alarm=self.datapoints_to_alarm,
        )

    @model_validator(mode="after")
    def _valid(self) -> AlarmsConfig:
        self.build()
        return self


class ShadowTestConfig(_Strict):
    """A second endpoint: one production variant plus a shadow (SageMaker allows no A/B beside a shadow)."""

    production: VariantConfig
    shadow: VariantConfig
    sampling_percentage: int = Field(100, ge=1, le=100)


class InferenceConfig(_Strict):
    model: ModelLocation
    instance_type: str
    instance_count: int = Field(1, ge=1)
    options: OptionsConfig = OptionsConfig()
    variants: list[VariantConfig] | None = None
    shadow_test: ShadowTestConfig | None = None
    autoscaling: AutoscalingConfig | None = None
    rollout: RolloutConfig = RolloutConfig()
    alarms: AlarmsConfig = AlarmsConfig()
    network_isolation: bool = False

    @field_validator("instance_type")
    @classmethod
    def _known_instance(cls, value: str) -> str:
        instance_spec(value)
        return value

    @model_validator(mode="after")
    def _options_fit_every_fleet(self) -> InferenceConfig:
        fleets = list(self.variants or [])
        if self.shadow_test:
            fleets += [self.shadow_test.production, self.shadow_test.shadow]
        instance_types = {self.instance_type} | {v.instance_type for v in fleets if v.instance_type}
        options = self.options.build()
        for instance_type in sorted(instance_types):
            options.validate_for(instance_spec(instance_type, "instance_type"))
        return self


class InstanceGroupConfig(_Strict):
    """A Slurm compute group of the HyperPod cluster (``InstanceGroup``)."""

    name: str
    instance_type: str = "ml.trn1.32xlarge"
    instance_count: int = Field(1, ge=1)
    volume_size_gb: int = Field(500, ge=1)
    partition: str | None = None
    """The Slurm partition its nodes join (sbatch --partition); default the group name."""
    deep_health_checks: list[Literal["InstanceStress", "InstanceConnectivity"]] | None = None
    """On-start deep health checks; unset for the instance family's default, ``[]`` to turn them off."""

    def build(self):
        from genai_cdk import InstanceGroup

        return InstanceGroup(
            self.name,
            self.instance_type,
            self.instance_count,
            self.volume_size_gb,
            partition=self.partition,
            deep_health_checks=tuple(self.deep_health_checks) if self.deep_health_checks is not None else None,
        )

    @model_validator(mode="after")
    def _valid(self) -> InstanceGroupConfig:
        self.build()  # the construct's own ValueError (partition name, checks), reported with this path
        return self


class ClusterConfig(_Strict):
    """The HyperPod training cluster (``TrainiumCluster``): a Slurm controller and compute partitions."""

    data_bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    data_prefix: str = ""
    availability_zone: str | None = None
    controller_instance_type: str = "ml.m5.xlarge"
    login_instance_type: str | None = None
    """A Slurm login node for users' sbatch/srun (one node); unset: users work on the controller."""
    slurm_config_strategy: Literal["Managed", "Overwrite", "Merge"] = "Managed"
    workers: list[InstanceGroupConfig] = Field(min_length=1)
    """The Slurm compute groups, one partition each (several groups may share one)."""
    fsx_storage_gib: int = 1200
    fsx_throughput_per_tib: int = 250

    def build(self):
        from genai_cdk import InstanceGroup

        controller = InstanceGroup("controller", self.controller_instance_type, 1, volume_size_gb=100)
        return controller, [w.build() for w in self.workers]

    def login(self):
        from genai_cdk import InstanceGroup

        if self.login_instance_type is None:
            return None
        return InstanceGroup("login", self.login_instance_type, 1, volume_size_gb=100)

    @model_validator(mode="after")
    def _valid(self) -> ClusterConfig:
        from genai_cdk.trainium_cluster import TrainiumCluster

        controller, workers = self.build()
        TrainiumCluster.validate_props(
            workers,
            controller,
            self.fsx_storage_gib,
            self.fsx_throughput_per_tib,
            TrainiumCluster.default_lifecycle_scripts(),
            login=self.login(),
            slurm_config_strategy=self.slurm_config_strategy,
        )
        return self


ECR_IMAGE = r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/[a-z0-9._/-]+[:@].+$"


class RewardConfig(_Strict):
    """rl: what scores the policy (``RewardSource``): a reward model (S3 URI or model package) or a classifier."""

    kind: Literal["reward-model", "classifier"]
    s3_uri: str | None = None
    model_package_arn: str | None = None
    label: str | None = None  # classifier only: the label to reward, e.g. nothate

    def build(self):
        from genai_cdk.fine_tuning_pipeline import RewardSource

        if self.kind == "classifier":
            if self.s3_uri is None or self.model_package_arn is not None:
                raise ValueError("reward: a classifier needs s3_uri (and no model_package_arn)")
            return RewardSource.classifier(self.s3_uri, self.label or "nothate")
        if self.label is not None:
            raise ValueError("reward.label is for kind: classifier")
        if (self.s3_uri is None) == (self.model_package_arn is None):
            raise ValueError("reward: a reward model needs exactly one of s3_uri or model_package_arn")
        if self.s3_uri is not None:
            return RewardSource.reward_model(self.s3_uri)
        return RewardSource.from_model_package(cast(str, self.model_package_arn))

    @model_validator(mode="after")
    def _valid(self) -> RewardConfig:
        self.build()
        return self


class AlignmentConfig(_Strict):
    """An alignment pipeline beside the SFT one (``FineTuningPipeline(method=...)``, book chapter 7), starting from
    an SFT model: a version of the SFT pipeline's own model package group (``base_model_package_version``), another
    model package (``base_model_package_arn``) or an S3 artifact (``base_model_s3_uri``). Image, buckets and base
    model are the SFT pipeline's unless given here."""

    method: Literal["reward", "dpo", "rl"]
    base_model_package_version: int | None = Field(None, ge=1)
    base_model_package_arn: str | None = None
    base_model_s3_uri: str | None = None
    training_image: str | None = Field(
        None, pattern=r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/[a-z0-9._/-]+[:@].+$"
    )
    instance_type: str = "ml.g5.2xlarge"
    instance_count: int = Field(1, ge=1)
    use_spot: bool = True
    max_runtime_hours: int = Field(24, ge=1, le=672)
    max_wait_hours: int = Field(36, ge=1, le=672)
    hyperparameters: dict[str, str] = {}
    beta: float | None = None
    reward: RewardConfig | None = None
    min_accuracy: float = Field(0.6, ge=0.0, le=1.0)
    min_reward_gain: float = 0.0
    min_toxicity_improvement: float = Field(0.0, le=1.0)

    def settings(self):
        from genai_cdk import TrainingJobSettings

        return TrainingJobSettings(
            instance_type=self.instance_type,
            instance_count=self.instance_count,
            use_spot=self.use_spot,
            max_runtime=Duration.hours(self.max_runtime_hours),
            max_wait=Duration.hours(self.max_wait_hours),
        )

    def gate(self):
        from genai_cdk.fine_tuning_pipeline import AlignmentGate

        return AlignmentGate(self.min_accuracy, self.min_reward_gain, self.min_toxicity_improvement)

    @model_validator(mode="after")
    def _valid(self) -> AlignmentConfig:
        from genai_cdk import FineTuningPipeline

        sources = [
            name
            for name in ("base_model_package_version", "base_model_package_arn", "base_model_s3_uri")
            if getattr(self, name) is not None
        ]
        if len(sources) != 1:
            raise ValueError(
                "alignment starts from one SFT model: give exactly one of base_model_package_version (a version of "
                f"the SFT pipeline's model package group), base_model_package_arn or base_model_s3_uri (got {sources})"
            )
        placeholder = "arn:aws:sagemaker:us-east-1:123456789012:model-package/sft/1"
        FineTuningPipeline.validate_alignment_props(
            self.method,
            base_model_package_arn=self.base_model_package_arn
            or (placeholder if self.base_model_package_version else None),
            base_model_s3_uri=self.base_model_s3_uri,
            reward=self.reward.build() if self.reward else None,
            beta=self.beta,
            hyperparameters=self.hyperparameters,
            alignment_gate=self.gate(),
        )
        self.settings()
        return self


class PipelineConfig(_Strict):
    """The fine-tuning pipeline (``FineTuningPipeline``)."""

    training_image: str = Field(pattern=ECR_IMAGE)
    base_model: ModelLocation
    data_bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    instance_type: str = "ml.trn1.32xlarge"
    instance_count: int = Field(1, ge=1)
    use_spot: bool = True
    max_runtime_hours: int = Field(24, ge=1, le=672)
    max_wait_hours: int = Field(36, ge=1, le=672)
    evaluation_instance_type: str = "ml.m5.2xlarge"
    quality_metric: RougeMetric = "rouge1"
    quality_threshold: float = Field(0.2, ge=0.0, le=1.0)
    hyperparameters: dict[str, str] = {}
    alignment: AlignmentConfig | None = None  # an alignment pipeline beside this one, on its models

    def settings(self):
        from genai_cdk import TrainingJobSettings

        return TrainingJobSettings(
            instance_type=self.instance_type,
            instance_count=self.instance_count,
            use_spot=self.use_spot,
            max_runtime=Duration.hours(self.max_runtime_hours),
            max_wait=Duration.hours(self.max_wait_hours),
        )

    @model_validator(mode="after")
    def _valid(self) -> PipelineConfig:
        self.settings()
        return self


class TrainingConfig(_Strict):
    cluster: ClusterConfig | None = None
    pipeline: PipelineConfig | None = None


class VectorStoreConfig(_Strict):
    """The OpenSearch vector store (``VectorStore``): a managed domain or Serverless."""

    deployment: Literal["domain", "serverless"] = "domain"
    dimension: int = Field(384, ge=1, le=16000)
    index_name: str = "documents"
    metadata_fields: dict[str, str] = {"year": "integer"}
    data_nodes: int = Field(2, ge=1)
    data_node_instance_type: str = "r6g.large.search"
    master_nodes: int = Field(0, ge=0)
    master_node_instance_type: str = "m6g.large.search"
    availability_zones: int = Field(2, ge=1, le=3)
    volume_size_gib: int = Field(100, ge=10)
    standby_replicas: bool = True

    def build(self):
        from genai_cdk import DomainDeployment, ServerlessDeployment

        if self.deployment == "serverless":
            return ServerlessDeployment(standby_replicas=self.standby_replicas)
        return DomainDeployment(
            data_nodes=self.data_nodes,
            data_node_instance_type=self.data_node_instance_type,
            master_nodes=self.master_nodes,
            master_node_instance_type=self.master_node_instance_type,
            availability_zones=self.availability_zones,
            volume_size_gib=self.volume_size_gib,
        )

    @model_validator(mode="after")
    def _valid(self) -> VectorStoreConfig:
        from genai_cdk.vector_store import VectorStore

        VectorStore.validate_props(self.dimension, self.index_name, self.metadata_fields, "innerproduct", self.build())
        return self


class EmbeddingsConfig(_Strict):
    """Exactly one of a SageMaker embedding endpoint or a Bedrock embedding model."""

    sagemaker_endpoint: str | None = None
    bedrock_model: str | None = None
    dimension: int | None = Field(None, ge=1, le=16000)

    def build(self):
        from genai_cdk import EmbeddingModel

        if self.sagemaker_endpoint:
            return EmbeddingModel.sagemaker(self.sagemaker_endpoint, self.dimension or 384)
        return EmbeddingModel.bedrock(self.bedrock_model, self.dimension or 1024)

    @model_validator(mode="after")
    def _valid(self) -> EmbeddingsConfig:
        if (self.sagemaker_endpoint is None) == (self.bedrock_model is None):
            raise ValueError("give exactly one of sagemaker_endpoint or bedrock_model")
        self.build()
        return self


class RagConfig(_Strict):
    """RAG: the vector store, the ingestion pipeline and the query API."""

    vector_store: VectorStoreConfig = VectorStoreConfig()
    embeddings: EmbeddingsConfig
    # "inference-endpoint": this environment's LMI endpoint; "bedrock:MODEL_ID"; absent: retrieval only.
    generator: str | None = Field(None, pattern=r"^(inference-endpoint|bedrock:[a-z0-9-]+\.[A-Za-z0-9.:_-]+)$")
    documents_prefix: str = "documents/"
    """Where the ingestion pipeline reads its bucket (a knowledge base reads ``knowledge-base/``: disjoint)."""
    chunk_size: int = Field(DEFAULT_CHUNK_SIZE, ge=1, le=MAX_CHUNK_SIZE)
    chunk_overlap: int = Field(DEFAULT_CHUNK_OVERLAP, ge=0)
    max_concurrency: int = Field(5, ge=2, le=1000)
    throttle_rate_limit: float = Field(50, gt=0, le=10_000)
    throttle_burst_limit: int = Field(100, ge=1, le=5000)
    waf: bool = False
    default_search_type: Literal["similarity", "mmr", "hybrid"] | None = None
    """What a query naming no ``search_type`` runs; unset: similarity (``genai_cdk.rag_api`` says why)."""

    @model_validator(mode="after")
    def _valid(self) -> RagConfig:
        from genai_cdk.ingestion_pipeline import IngestionPipeline

        IngestionPipeline.validate_prefix(self.documents_prefix)
        if self.default_search_type == "hybrid" and self.vector_store.deployment == "serverless":
            raise ValueError(
                "default_search_type: hybrid needs a managed domain (search pipelines); "
                "OpenSearch Serverless runs similarity or mmr"
            )
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(f"chunk_overlap ({self.chunk_overlap}) must be below chunk_size ({self.chunk_size})")
        if self.embeddings.build().dimension != self.vector_store.dimension:
            raise ValueError(
                f"embeddings give {self.embeddings.build().dimension}-dimension vectors but "
                f"vector_store.dimension is {self.vector_store.dimension}; make them match"
            )
        return self


class DeniedTopicConfig(_Strict):
    name: str = Field(pattern=r"^[0-9A-Za-z_ -]{1,100}$")
    definition: str = Field(min_length=1, max_length=200)
    examples: list[str] = []


class GuardrailConfig(_Strict):
    content_filter_strength: Literal["NONE", "LOW", "MEDIUM", "HIGH"] = "HIGH"
    denied_topics: list[DeniedTopicConfig] = []
    pii_action: Literal["ANONYMIZE", "BLOCK"] = "ANONYMIZE"

    def build(self):
        from genai_cdk import DeniedTopic, GuardrailPolicy

        return GuardrailPolicy(
            content_filter_strength=self.content_filter_strength,
            pii_action=self.pii_action,
            denied_topics=tuple(DeniedTopic(t.name, t.definition, tuple(t.examples)) for t in self.denied_topics),
        )


class AgentsConfig(_Strict):
    """The Bedrock agent (with the claims action group), its API, and Bedrock governance."""

    foundation_model: str = "anthropic.claude-3-haiku-20240307-v1:0"
    instruction: str = Field(min_length=40, max_length=4000)
    idle_session_minutes: int = Field(10, ge=1, le=60)
    guardrail: GuardrailConfig | None = None
    knowledge_base: bool = False  # over rag.vector_store; needs deployment: serverless
    throttle_rate_limit: float = Field(20, gt=0, le=10_000)
    throttle_burst_limit: int = Field(40, ge=1, le=5000)
    waf: bool = False
    alarm_models: list[str] = []
    # Model invocation logging is one setting per account and Region: the environment that sets it. Set false
    # in every environment but one where several share an account and Region.
    owns_invocation_logging: bool = True

    @model_validator(mode="after")
    def _valid(self) -> AgentsConfig:
        from genai_cdk.bedrock_agent import BedrockAgent

        guardrail = self.guardrail.build() if self.guardrail else None
        BedrockAgent.validate_props(
            self.foundation_model, self.instruction, (), guardrail, Duration.minutes(self.idle_session_minutes), "live"
        )
        return self


class KmsConfig(_Strict):
    """The environment's customer-managed key: a new rotated key, or an existing one by ARN."""

    key_arn: str | None = Field(None, pattern=r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[0-9a-f-]{36}$")
    deletion_window_days: int = Field(30, ge=7, le=30)


class EnvironmentConfig(_Strict):
    name: str
    account: str | None = Field(None, pattern=r"^\d{12}$")
    region: str = Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
    network: NetworkConfig
    inference: InferenceConfig
    training: TrainingConfig = TrainingConfig()
    rag: RagConfig | None = None
    agents: AgentsConfig | None = None
    kms: KmsConfig = KmsConfig()
    termination_protection: bool = False
    tags: dict[str, str] = {}

    @model_validator(mode="after")
    def _sections_fit(self) -> EnvironmentConfig:
        # Synth does no availability-zone lookup, so nothing else would catch a zone of another region.
        foreign = [zone for zone in self.network.availability_zones if not re.fullmatch(rf"{self.region}[a-z]", zone)]
        if foreign:
            raise ValueError(
                f"network.availability_zones {foreign} are not zones of region {self.region}; "
                f"use names like {self.region}a"
            )
        if self.agents is not None and self.agents.knowledge_base:
            if self.rag is None or self.rag.vector_store.deployment != "serverless":
                raise ValueError(
                    "agents.knowledge_base needs rag.vector_store.deployment: serverless "
                    "(Bedrock knowledge bases write to OpenSearch Serverless)"
                )
        return self


def load_environment(name: str, directory: Path = ENVIRONMENTS_DIR) -> EnvironmentConfig:
    """Load and validate ``directory/NAME.yaml``; raise ``ConfigError`` naming the bad key."""
    if not isinstance(name, str) or not ENVIRONMENT_NAME.match(name):
        raise ConfigError(f"env={name!r} is not a valid environment name; use one of {available_environments()}.")
    path = directory / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"env={name!r} has no config file {path}; use one of {available_environments()}.")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path.name}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path.name}: expected a mapping of keys at the top level.")
    try:
        return EnvironmentConfig(name=name, **raw)
    except ValidationError as error:
        raise ConfigError(f"{path.name}: " + _describe(error)) from None


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (misspelled?)"
        problems.append(f"{key}: {message}")
    return "; ".join(problems)
