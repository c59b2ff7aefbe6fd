"""Synth never needs credentials: a concrete account (the CLI's or the config's) makes no context lookup.

``Stack.availability_zones`` of a stack with a concrete account and region is a lookup (an AWS call, and a
``cdk.context.json`` entry); the app's stacks return the configured zones instead. Each test synthesizes the
shipped app with the real CDK CLI and no credentials anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cdk_app.demo import ROOT, stack_templates
from cdk_app.environments import ENVIRONMENTS_DIR
from tests.synth.conftest import cdk_synth, offline_environ

pytestmark = pytest.mark.slow

ACCOUNT = "123456789012"
CONTEXT_FILE = ROOT / "cdk.context.json"


def context_lookups() -> str | None:
    """What ``cdk.context.json`` holds (the CLI writes it when the app asks for a lookup), or None."""
    return CONTEXT_FILE.read_text() if CONTEXT_FILE.exists() else None


def assert_synthesized_offline(process, outdir: Path, env: str, region: str, before: str | None) -> set[str]:
    """Check the synth succeeded without lookups for the account; return the zones of the VPC's subnets."""
    assert process.returncode == 0, f"cdk synth -c env={env} failed:\n{process.stdout}{process.stderr}"
    assert "credentials" not in process.stderr, process.stderr
    manifest = json.loads((outdir / "manifest.json").read_text())
    assert manifest.get("missing", []) == [], manifest["missing"]  # no context lookup was asked for
    assert context_lookups() == before, "cdk synth wrote cdk.context.json (a lookup)"
    stacks = [a for a in manifest["artifacts"].values() if a["type"] == "aws:cloudformation:stack"]
    assert stacks and {a["environment"] for a in stacks} == {f"aws://{ACCOUNT}/{region}"}
    # The VPC's subnets sit in the configured zones, written out literally (no Fn::GetAZs, no dummy zones).
    network = json.loads(stack_templates(outdir)[f"genai-{env}-network"].read_text())
    zones = {
        r["Properties"]["AvailabilityZone"] for r in network["Resources"].values() if r["Type"] == "AWS::EC2::Subnet"
    }
    return zones


def test_synth_with_cdk_default_account_needs_no_credentials(tmp_path):
    before = context_lookups()
    environ = offline_environ(tmp_path / "home", CDK_DEFAULT_ACCOUNT=ACCOUNT, CDK_DEFAULT_REGION="us-west-2")
    outdir = tmp_path / "cdk.out"
    process = cdk_synth(outdir, environ, "env=dev")
    # dev.yaml sets its region (us-east-1), which wins over CDK_DEFAULT_REGION; the account is the CLI's.
    zones = assert_synthesized_offline(process, outdir, "dev", "us-east-1", before)
    assert zones == {"us-east-1a", "us-east-1b"}


def test_synth_with_the_account_pinned_in_the_yaml_needs_no_credentials(tmp_path):
    before = context_lookups()
    environments = tmp_path / "environments"
    environments.mkdir()
    shipped = (ENVIRONMENTS_DIR / "prod.yaml").read_text()
    assert "account:" not in shipped
    (environments / "prod.yaml").write_text(f'account: "{ACCOUNT}"\n' + shipped)
    outdir = tmp_path / "cdk.out"
    process = cdk_synth(outdir, offline_environ(tmp_path / "home"), "env=prod", f"env_dir={environments}")
    zones = assert_synthesized_offline(process, outdir, "prod", "us-east-1", before)
    assert zones == {"us-east-1a", "us-east-1b", "us-east-1c"}
