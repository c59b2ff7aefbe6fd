"""``genai align dpo``: direct preference optimisation on the same pairs, with trl's ``DPOTrainer``.

DPO skips the reward model and the RL loop: it raises the policy's implicit reward
beta·(log π(y|x) − log π_ref(y|x)) of the chosen response above the rejected one's
(loss −log σ(reward_chosen − reward_rejected), trl's ``sigmoid`` loss). LoRA is the default: the reference
is then the frozen base itself (trl disables the adapter for the reference pass), so no second copy of the
model is held in memory. ``lora.enabled: false`` trains in full against a frozen copy.

``method: orpo`` runs ORPO (Hong et al. 2024), which trl 1.16 still ships, in ``trl.experimental.orpo``:
supervised loss on the chosen response plus beta (λ) times an odds-ratio preference term, no reference
model at all. Its implicit reward is beta · the mean per-token log-probability, so for ORPO the
preference accuracy compares those (the before value is then the base model's own preference).

Outputs, in ``output_dir``: ``model/`` (the adapter, or the full model, with the tokenizer), ``merged/``
with ``merge_adapter: true``, and ``metrics.json``: ``{"method": "dpo", "preference_accuracy",
"preference_accuracy_before", "reward_margin", ...}`` on the held-out pairs (split by prompt). For DPO the
policy starts equal to the reference, so every implicit reward is 0 before training and the before
accuracy (strictly prefers chosen) is 0 by construction; ``reference_likelihood_accuracy`` adds the
base model's own likelihood preference log π_ref(chosen) > log π_ref(rejected) for comparison.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from .config import DpoRunConfig
from .preferences import read_pairs, split_by_prompt
from .reward import load_tokenizer, lora_targets, start_model, trainer_arguments

log = logging.getLogger(__name__)


def completion_logps(
    model, tokenizer, pairs: Sequence[dict[str, str]], key: str, max_length: int = 512, batch_size: int = 16
) -> tuple[list[float], list[int]]:
    """Sum of log π(completion tokens | prompt) per pair, and the completion lengths, tokenized as trl's
    ``DPOTrainer`` does (prompt, prompt + completion + EOS, the completion from where they diverge)."""
    import torch

    eos = tokenizer.eos_token or ""
    sequences: list[tuple[list[int], int]] = []
    for pair in pairs:
        prompt_ids = tokenizer(text=pair["prompt"])["input_ids"]
        completion = pair[key] if pair[key].endswith(eos) else pair[key] + eos
        full = tokenizer(text=pair["prompt"] + completion)["input_ids"]
        start = 0
        while start < min(len(prompt_ids), len(full)) and prompt_ids[start] == full[start]:
            start += 1
        sequences.append((full[:max_length], min(start, len(full[:max_length]))))
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    sums: list[float] = []
    lengths: list[int] = []
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with torch.no_grad():
        for first in range(0, len(sequences), batch_size):
            batch = sequences[first : first + batch_size]
            width = max(len(ids) for ids, _ in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            completion_mask = torch.zeros((len(batch), width), dtype=torch.bool)
            for row, (tokens, start) in enumerate(batch):
                ids[row, : len(tokens)] = torch.tensor(tokens)
                mask[row, : len(tokens)] = 1
                completion_mask[row, start : len(tokens)] = True
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False).logits.float()
            logps = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:].to(device).unsqueeze(-1))[..., 0]
            target = completion_mask[:, 1:].to(device)
            sums.extend(float(v) for v in (logps * target).sum(dim=1).cpu())
            lengths.extend(int(v) for v in target.sum(dim=1).cpu())
    model.train(was_training)
    return sums, lengths


def preference_accuracy(
    policy: tuple[list[float], list[float]], reference: tuple[list[float], list[float]] | None, beta: float
) -> tuple[float, float]:
    """Share of pairs whose implicit reward prefers chosen, and the mean reward margin.

    With a reference (DPO): reward = beta·(log π − log π_ref). Without (ORPO): reward = beta·log π, the
    per-token mean log-probabilities given in ``policy``.
    """
    chosen, rejected = policy
    if not chosen:
        return float("nan"), float("nan")
    if reference is not None:
        chosen = [c - r for c, r in zip(chosen, reference[0], strict=True)]
        rejected = [c - r for c, r in zip(rejected, reference[1], strict=True)]
    margins = [beta * (c - r) for c, r in zip(chosen, rejected, strict=True)]
    return sum(m > 0 for m in margins) / len(margins), sum(margins) / len(margins)


def _held_out_logps(model, tokenizer, pairs, config: DpoRunConfig) -> tuple[list[float], list[float]]:
    chosen, chosen_len = completion_logps(model, tokenizer, pairs, "chosen", config.training.max_length)
    rejected, rejected_len = completion_logps(model, tokenizer, pairs, "rejected", config.training.max_length)
    if config.method == "orpo":  # ORPO's log-probabilities are per-token means
        chosen = [s / max(n, 1) for s, n in zip(chosen, chosen_len, strict=True)]
        rejected = [s / max(n, 1) for s, n in zip(rejected, rejected_len, strict=True)]
    return chosen, rejected


def run_dpo(config: DpoRunConfig, progress: bool = True) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, set_seed

    pairs = read_pairs(config.data.train)
    train, held_out = split_by_prompt(pairs, config.data.validation_fraction, config.training.seed)
    folder = start_model(config.model, config.base)
    tokenizer = load_tokenizer(folder)
    set_seed(config.training.seed)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    peft_config = None
    if config.lora.enabled:
        peft_config = LoraConfig(
            task_type="CAUSAL_LM",
            r=config.lora.r,
            lora_alpha=config.lora.alpha,
            lora_dropout=config.lora.dropout,
            target_modules=lora_targets(config.lora.target_modules, model.config.model_type),
        )
    common: dict[str, Any] = dict(trainer_arguments(config, progress), beta=config.beta)
    config.checkpoints.mkdir(parents=True, exist_ok=True)
    # The reference is the starting policy (the frozen base, or with LoRA the base with the adapter off):
    # its held-out log-probabilities are measured once, before training.
    reference = _held_out_logps(model, tokenizer, held_out, config)
    if config.method == "orpo":
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer

        trainer: Any = ORPOTrainer(
            model=model,
            args=ORPOConfig(**common),
            train_dataset=Dataset.from_list(train),
            processing_class=tokenizer,
            peft_config=peft_config,
        )
        before, margin_before = preference_accuracy(reference, None, config.beta)
    else:
        from trl import DPOConfig, DPOTrainer

        trainer = DPOTrainer(
            model=model,
            args=DPOConfig(**common),
            train_dataset=Dataset.from_list(train),
            processing_class=tokenizer,
            peft_config=peft_config,
        )
        before, margin_before = preference_accuracy(
            _held_out_logps(trainer.model, tokenizer, held_out, config), reference, config.beta
        )
    output = trainer.train()
    policy = _held_out_logps(trainer.model, tokenizer, held_out, config)
    after, margin = preference_accuracy(policy, None if config.method == "orpo" else reference, config.beta)
    likelihood = sum(c > r for c, r in zip(*reference, strict=True)) / len(held_out) if held_out else float("nan")

    model_dir = config.output_dir / "model"
    trainer.save_model(str(model_dir))
    tokenizer.save_pretrained(model_dir)
    merged_dir = None
    if config.merge_adapter and peft_config is not None:
        merged_dir = config.output_dir / "merged"
        trainer.model.merge_and_unload().save_pretrained(merged_dir)
        tokenizer.save_pretrained(merged_dir)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in trainer.model.parameters())
    metrics = {
        "method": config.method,
        "preference_accuracy": after,
        "preference_accuracy_before": before,
        "reward_margin": margin,
        "reward_margin_before": margin_before,
        "reference_likelihood_accuracy": likelihood,
        "beta": config.beta,
        "pairs": len(held_out),
        "train_pairs": len(train),
        "lora": config.lora.enabled,
        "trainable_parameters": trainable,
        "total_parameters": total,
        "global_step": trainer.state.global_step,
        "losses": [(e["step"], e["loss"]) for e in trainer.state.log_history if "loss" in e],
        "train_runtime_s": float(output.metrics.get("train_runtime", 0.0)),
        "model_dir": str(model_dir),
        "merged_dir": str(merged_dir) if merged_dir else None,
    }
    (config.output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
