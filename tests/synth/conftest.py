"""Synthesize every environment once per session with the real CDK CLI (cdk-nag runs inside)."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from aws_cdk.assertions import Template

from cdk_app.demo import CDK_CLI, ROOT, stack_templates, synth_all
from cdk_app.environments import available_environments


@dataclass
class SynthesizedApp:
    root: Path
    templates: dict[tuple[str, str], Path]  # (environment, stack name) -> template file

    def body(self, env: str, stack: str) -> dict:
        return json.loads(self.templates[(env, f"genai-{env}-{stack}")].read_text())

    def template(self, env: str, stack: str) -> Template:
        return Template.from_json(self.body(env, stack))


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory) -> SynthesizedApp:
    root = tmp_path_factory.mktemp("cdk.out")
    results = synth_all(available_environments(), root)
    failures = [f"env={r.environment}:\n{r.output}" for r in results if r.returncode != 0]
    assert not failures, "cdk synth failed (cdk-nag errors fail the synth):\n" + "\n".join(failures)
    templates = {(r.environment, name): path for r in results for name, path in stack_templates(r.outdir).items()}
    return SynthesizedApp(root, templates)


# Variables through which the AWS SDKs and the CDK CLI find credentials; an offline synth has none of them.
CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "CDK_DEFAULT_ACCOUNT",
    "CDK_DEFAULT_REGION",
)


def offline_environ(home: Path, **extra: str) -> dict[str, str]:
    """``os.environ`` without any AWS credentials: no variables, empty config files, no instance metadata."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "aws-config").write_text("")
    (home / "aws-credentials").write_text("")
    environ = {key: value for key, value in os.environ.items() if key not in CREDENTIAL_VARIABLES}
    environ.update(
        HOME=str(home),  # no ~/.aws, no ~/.cdk.json
        AWS_CONFIG_FILE=str(home / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        CDK_VALIDATION="false",
        CDK_DISABLE_VERSION_CHECK="1",
        JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION="1",
    )
    environ.update(extra)
    return environ


def cdk_synth(outdir: Path, environ: dict[str, str], *context: str) -> subprocess.CompletedProcess:
    """``cdk synth`` of the shipped app with the real CLI (as ``synth_environment``), ``-c KEY=VALUE`` each."""
    command = [str(CDK_CLI), "synth", "--quiet", "--no-notices", "--no-version-reporting", "-o", str(outdir)]
    for item in context:
        command += ["-c", item]
    return subprocess.run(command, cwd=ROOT, env=environ, capture_output=True, text=True)
