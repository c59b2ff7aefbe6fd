"""The ``genai`` command: subcommands grouped by life-cycle stage.

    genai model tiny|memory      models for tests and demos; memory estimates
    genai train sft|submit       instruction fine-tuning; start the deployed pipeline
    genai serve                  a local SageMaker-contract inference server
    genai optimize ...           merge, quantize, prune, distill, compile, package
    genai rag ingest|query       build a vector index from documents; retrieve and answer
    genai agent invoke|local     a deployed Bedrock agent; a ReAct/PAL loop with your LLM
    genai align pairs|reward|dpo human rankings to preference pairs; reward model; DPO/ORPO

Each group lives in its own module and imports heavy libraries only when its command runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import UsageError
from . import agent, align, model, optimize, rag, serve, train

GROUPS = (model, train, serve, optimize, rag, agent, align)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genai", description="genai-cdk runtime: models, training, serving, optimization, RAG."
    )
    commands = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)
    for group in GROUPS:
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except UsageError as error:
        print(f"genai: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
