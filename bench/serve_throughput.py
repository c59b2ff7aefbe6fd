"""Generated tokens per second of `genai serve` at 1, 4 and 16 concurrent clients, against plain
``model.generate`` in a loop (one prompt at a time), same model, prompts and max_new_tokens, greedy,
in one run.

Ours: the server `genai serve` runs (``build_server``: uvicorn on localhost, its limits and
timeouts on), httpx clients, one connection per client thread; the engine batches requests that
queue up (``--max-batch-size`` 8, the CLI default). Each round measures baseline, 1 client,
baseline, 4 clients, baseline, 16 clients, baseline: each served measurement is compared with the
mean of the two baseline measurements around it, so that machine drift (a shared machine) hits
both alike; the reported ratio is the median of those per-round ratios. Greedy outputs are the
same either way, so a request's generated tokens are counted once, on the baseline, and the
served texts are checked against it.

    PYTHONPATH=. .venv/bin/python -m bench.serve_throughput [--requests 48 --max-new-tokens 32 --repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench._common import PROMPTS, GenaiServe, machine, small_model, summary, write

CONCURRENCY = (1, 4, 16)


class Baseline:
    """``model.generate`` on the same weights in-process: no server, no batching."""

    def __init__(self, model_dir: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()

    def __call__(self, prompt: str, max_new_tokens: int) -> tuple[int, str]:
        """(generated tokens, generated text)."""
        with self.torch.inference_mode():
            encoded = self.tokenizer([prompt], return_tensors="pt")
            output = self.model.generate(
                **encoded,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new_tokens = output[:, encoded["input_ids"].shape[1] :]
        return new_tokens.shape[1], self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)[0]


def run_baseline(model: Baseline, prompts: list[str], max_new_tokens: int) -> tuple[float, dict[str, tuple]]:
    """(seconds, prompt -> (tokens, text))."""
    outputs = {}
    started = time.perf_counter()
    for prompt in prompts:
        outputs[prompt] = model(prompt, max_new_tokens)
    return time.perf_counter() - started, outputs


def run_served(url: str, prompts: list[str], max_new_tokens: int, clients: int) -> tuple[float, list, list[str]]:
    """(wall seconds, per-request latencies, generated texts in prompt order)."""
    import httpx

    local = threading.local()
    made: list[httpx.Client] = []

    def call(prompt: str) -> tuple[float, str]:
        client = getattr(local, "client", None)
        if client is None:  # one connection per client thread, kept alive, as a real client would
            client = local.client = httpx.Client(timeout=300)
            made.append(client)
        started = time.perf_counter()
        response = client.post(url, json={"inputs": prompt, "parameters": {"max_new_tokens": max_new_tokens}})
        response.raise_for_status()
        return time.perf_counter() - started, response.json()[0]["generated_text"]

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(call, prompts))
    wall = time.perf_counter() - started
    for client in made:
        client.close()
    return wall, [latency for latency, _ in results], [text for _, text in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=48, help="requests per measurement")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    prompts = (PROMPTS * (args.requests // len(PROMPTS) + 1))[: args.requests]

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = small_model(Path(tmp) / "model")
        baseline = Baseline(model_dir)
        server = GenaiServe(model_dir)
        try:
            _, reference = run_baseline(baseline, PROMPTS, args.max_new_tokens)  # warm-up both paths
            run_served(server.url, PROMPTS * 4, args.max_new_tokens, max(CONCURRENCY))
            tokens = sum(reference[prompt][0] for prompt in prompts)
            baseline_tps: list[float] = []
            served: dict[int, dict[str, list]] = {
                c: {"tps": [], "ratios": [], "latencies": [], "calls": []} for c in CONCURRENCY
            }
            matches = total = 0

            def measure_baseline() -> float:
                seconds, _ = run_baseline(baseline, prompts, args.max_new_tokens)
                baseline_tps.append(tokens / seconds)
                return baseline_tps[-1]

            for _ in range(args.repeat):
                before = measure_baseline()
                for clients in CONCURRENCY:
                    calls_before = server.engine.batches_run
                    wall, latencies, texts = run_served(server.url, prompts, args.max_new_tokens, clients)
                    after = measure_baseline()
                    data = served[clients]
                    data["tps"].append(tokens / wall)
                    data["ratios"].append(tokens / wall / ((before + after) / 2))
                    data["latencies"] += latencies
                    data["calls"].append(server.engine.batches_run - calls_before)
                    matches += sum(text == reference[p][1] for p, text in zip(prompts, texts, strict=True))
                    total += len(texts)
                    before = after
        finally:
            server.stop()

    result = {
        "benchmark": "generated tokens/s: genai serve (uvicorn on localhost, httpx clients) at 1/4/16 concurrent "
        "clients vs model.generate in a loop, one prompt at a time; same model, prompts, "
        "max_new_tokens, greedy; one run",
        "model": "bench._common.small_model: 4-layer, 256-wide Llama, fp32 on CPU",
        "max_new_tokens": args.max_new_tokens,
        "requests_per_measurement": len(prompts),
        "generated_tokens_per_measurement": tokens,
        "rounds": args.repeat,
        "machine": machine(),
        "baseline_generate_loop": {
            "tokens_per_s": [round(v, 1) for v in baseline_tps],
            "median_tokens_per_s": round(statistics.median(baseline_tps), 1),
        },
        "serve": {
            str(clients): {
                "tokens_per_s": [round(v, 1) for v in data["tps"]],
                "median_tokens_per_s": round(statistics.median(data["tps"]), 1),
                "ratio_vs_adjacent_baseline": [round(v, 3) for v in data["ratios"]],
                "ratio_vs_baseline": round(statistics.median(data["ratios"]), 3),
                "latency": summary(data["latencies"]),
                "generate_calls_per_measurement": data["calls"],
            }
            for clients, data in served.items()
        },
        "ratio": "serve tokens/s over the mean of the baselines measured just before and after it; median of rounds",
        "served_texts_equal_baseline": f"{matches}/{total}",
        "engine": "max_batch_size 8, batch_window_ms 0 (the genai serve defaults)",
    }
    write("serve_throughput", result)


if __name__ == "__main__":
    main()
