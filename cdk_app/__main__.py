"""Entry point of ``cdk.json``: ``cdk synth -c env=prod``."""

from __future__ import annotations

import sys

from .app import build_app
from .config import ConfigError


def main() -> int:
    try:
        app, _ = build_app()
    except (ConfigError, ValueError) as error:
        print(f"genai-cdk: {error}", file=sys.stderr)
        return 2
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
