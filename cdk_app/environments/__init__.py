"""One YAML file per deployment environment; ``cdk synth -c env=NAME`` picks ``NAME.yaml``.

Kept free of CDK imports so tools can list environments without loading aws-cdk-lib.
"""

from __future__ import annotations

from pathlib import Path

ENVIRONMENTS_DIR = Path(__file__).parent


def available_environments() -> list[str]:
    return sorted(path.stem for path in ENVIRONMENTS_DIR.glob("*.yaml"))
