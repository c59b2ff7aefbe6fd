"""Tiny models built once per session: a 2-layer Llama and two LoRA adapters (tenants)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from genai_runtime.models.tiny import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny_adapters(tiny_model, tmp_path_factory) -> Path:
    """``adapters/tenant-a`` and ``adapters/tenant-b``: randomly initialised LoRA adapters, so each
    changes the model's output (a fresh LoRA's B matrix is zero and would change nothing)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("adapters")
    for seed, name in enumerate(["tenant-a", "tenant-b"], start=1):
        torch.manual_seed(seed)
        base = AutoModelForCausalLM.from_pretrained(tiny_model)
        config = LoraConfig(
            r=4, lora_alpha=32, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM"
        )
        get_peft_model(base, config).save_pretrained(root / name)
    return root


@pytest.fixture(scope="session")
def engine(tiny_model, tiny_adapters):
    from genai_runtime.inference.engine import InferenceEngine

    engine = InferenceEngine(tiny_model, tiny_adapters, max_batch_size=8, batch_window_ms=20)
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def dialogues(tmp_path_factory) -> Path:
    """40 samsum-style rows (dialogue -> summary), the same for every training test."""
    names = ["Anna", "Ben", "Carl", "Dana", "Eve", "Finn"]
    things = ["report", "train", "meeting", "lunch", "movie"]
    rng = random.Random(0)
    rows = []
    for _ in range(40):
        a, b = rng.sample(names, 2)
        thing = rng.choice(things)
        rows.append(
            {
                "dialogue": f"#Person1#: {a} asks {b} about the {thing}. #Person2#: {b} says it is at noon.",
                "summary": f"{b} tells {a} the {thing} is at noon.",
            }
        )
    path = tmp_path_factory.mktemp("data") / "dialogues.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
