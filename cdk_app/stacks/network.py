"""The environment's VPC: private subnets with NAT egress, flow logs, an S3 gateway endpoint."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from ..config import EnvironmentConfig
from .base import EnvironmentStack


class NetworkStack(EnvironmentStack):
    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, **kwargs) -> None:
        super().__init__(scope, construct_id, config=config, **kwargs)
        network = config.network
        flow_logs = logs.LogGroup(
            self,
            "FlowLogs",
            removal_policy=RemovalPolicy.RETAIN if config.name == "prod" else RemovalPolicy.DESTROY,
        )
        # RetentionDays is an enum of names in Python; the L1 takes the validated number directly.
        flow_logs.node.default_child.retention_in_days = network.flow_log_retention_days
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(network.cidr),
            availability_zones=network.availability_zones,
            nat_gateways=network.nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=20),
            ],
            flow_logs={
                "all": ec2.FlowLogOptions(
                    destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
                    traffic_type=ec2.FlowLogTrafficType.ALL,
                )
            },
            gateway_endpoints={"s3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3)},
        )
