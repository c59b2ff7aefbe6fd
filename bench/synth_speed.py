"""How long `make demo` takes to synthesize every environment, against the plain way.

Baseline: `cdk synth` per environment one after another with CDK's built-in CloudFormation
validation on (what a bare `cdk synth` does). Ours: the environments in parallel with the built-in
pass off (cfn-lint checks every template afterwards anyway). Same CLI, same app, same run.

    .venv/bin/python -m bench.synth_speed [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from cdk_app.demo import synth_all, synth_environment
from cdk_app.environments import available_environments

RESULTS = Path(__file__).parent / "results" / "synth_speed.json"


def _serial_with_validation(environments: list[str], out: Path) -> float:
    started = time.perf_counter()
    for env in environments:
        result = synth_environment(env, out / env, builtin_validation=True)
        assert result.returncode == 0, result.output
    return time.perf_counter() - started


def _parallel_without_validation(environments: list[str], out: Path) -> float:
    started = time.perf_counter()
    results = synth_all(environments, out)
    assert all(r.returncode == 0 for r in results), [r.output for r in results if r.returncode]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    environments = available_environments()
    baseline, ours = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            baseline.append(_serial_with_validation(environments, Path(tmp) / f"base{i}"))
            ours.append(_parallel_without_validation(environments, Path(tmp) / f"ours{i}"))
    result = {
        "benchmark": "synthesize every environment with the CDK CLI (cdk-nag included)",
        "environments": environments,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "baseline_serial_builtin_validation_s": [round(t, 2) for t in baseline],
        "ours_parallel_no_builtin_validation_s": [round(t, 2) for t in ours],
        "median_baseline_s": round(statistics.median(baseline), 2),
        "median_ours_s": round(statistics.median(ours), 2),
        "speedup": round(statistics.median(baseline) / statistics.median(ours), 2),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
