"""``genai serve``: the SageMaker container contract on a local port."""

from __future__ import annotations

import argparse
import math

from ._args import existing_dir, model_dir, port, positive_float, positive_int


def _seconds(text: str) -> float:
    value = positive_float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r}: give a finite number of seconds")
    return value


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("serve", help="serve a model folder over HTTP (GET /ping, POST /invocations)")
    parser.add_argument("--model", type=model_dir, required=True, help="model folder (config.json, weights, tokenizer)")
    parser.add_argument("--adapters", type=existing_dir, help="folder of LoRA adapters, one sub-folder per name")
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 inside a container (default: %(default)s)")
    parser.add_argument("--port", type=port, default=8080, help="SageMaker uses 8080 (default: %(default)s)")
    parser.add_argument(
        "--max-batch-size",
        type=positive_int,
        default=8,
        help="inputs per generate call when concurrent requests are batched",
    )
    parser.add_argument(
        "--header-timeout",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="request headers must be complete this long after connecting (or after the previous "
        "response), else 408 and the connection closes (default: %(default)s)",
    )
    parser.add_argument(
        "--body-timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="a request body that takes longer to arrive is answered 408 (default: %(default)s)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="on SIGTERM, how long queued and in-flight requests may still finish; the rest "
        "get 503 (default: %(default)s)",
    )
    parser.set_defaults(run=_serve)


def _serve(args: argparse.Namespace) -> int:
    from ..errors import require

    require("starlette", "runtime", "genai serve needs starlette and uvicorn")
    from ..inference.engine import InferenceEngine
    from ..inference.server import serve

    engine = InferenceEngine(args.model, args.adapters, max_batch_size=args.max_batch_size)
    print(f"serving {args.model} on http://{args.host}:{args.port} (adapters: {engine.adapters or 'none'})")
    serve(
        engine,
        args.host,
        args.port,
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        drain_timeout=args.drain_timeout,
    )
    return 0
