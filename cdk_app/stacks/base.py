"""The base of the app's stacks: availability zones from the config, so synth never needs credentials."""

from __future__ import annotations

from aws_cdk import Stack
from constructs import Construct

from ..config import EnvironmentConfig


class EnvironmentStack(Stack):
    """A stack of one environment whose ``availability_zones`` are ``network.availability_zones`` of its config.

    ``Stack.availability_zones`` of a stack with a concrete account and region is a context lookup: an AWS call
    at synth time that needs credentials (and writes ``cdk.context.json``). ``ec2.Vpc`` reads it to check its
    zones, and any construct may; returning the configured zones keeps every synth offline.
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self._configured_zones = list(config.network.availability_zones)

    @property
    def availability_zones(self) -> list[str]:
        return list(self._configured_zones)
