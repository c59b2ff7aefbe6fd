"""The stacks the shipped app composes from the construct library."""

from .inference import InferenceStack
from .network import NetworkStack
from .rag import RagStack
from .training import TrainingStack

__all__ = ["InferenceStack", "NetworkStack", "RagStack", "TrainingStack"]
