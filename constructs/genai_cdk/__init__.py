"""genai-cdk: AWS CDK constructs for generative-AI workloads in production.

Import the constructs from here::

    from genai_cdk import LmiEndpoint, LmiOptions, ModelArtifact, Variant, Autoscaling, Rollout

Names load on first use, so code that needs only the pure-Python option types (e.g. the
container runtime rendering ``serving.properties``) never loads aws-cdk-lib.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "EndpointAlarms": "alarms",
    "Autoscaling": "autoscaling",
    "StepScaling": "autoscaling",
    "DataCapture": "data_capture",
    "INSTANCE_SPECS": "instance_types",
    "InstanceSpec": "instance_types",
    "instance_spec": "instance_types",
    "LmiEndpoint": "lmi_endpoint",
    "LmiImage": "lmi_image",
    "LmiOptions": "lmi_options",
    "ModelArtifact": "model_artifact",
    "encrypted_alarm_topic": "notifications",
    "Rollout": "rollout",
    "InstanceGroup": "trainium_cluster",
    "FineTuningPipeline": "fine_tuning_pipeline",
    "QualityGate": "fine_tuning_pipeline",
    "TrainingImage": "fine_tuning_pipeline",
    "TrainingJobSettings": "fine_tuning_pipeline",
    "TrainiumCluster": "trainium_cluster",
    "Variant": "variant",
    "VectorStore": "vector_store",
    "DomainDeployment": "vector_store",
    "ServerlessDeployment": "vector_store",
    "IngestionPipeline": "ingestion_pipeline",
    "RagApi": "rag_api",
    "Throttle": "rest_api",
    "JsonPostApi": "rest_api",
    "EmbeddingModel": "rag_models",
    "BedrockAgent": "bedrock_agent",
    "ActionGroup": "bedrock_agent",
    "GuardrailPolicy": "bedrock_agent",
    "DeniedTopic": "bedrock_agent",
    "KnowledgeBaseAttachment": "bedrock_agent",
    "ClaimsActionGroup": "claims_action_group",
    "AgentApi": "agent_api",
    "KnowledgeBase": "knowledge_base",
    "BedrockGovernance": "bedrock_governance",
    "BedrockAlarms": "bedrock_governance",
    "TextGenerator": "rag_models",
    "PreferenceCollection": "preference_collection",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'genai_cdk' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from .agent_api import AgentApi
    from .alarms import EndpointAlarms
    from .autoscaling import Autoscaling, StepScaling
    from .bedrock_agent import ActionGroup, BedrockAgent, DeniedTopic, GuardrailPolicy, KnowledgeBaseAttachment
    from .bedrock_governance import BedrockAlarms, BedrockGovernance
    from .claims_action_group import ClaimsActionGroup
    from .data_capture import DataCapture
    from .fine_tuning_pipeline import FineTuningPipeline, QualityGate, TrainingImage, TrainingJobSettings
    from .ingestion_pipeline import IngestionPipeline
    from .instance_types import INSTANCE_SPECS, InstanceSpec, instance_spec
    from .knowledge_base import KnowledgeBase
    from .lmi_endpoint import LmiEndpoint
    from .lmi_image import LmiImage
    from .lmi_options import LmiOptions
    from .model_artifact import ModelArtifact
    from .notifications import encrypted_alarm_topic
    from .preference_collection import PreferenceCollection
    from .rag_api import RagApi
    from .rag_models import EmbeddingModel, TextGenerator
    from .rest_api import JsonPostApi, Throttle
    from .rollout import Rollout
    from .trainium_cluster import InstanceGroup, TrainiumCluster
    from .variant import Variant
    from .vector_store import DomainDeployment, ServerlessDeployment, VectorStore
