"""Build the shipped app for one environment (``cdk synth|deploy -c env=NAME``)."""

from __future__ import annotations

import os
from pathlib import Path

from aws_cdk import App, Environment, Stack, Tags, Validations
from cdk_nag import AwsSolutionsChecks

from .config import EnvironmentConfig, load_environment
from .stacks import AgentsStack, InferenceStack, NetworkStack, RagStack, TrainingStack

DEFAULT_ENVIRONMENT = "dev"


def stack_environment(config: EnvironmentConfig) -> Environment:
    """Account/region from the config, else the CLI's ``CDK_DEFAULT_*``; no credentials are needed."""
    return Environment(
        account=config.account or os.environ.get("CDK_DEFAULT_ACCOUNT"),
        region=config.region or os.environ.get("CDK_DEFAULT_REGION"),
    )


def build_stacks(app: App, config: EnvironmentConfig) -> list[Stack]:
    env = stack_environment(config)
    prefix = f"genai-{config.name}"
    common = dict(env=env, termination_protection=config.termination_protection)
    network = NetworkStack(
        app, f"{prefix}-network", config=config, description=f"genai-cdk {config.name}: VPC and flow logs", **common
    )
    inference = InferenceStack(
        app,
        f"{prefix}-inference",
        config=config,
        vpc=network.vpc,
        description=f"genai-cdk {config.name}: LMI endpoints, alarms, dashboard",
        **common,
    )
    stacks: list[Stack] = [network, inference]
    if config.training.cluster is not None or config.training.pipeline is not None:
        stacks.append(
            TrainingStack(
                app,
                f"{prefix}-training",
                config=config,
                vpc=network.vpc,
                description=f"genai-cdk {config.name}: training cluster and pipeline",
                **common,
            )
        )
    rag = None
    if config.rag is not None:
        rag = RagStack(
            app,
            f"{prefix}-rag",
            config=config,
            vpc=network.vpc,
            llm=inference.endpoint,
            description=f"genai-cdk {config.name}: vector store, ingestion, RAG query API",
            **common,
        )
        stacks.append(rag)
    if config.agents is not None:
        knowledge_base = rag.knowledge_base.attachment if rag is not None and rag.knowledge_base else None
        stacks.append(
            AgentsStack(
                app,
                f"{prefix}-agents",
                config=config,
                vpc=network.vpc,
                knowledge_base=knowledge_base,
                description=f"genai-cdk {config.name}: Bedrock agent, agent API, governance",
                **common,
            )
        )
    for key, value in config.tags.items():
        Tags.of(app).add(key, value)
    return stacks


def build_app(app: App | None = None, env_name: str | None = None) -> tuple[App, list[Stack]]:
    """Create the stacks of ``env_name`` (default: the ``env`` context, else dev) with cdk-nag attached.

    The ``env_dir`` context (``-c env_dir=DIR``) reads ``DIR/NAME.yaml`` instead of the shipped environments.
    """
    app = app or App()
    env_name = env_name or app.node.try_get_context("env") or DEFAULT_ENVIRONMENT
    env_dir = app.node.try_get_context("env_dir")
    config = load_environment(env_name, Path(env_dir)) if env_dir else load_environment(env_name)
    stacks = build_stacks(app, config)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True))
    return app, stacks
