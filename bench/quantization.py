"""int8 (torchao, CPU) vs fp32: weight size and generation latency of the same model, same run.

.venv/bin/python -m bench.quantization [--requests 20] [--max-new-tokens 32]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench._common import PROMPTS, machine, small_model, summary, write


def latencies(model_dir: Path, prompts: list[str], max_new_tokens: int) -> list[float]:
    from genai_runtime.inference.engine import InferenceEngine
    from genai_runtime.inference.schema import parse_request

    engine = InferenceEngine(model_dir)
    try:
        requests = [parse_request({"inputs": p, "parameters": {"max_new_tokens": max_new_tokens}}) for p in prompts]
        engine.generate(requests[0])  # warm-up
        out = []
        for request in requests:
            started = time.perf_counter()
            engine.generate(request)
            out.append(time.perf_counter() - started)
        return out
    finally:
        engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args()
    prompts = (PROMPTS * (args.requests // len(PROMPTS) + 1))[: args.requests]
    from genai_runtime.optimize.quantize import quantize_int8

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = small_model(Path(tmp) / "fp32")
        report = quantize_int8(fp32, Path(tmp) / "int8")
        fp32_latency = summary(latencies(fp32, prompts, args.max_new_tokens))
        int8_latency = summary(latencies(Path(tmp) / "int8", prompts, args.max_new_tokens))
    result = {
        "benchmark": "int8 weight-only (torchao) vs fp32, same model, same prompts, same run",
        "machine": machine(),
        "max_new_tokens": args.max_new_tokens,
        "fp32": {"weight_bytes": report.bytes_before, "perplexity": round(report.perplexity_before, 3), **fp32_latency},
        "int8": {"weight_bytes": report.bytes_after, "perplexity": round(report.perplexity_after, 3), **int8_latency},
        "size_ratio": round(report.size_ratio, 3),
        "latency_ratio_p50": round(int8_latency["p50_ms"] / fp32_latency["p50_ms"], 3),
        "max_logit_difference": round(report.max_logit_difference, 5),
    }
    write("quantization", result)


if __name__ == "__main__":
    main()
