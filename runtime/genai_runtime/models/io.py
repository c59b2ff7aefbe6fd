"""Loading, saving and measuring model folders (shared by optimize, serve and train)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..errors import UsageError

HELD_OUT_TEXT = [
    "#Person1#: Could you summarize the meeting for me? #Person2#: We agreed to ship the report on Friday.",
    "Retrieval augmented generation adds relevant documents to the prompt before the model answers.",
]


def require_model_dir(path: str | Path, flag: str = "--model") -> Path:
    path = Path(path)
    if not (path / "config.json").is_file():
        raise UsageError(f"{flag}={path}: not a model folder (no config.json)")
    return path


def prepare_output_dir(path: str | Path, flag: str = "--out") -> Path:
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UsageError(f"{flag}={path}: exists and is not an empty folder; choose a new folder")
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_causal_lm(path: str | Path, **kwargs):
    """Model (eval mode, CPU fp32 unless told otherwise) and tokenizer from a folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = require_model_dir(path)
    kwargs.setdefault("dtype", torch.float32)
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def folder_bytes(path: str | Path, pattern: str = "*") -> int:
    """Bytes of the weight files in a model folder (safetensors/bin), or of everything matching."""
    path = Path(path)
    weights = [p for p in path.glob(pattern) if p.is_file() and p.suffix in (".safetensors", ".bin", ".pt")]
    return sum(p.stat().st_size for p in weights)


def logits(model, tokenizer, texts: list[str]):
    import torch

    encoded = tokenizer(texts, return_tensors="pt", padding=True)
    with torch.inference_mode():
        return model(**encoded).logits.float(), encoded["attention_mask"]


def perplexity(model, tokenizer, texts: list[str]) -> float:
    """exp of the mean next-token cross-entropy over ``texts`` (padding ignored)."""
    import torch

    encoded = tokenizer(texts, return_tensors="pt", padding=True)
    labels = encoded["input_ids"].masked_fill(encoded["attention_mask"] == 0, -100)
    with torch.inference_mode():
        loss = model(**encoded, labels=labels).loss
    return float(math.exp(loss.item()))


def max_logit_difference(model_a, model_b, tokenizer, texts: list[str]) -> float:
    a, mask = logits(model_a, tokenizer, texts)
    b, _ = logits(model_b, tokenizer, texts)
    return float(((a - b).abs() * mask.unsqueeze(-1)).max())


def read_texts(path: Path, flag: str = "--dataset", minimum: int = 1) -> list[str]:
    """Texts from a .txt file (one per line) or a .jsonl file with a 'text' field."""
    if not path.is_file():
        raise UsageError(f"{flag}={path}: not a file (one text per line, or JSONL with a 'text' field)")
    texts = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        if path.suffix == ".jsonl":
            try:
                texts.append(str(json.loads(line)["text"]))
            except (json.JSONDecodeError, KeyError, TypeError):
                raise UsageError(f"{flag}={path}: line {number} is not a JSON object with 'text'") from None
        else:
            texts.append(line.strip())
    if len(texts) < minimum:
        raise UsageError(f"{flag}={path}: needs at least {minimum} text(s), found {len(texts)}")
    return texts


def write_report(out: Path, name: str, report: dict) -> Path:
    path = out / f"{name}_report.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path
