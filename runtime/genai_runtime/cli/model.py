"""``genai model``: tiny offline models and memory estimates."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._args import positive_float


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("model", help="tiny models for tests/demos, memory estimates")
    sub = group.add_subparsers(dest="command", metavar="COMMAND", required=True)

    tiny = sub.add_parser("tiny", help="write a small random causal LM with a locally trained tokenizer")
    tiny.add_argument("--out", type=Path, required=True, help="new folder to write the model to")
    tiny.add_argument("--arch", choices=("llama", "gpt2"), default="llama")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(run=_tiny)

    memory = sub.add_parser("memory", help="memory to load (infer) or fully fine-tune (train) a model")
    memory.add_argument("--params", type=positive_float, required=True, help="parameter count, e.g. 7e9")
    memory.add_argument("--dtype", choices=("fp32", "fp16", "bf16", "int8", "int4"), default="fp32")
    memory.add_argument("--mode", choices=("infer", "train"), default="infer")
    memory.add_argument("--json", action="store_true", help="print JSON")
    memory.set_defaults(run=_memory)


def _tiny(args: argparse.Namespace) -> int:
    from ..models.tiny import TinyModelSpec, write_tiny_model

    out = write_tiny_model(args.out, TinyModelSpec(arch=args.arch, seed=args.seed))
    print(f"wrote a tiny {args.arch} model to {out}")
    return 0


def _memory(args: argparse.Namespace) -> int:
    from ..models.memory import estimate_memory

    estimate = estimate_memory(args.params, args.dtype, args.mode)
    if args.json:
        print(json.dumps(estimate.as_dict()))
    else:
        what = "to load" if args.mode == "infer" else "to fully fine-tune (Adam)"
        print(
            f"{args.params:.3g} parameters in {args.dtype}: {estimate.bytes_per_parameter:g} bytes each, "
            f"{estimate.gib:.1f} GiB {what}"
        )
    return 0
