"""Steps/s of `genai train sft` (config, templates, trl SFTTrainer, completion-only loss) against a
plain transformers ``Trainer`` loop on the same tiny model, LoRA settings and data, in one run.
Goal: overhead under 5 %.

    PYTHONPATH=. .venv/bin/python -m bench.train_overhead [--steps 100 --repeat 3]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
from pathlib import Path

from bench._common import machine, small_model, write

NAMES = ["Anna", "Ben", "Carl", "Dana", "Eve", "Finn"]


def dialogues(path: Path, rows: int = 200) -> Path:
    rng = random.Random(0)
    lines = []
    for _ in range(rows):
        a, b = rng.sample(NAMES, 2)
        lines.append(
            json.dumps(
                {
                    "dialogue": f"#Person1#: {a} asks {b} about the report. #Person2#: {b} sends it "
                    "on Friday after the meeting with the team.",
                    "summary": f"{b} will send {a} the report on Friday.",
                }
            )
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def plain_trainer(model_dir: Path, examples: list[dict], steps: int, out: Path) -> float:
    """Baseline: tokenize prompt+completion, LoRA via peft, transformers.Trainer with a LM collator."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainingArguments,
    )

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model = get_peft_model(
        model,
        LoraConfig(
            r=16,
            lora_alpha=32,
            lora_dropout=0.05,
            task_type="CAUSAL_LM",
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        ),
    )
    texts = [e["prompt"] + e["completion"] + tokenizer.eos_token for e in examples]
    dataset = Dataset.from_dict({"text": texts}).map(
        lambda batch: tokenizer(batch["text"], truncation=True, max_length=512), batched=True, remove_columns=["text"]
    )
    arguments = TrainingArguments(
        output_dir=str(out),
        max_steps=steps,
        per_device_train_batch_size=4,
        learning_rate=2e-4,
        logging_steps=1000,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=42,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=arguments,
        train_dataset=dataset,
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
    )
    return float(trainer.train().metrics["train_steps_per_second"])


def ours(model_dir: Path, data: Path, steps: int, out: Path) -> float:
    from genai_runtime.train.config import load_config
    from genai_runtime.train.sft import run_sft

    config = load_config(
        overrides={
            "model": str(model_dir),
            "data.train": str(data),
            "output_dir": str(out),
            "mode": "lora",
            "training.max_steps": steps,
            "training.save_steps": 10_000,
            "training.logging_steps": 1000,
            "evaluate": False,
        }
    )
    return run_sft(config, progress=False).steps_per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from genai_runtime.train.data import read_rows, split, to_instructions

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = small_model(tmp / "model")
        data = dialogues(tmp / "dialogues.jsonl")
        examples = split(to_instructions(read_rows(data), "samsum", "dialogue", "summary", seed=42), 0.1, 0.1, seed=42)[
            "train"
        ]
        baseline, genai = [], []
        for i in range(args.repeat):  # alternate, and which goes first, so drift hits both alike
            runs = [
                lambda i=i: baseline.append(plain_trainer(model_dir, examples, args.steps, tmp / f"plain{i}")),
                lambda i=i: genai.append(ours(model_dir, data, args.steps, tmp / f"ours{i}")),
            ]
            for run in runs if i % 2 == 0 else reversed(runs):
                run()
    result = {
        "benchmark": "genai train sft (LoRA) vs a plain transformers Trainer loop, same model/data/settings",
        "machine": machine(),
        "steps": args.steps,
        "baseline_plain_trainer_steps_per_s": baseline,
        "genai_train_sft_steps_per_s": genai,
        "overhead_percent": round((statistics.median(baseline) / statistics.median(genai) - 1) * 100, 2),
        "goal": "overhead under 5 %",
    }
    write("train_overhead", result)


if __name__ == "__main__":
    main()
