"""Unstructured magnitude (L1) pruning of every linear layer to a target sparsity (book: 0.5)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from ..models.io import HELD_OUT_TEXT, load_causal_lm, perplexity, prepare_output_dir, write_report


@dataclass
class PruneReport:
    target_sparsity: float
    overall_sparsity: float
    per_layer: dict[str, float] = field(default_factory=dict)
    perplexity_before: float = 0.0
    perplexity_after: float = 0.0


def prune_model(
    model_dir: str | Path, out: str | Path, sparsity: float = 0.5, include_lm_head: bool = False
) -> PruneReport:
    import torch
    from torch.nn.utils import prune

    if not 0.0 < sparsity < 1.0:
        raise UsageError(f"--sparsity={sparsity}: must lie strictly between 0 and 1")
    out = prepare_output_dir(out)
    model, tokenizer = load_causal_lm(model_dir)
    before = perplexity(model, tokenizer, HELD_OUT_TEXT)
    layers = {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and (include_lm_head or not name.endswith("lm_head"))
    }
    if not layers:
        raise UsageError(f"--model={model_dir}: no linear layers to prune")
    for module in layers.values():
        prune.l1_unstructured(module, name="weight", amount=sparsity)
        prune.remove(module, "weight")  # make the zeros permanent, drop the mask
    report = PruneReport(target_sparsity=sparsity, overall_sparsity=0.0)
    zeros = total = 0
    for name, module in layers.items():
        layer_zeros = int((module.weight == 0).sum())
        report.per_layer[name] = layer_zeros / module.weight.numel()
        zeros += layer_zeros
        total += module.weight.numel()
    report.overall_sparsity = zeros / total
    report.perplexity_after = perplexity(model, tokenizer, HELD_OUT_TEXT)
    report.perplexity_before = before
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    write_report(out, "prune", report.__dict__)
    return report
