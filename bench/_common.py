"""Shared helpers for the runtime benchmarks: a small model made offline, `genai serve` on a local port,
percentiles, results."""

from __future__ import annotations

import json
import os
import platform
import socket
import statistics
import threading
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
PROMPTS = [
    "#Person1#: Hi, how are you doing today? #Person2#: I am fine, thank you. Summarize the dialogue.",
    "Summarize the following conversation. #Person1#: Could you send me the report before Friday?",
    "Retrieval augmented generation adds relevant documents from a vector store to the prompt.",
    "Fine-tuning with LoRA trains a small adapter while the base model stays frozen.",
]


def small_model(folder: Path) -> Path:
    """A 4-layer, 256-wide Llama (about 4M parameters): big enough that generation dominates."""
    from genai_runtime.models.tiny import TinyModelSpec, write_tiny_model

    if not (folder / "config.json").exists():
        write_tiny_model(folder, TinyModelSpec(hidden_size=256, layers=4, heads=8, vocab_size=2000, context_length=512))
    return folder


def summary(latencies_s: list[float]) -> dict:
    ordered = sorted(latencies_s)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]

    return {
        "requests": len(ordered),
        "p50_ms": round(pct(50) * 1000, 2),
        "p95_ms": round(pct(95) * 1000, 2),
        "mean_ms": round(statistics.mean(ordered) * 1000, 2),
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def machine() -> dict:
    import torch

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def write(name: str, result: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return path


class GenaiServe:
    """The server ``genai serve`` runs (``build_server``: its limits, timeouts and drain) on a free local port."""

    def __init__(self, model_dir: Path) -> None:
        from genai_runtime.inference.engine import InferenceEngine
        from genai_runtime.inference.server import build_server

        self.engine = InferenceEngine(model_dir)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/invocations"
        self.server = build_server(self.engine, "127.0.0.1", port, log_level="warning")
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(60)
