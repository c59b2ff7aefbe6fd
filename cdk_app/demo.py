"""``make demo``: synthesize every environment with the real CDK CLI, check each template with
cdk-nag (AwsSolutions, during synth) and cfn-lint, and print a per-stack summary.

Exits non-zero on any synth failure, unacknowledged cdk-nag error or cfn-lint error.
Needs no AWS account or credentials.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .environments import available_environments

ROOT = Path(__file__).resolve().parent.parent
CDK_CLI = ROOT / "node_modules" / ".bin" / "cdk"


@dataclass
class StackReport:
    environment: str
    name: str
    template: Path
    resource_types: Counter = field(default_factory=Counter)
    nag_acknowledged: int = 0
    lint_errors: list[str] = field(default_factory=list)
    lint_warnings: list[str] = field(default_factory=list)

    @property
    def resources(self) -> int:
        return sum(self.resource_types.values())


@dataclass
class SynthResult:
    environment: str
    outdir: Path
    returncode: int
    output: str
    seconds: float


def synth_environment(env_name: str, outdir: Path, builtin_validation: bool = False) -> SynthResult:
    """Run ``cdk synth -c env=NAME`` into ``outdir``; cdk-nag runs inside the app and fails it on errors.

    ``builtin_validation`` keeps CDK's own CloudFormation validation pass, which cfn-lint makes redundant.
    """
    if not CDK_CLI.exists():
        raise SystemExit(f"CDK CLI not found at {CDK_CLI}: run `make setup` first.")
    environ = {
        **os.environ,
        "CDK_VALIDATION": "true" if builtin_validation else "false",
        "AWS_EC2_METADATA_DISABLED": "true",  # no credential lookups on a machine without an account
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
        "CDK_DISABLE_VERSION_CHECK": "1",
    }
    started = time.perf_counter()
    process = subprocess.run(
        [
            str(CDK_CLI),
            "synth",
            "--quiet",
            "--no-notices",
            "--no-version-reporting",
            "-c",
            f"env={env_name}",
            "-o",
            str(outdir),
        ],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
    )
    return SynthResult(
        env_name, outdir, process.returncode, process.stdout + process.stderr, time.perf_counter() - started
    )


def synth_all(environments: list[str], out_root: Path) -> list[SynthResult]:
    """Synthesize the environments in parallel (each is its own CLI + Python process)."""
    with ThreadPoolExecutor(max_workers=len(environments)) as pool:
        return list(pool.map(lambda e: synth_environment(e, out_root / e), environments))


def stack_templates(outdir: Path) -> dict[str, Path]:
    """Stack name -> template path, from the cloud assembly manifest."""
    manifest = json.loads((outdir / "manifest.json").read_text())
    return {
        name: outdir / artifact["properties"]["templateFile"]
        for name, artifact in manifest["artifacts"].items()
        if artifact["type"] == "aws:cloudformation:stack"
    }


def lint_template(template: Path) -> tuple[list[str], list[str]]:
    """cfn-lint errors and warnings of one template."""
    from cfnlint.api import lint_file

    errors, warnings = [], []
    for match in lint_file(template):
        line = f"{match.rule.id} {match.message} ({template.name}:{match.linenumber})"
        (errors if match.rule.id.startswith("E") else warnings).append(line)
    return errors, warnings


def report_stack(environment: str, name: str, template: Path) -> StackReport:
    body = json.loads(template.read_text())
    report = StackReport(environment, name, template)
    for resource in body.get("Resources", {}).values():
        report.resource_types[resource["Type"]] += 1
        acknowledged = resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
        report.nag_acknowledged += sum(1 for rule in acknowledged if rule["id"].startswith("AwsSolutions-"))
    report.lint_errors, report.lint_warnings = lint_template(template)
    return report


def print_summary(reports: list[StackReport], out_root: Path) -> None:
    print(f"\n{'stack':34} {'resources':>9} {'nag errors':>10} {'nag acked':>9} {'lint E':>6} {'lint W':>6}")
    for r in reports:
        print(
            f"{r.name:34} {r.resources:9d} {0:10d} {r.nag_acknowledged:9d} "
            f"{len(r.lint_errors):6d} {len(r.lint_warnings):6d}"
        )
    for r in reports:
        top = ", ".join(f"{t.removeprefix('AWS::')} {n}" for t, n in r.resource_types.most_common(6))
        print(f"  {r.name}: {top}{', ...' if len(r.resource_types) > 6 else ''}")
        for line in r.lint_errors + r.lint_warnings:
            print(f"    {line}")
    print(f"\nTemplates: {out_root}/<env>/<stack>.template.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cdk_app.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--env",
        action="append",
        choices=available_environments(),
        help="environment to synthesize (repeatable; default: all)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "cdk.out" / "demo", help="where the templates go")
    args = parser.parse_args(argv)
    environments = args.env or available_environments()

    started = time.perf_counter()
    results = synth_all(environments, args.out)
    failed = [r for r in results if r.returncode != 0]
    for r in results:
        print(f"synth {r.environment:8} {'ok' if r.returncode == 0 else 'FAILED'} in {r.seconds:.1f}s")
    for r in failed:
        print(f"\n--- cdk synth -c env={r.environment} failed (cdk-nag errors or a bad config) ---\n{r.output}")
    if failed:
        return 1

    templates = [(r.environment, name, path) for r in results for name, path in stack_templates(r.outdir).items()]
    with ThreadPoolExecutor(max_workers=2) as pool:
        reports = list(pool.map(lambda t: report_stack(*t), templates))
    print_summary(reports, args.out)
    lint_errors = sum(len(r.lint_errors) for r in reports)
    print(
        f"{len(reports)} stacks in {len(environments)} environments, cdk-nag AwsSolutions: 0 errors, "
        f"cfn-lint: {lint_errors} errors; {time.perf_counter() - started:.1f}s"
    )
    return 1 if lint_errors else 0


if __name__ == "__main__":
    sys.exit(main())
