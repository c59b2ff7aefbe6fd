"""What `genai serve` adds on top of the model's own ``generate``, in the same run.

Baseline: ``model.generate`` called directly, one request at a time. Ours: the same prompts and
parameters through HTTP -> Starlette -> InferenceEngine -> ``generate`` (batch 1, one client),
interleaved request by request, and with 8 concurrent clients, where the engine batches requests
that queue up. The engine also counts the time spent inside ``generate``, so the server's own
share of each request is measured directly. Goal: server overhead under 5 % of generation time
at batch 1.

    .venv/bin/python -m bench.server_overhead [--requests 40] [--max-new-tokens 32]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench._common import PROMPTS, GenaiServe, machine, small_model, summary, write


class DirectModel:
    """The baseline: the same weights, ``model.generate`` called in-process, no server."""

    def __init__(self, model_dir: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()

    def __call__(self, prompt: str, max_new_tokens: int) -> float:
        started = time.perf_counter()
        with self.torch.inference_mode():
            encoded = self.tokenizer([prompt], return_tensors="pt")
            output = self.model.generate(
                **encoded, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=self.tokenizer.pad_token_id
            )
            self.tokenizer.batch_decode(output[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True)
        return time.perf_counter() - started


def through_server(url: str, prompts: list[str], max_new_tokens: int, clients: int) -> tuple[list[float], float]:
    import httpx

    body = {"parameters": {"max_new_tokens": max_new_tokens}}
    local = threading.local()

    def call(prompt: str) -> float:
        client = getattr(local, "client", None) or httpx.Client(timeout=120)
        local.client = client
        started = time.perf_counter()
        response = client.post(url, json={**body, "inputs": prompt})
        response.raise_for_status()
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        latencies = list(pool.map(call, prompts))
    return latencies, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    args = parser.parse_args()
    prompts = (PROMPTS * (args.requests // len(PROMPTS) + 1))[: args.requests]
    import httpx

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = small_model(Path(tmp) / "model")
        baseline_model = DirectModel(model_dir)
        server = GenaiServe(model_dir)
        client = httpx.Client(timeout=120)
        try:
            for prompt in prompts[:4]:  # warm-up both paths
                baseline_model(prompt, args.max_new_tokens)
                client.post(server.url, json={"inputs": prompt, "parameters": {"max_new_tokens": args.max_new_tokens}})
            # Interleave the two paths request by request, so machine drift hits both alike.
            baseline, served, inside = [], [], []
            for prompt in prompts:
                baseline.append(baseline_model(prompt, args.max_new_tokens))
                generate_before = server.engine.generate_seconds
                started = time.perf_counter()
                client.post(server.url, json={"inputs": prompt, "parameters": {"max_new_tokens": args.max_new_tokens}})
                served.append(time.perf_counter() - started)
                inside.append(server.engine.generate_seconds - generate_before)
            sequential_wall = sum(served)
            batches_before = server.engine.batches_run
            concurrent, concurrent_wall = through_server(server.url, prompts, args.max_new_tokens, 8)
            batches = server.engine.batches_run - batches_before
        finally:
            client.close()
            server.stop()
    base, ours = summary(baseline), summary(served)
    around = [total - gen for total, gen in zip(served, inside, strict=True)]
    result = {
        "benchmark": "genai serve vs model.generate, same prompts and parameters, interleaved in one run",
        "max_new_tokens": args.max_new_tokens,
        "machine": machine(),
        "baseline_direct_generate": {**base, "requests_per_s": round(len(baseline) / sum(baseline), 2)},
        "server_batch1_one_client": {**ours, "requests_per_s": round(len(served) / sequential_wall, 2)},
        "server_8_concurrent_clients": {
            **summary(concurrent),
            "requests_per_s": round(len(concurrent) / concurrent_wall, 2),
            "generate_calls": batches,
        },
        "server_time_outside_generate_ms": summary(around),
        "overhead_vs_generate_time_percent": round(sum(around) / sum(inside) * 100, 2),
        "end_to_end_vs_direct_mean_percent": round((ours["mean_ms"] - base["mean_ms"]) / base["mean_ms"] * 100, 2),
        "goal": "server overhead under 5 % of generation time at batch 1",
    }
    write("server_overhead", result)


if __name__ == "__main__":
    main()
