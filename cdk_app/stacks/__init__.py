"""The stacks the shipped app composes from the construct library."""

from .agents import AgentsStack
from .inference import InferenceStack
from .network import NetworkStack
from .rag import RagStack
from .training import TrainingStack

__all__ = ["AgentsStack", "InferenceStack", "NetworkStack", "RagStack", "TrainingStack"]
