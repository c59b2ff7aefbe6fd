"""genai-cdk: AWS CDK constructs for generative-AI workloads in production.

Import the constructs from here::

    from genai_cdk import LmiEndpoint, LmiOptions, ModelArtifact, Variant, Autoscaling, Rollout
"""

from .alarms import EndpointAlarms
from .autoscaling import Autoscaling, StepScaling
from .data_capture import DataCapture
from .instance_types import INSTANCE_SPECS, InstanceSpec, instance_spec
from .lmi_endpoint import LmiEndpoint
from .lmi_image import LmiImage
from .lmi_options import LmiOptions
from .model_artifact import ModelArtifact
from .notifications import encrypted_alarm_topic
from .rollout import Rollout
from .variant import Variant

__all__ = [
    "INSTANCE_SPECS",
    "Autoscaling",
    "DataCapture",
    "EndpointAlarms",
    "InstanceSpec",
    "LmiEndpoint",
    "LmiImage",
    "LmiOptions",
    "ModelArtifact",
    "Rollout",
    "StepScaling",
    "Variant",
    "encrypted_alarm_topic",
    "instance_spec",
]
