"""``genai optimize``: turn a fine-tuned model into a deployable artifact."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("optimize", help="merge, quantize, prune, distill, compile, package")
    group.add_subparsers(dest="command", metavar="COMMAND", required=True)
