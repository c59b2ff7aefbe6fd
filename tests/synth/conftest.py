"""Synthesize every environment once per session with the real CDK CLI (cdk-nag runs inside)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from aws_cdk.assertions import Template

from cdk_app.demo import stack_templates, synth_all
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
