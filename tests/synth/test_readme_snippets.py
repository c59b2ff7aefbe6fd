"""Docs that cannot rot: every ```python block of README.md runs as a program and exits 0.

The blocks are read from README.md's text at test time (nothing is copied here). Each runs in a fresh
subprocess, from a temporary folder, with no AWS credentials anywhere. A CDK program ends with ``app.synth()``
and may make no context lookup (its manifest lists nothing ``missing``). Where it adds cdk-nag's
``AwsSolutionsChecks``, its ``app.synth()`` runs the rules over the whole app (and fails on an unacknowledged
error); a second run with a non-compliant canary stack added to the app shows the rules really ran.

Two first-line markers:

- ``# file: PATH``: a file of the reader's project (e.g. a Lambda handler). It is written at PATH in the
  folder of every block, and itself run as ``python PATH``.
- ``# not run: REASON``: a block that cannot run here; it is skipped, and there may be at most
  ``MAX_NOT_RUN`` of them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass

import pytest

from cdk_app.demo import ROOT
from tests.synth.conftest import offline_environ

pytestmark = pytest.mark.slow

README = ROOT / "README.md"
FILE_MARKER = re.compile(r"^# file: (\S+)")
NOT_RUN_MARKER = re.compile(r"^# not run: (.+)")
MAX_NOT_RUN = 1
TIMEOUT_S = 300
# Runs a snippet (argv[1]) with a stack cdk-nag must refuse added to its app just before it synthesizes.
NAG_CANARY = """\
import runpy
import sys

import aws_cdk
from aws_cdk import aws_s3 as s3

synth = aws_cdk.App.synth


def synth_with_canary(self, *args, **kwargs):
    s3.Bucket(aws_cdk.Stack(self, "NagCanary"), "Bucket")  # no access logs, no TLS-only policy
    return synth(self, *args, **kwargs)


aws_cdk.App.synth = synth_with_canary
runpy.run_path(sys.argv[1], run_name="__main__")
"""


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    heading: str
    code: str

    @property
    def first_line(self) -> str:
        return self.code.splitlines()[0] if self.code.strip() else ""

    @property
    def file_path(self) -> str | None:
        match = FILE_MARKER.match(self.first_line)
        return match.group(1) if match else None

    @property
    def not_run_reason(self) -> str | None:
        match = NOT_RUN_MARKER.match(self.first_line)
        return match.group(1) if match else None

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.heading.lower()).strip("-")[:40]
        return f"L{self.line}-{slug}"


def python_blocks(text: str) -> list[Block]:
    """The ```python blocks of a Markdown text, with the heading each sits under."""
    blocks, heading, fence, start, lines = [], "", None, 0, []
    for number, line in enumerate(text.splitlines(), start=1):
        if fence is None:
            if line.startswith("#"):
                heading = line.lstrip("#").strip()
            elif line.startswith("```"):
                fence, start, lines = line[3:].strip(), number, []
        elif line.strip() == "```":
            if fence == "python":
                blocks.append(Block(start, heading, "\n".join(lines) + "\n"))
            fence = None
        else:
            lines.append(line)
    assert fence is None, f"README.md: the code block opened on line {start} is never closed"
    return blocks


BLOCKS = python_blocks(README.read_text())
FILES = {block.file_path: block.code for block in BLOCKS if block.file_path}


def test_the_readme_has_its_python_blocks():
    assert len(BLOCKS) >= 8, [block.id for block in BLOCKS]
    not_run = [block.id for block in BLOCKS if block.not_run_reason]
    assert len(not_run) <= MAX_NOT_RUN, f"too many blocks marked '# not run': {not_run}"


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_readme_block_runs(block: Block, tmp_path):
    if block.not_run_reason:
        pytest.skip(f"README.md line {block.line}: not run: {block.not_run_reason}")
    work = tmp_path / "app"
    work.mkdir()
    for path, code in FILES.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(code)
    program = block.file_path or "readme_snippet.py"
    if not block.file_path:
        (work / program).write_text(block.code)
    nag = "AwsSolutionsChecks" in block.code
    outdir = work / "cdk.out"
    environ = offline_environ(
        tmp_path / "home",
        CDK_OUTDIR=str(outdir),
        CDK_CONTEXT_JSON=json.dumps({"@aws-cdk/core:validationReportJson": True} if nag else {}),
    )
    environ.pop("PYTHONPATH", None)  # a reader's own app: the installed genai_cdk, not this repository's root
    process = subprocess.run(
        [sys.executable, program], cwd=work, env=environ, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    where = f"README.md line {block.line} ({block.heading})"
    assert process.returncode == 0, f"{where} exited {process.returncode}:\n{process.stdout}\n{process.stderr}"

    if "App(" not in block.code:
        return
    last = [line for line in block.code.splitlines() if line.strip()][-1]
    assert last.startswith("app.synth()"), f"{where}: a CDK program ends with app.synth(), not {last!r}"
    manifest = json.loads((outdir / "manifest.json").read_text())
    assert manifest.get("missing", []) == [], f"{where}: synth asked for context lookups {manifest['missing']}"
    stacks = [a for a in manifest["artifacts"].values() if a["type"] == "aws:cloudformation:stack"]
    assert stacks, f"{where}: synthesized no stack"
    if nag:
        # A passing plugin reports nothing: prove the rules ran by adding a bucket they must refuse.
        (work / "with_nag_canary.py").write_text(NAG_CANARY)
        canary = subprocess.run(
            [sys.executable, "with_nag_canary.py", program],
            cwd=work,
            env=environ,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
        assert canary.returncode != 0, f"{where}: cdk-nag let a bucket without access logs through"
        report = json.loads((outdir / "policy-validation-report.json").read_text())
        violations = {
            (violation["ruleName"], resource["constructPath"])
            for plugin in report["pluginReports"]
            for violation in plugin["violations"]
            for resource in violation["violatingResources"]
        }
        assert ("AwsSolutions-S1", "NagCanary/Bucket/Resource") in violations, violations
        snippet_findings = {v for v in violations if not v[1].startswith("NagCanary/")}
        assert not snippet_findings, f"{where}: cdk-nag findings in the snippet's own stacks: {snippet_findings}"
