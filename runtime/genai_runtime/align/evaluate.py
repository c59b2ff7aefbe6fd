"""``genai align evaluate``: toxicity (and reward) of a base and a tuned model on the same held-out
prompts, sampled with the same seed and settings, as the book measures its detoxified model.

Toxicity is the classifier's probability of the bad label, ``1 - P(label)`` for the good ``label``
(``not_toxic``); the report gives mean and std before and after and the relative improvement
``(before - after) / before`` (the book: 0.0323 -> 0.0272, 15.8 %). With ``--reward-model`` the reward
model's scores before/after too, and a few sample generations side by side. Writes
``DIR/evaluation.json`` and ``DIR/evaluation.png`` (like ``genai train evaluate``'s eval.json/eval.png).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import UsageError


def sample_completions(
    model,
    tokenizer,
    prompts: Sequence[str],
    samples: int = 1,
    seed: int = 0,
    max_new_tokens: int = 24,
    min_new_tokens: int = 0,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    batch_size: int = 16,
) -> tuple[list[str], list[str]]:
    """``samples`` sampled completions per prompt (seeded: the same for the same model) and the prompt
    of each, in order."""
    import torch

    repeated = [p for p in prompts for _ in range(samples)]
    tokenizer.padding_side = "left"
    torch.manual_seed(seed)
    completions: list[str] = []
    for start in range(0, len(repeated), batch_size):
        batch = repeated[start : start + batch_size]
        encoded = tokenizer(batch, return_tensors="pt", padding=True).to(model.device)
        with torch.inference_mode():
            generated = model.generate(
                **encoded,
                do_sample=True,
                max_new_tokens=max_new_tokens,
                min_new_tokens=min_new_tokens,
                temperature=temperature,
                top_k=top_k or None,
                top_p=top_p,
                pad_token_id=tokenizer.pad_token_id,
            )
        completions += tokenizer.batch_decode(generated[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True)
    return completions, repeated


def completion_logprobs(model, tokenizer, prompts: Sequence[str], completions: Sequence[str]):
    """Sum of the log-probabilities of each completion's tokens given its prompt."""
    import torch

    totals = []
    for prompt, completion in zip(prompts, completions, strict=True):
        prompt_ids = tokenizer(prompt)["input_ids"]
        completion_ids = tokenizer(completion)["input_ids"] + [tokenizer.eos_token_id]
        ids = torch.tensor([prompt_ids + completion_ids], device=model.device)
        with torch.inference_mode():
            logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1].float()
        logprobs = logits.log_softmax(-1).gather(-1, ids[0, len(prompt_ids) :].unsqueeze(-1)).squeeze(-1)
        totals.append(float(logprobs.sum()))
    return totals


def mean_kl(model, tokenizer, prompts: Sequence[str], completions: Sequence[str], reference=None) -> float:
    """Monte Carlo KL(policy || reference) in nats per completion: the mean over the policy's own samples
    of ``sum_t log pi - log ref``. The reference is ``reference``, else the PEFT policy with its adapters
    disabled."""
    policy = completion_logprobs(model, tokenizer, prompts, completions)
    if reference is not None:
        ref = completion_logprobs(reference.to(model.device), tokenizer, prompts, completions)
    elif hasattr(model, "disable_adapter"):
        with model.disable_adapter():
            ref = completion_logprobs(model, tokenizer, prompts, completions)
    else:
        raise UsageError("a full-weight policy needs its reference model for the KL")
    return statistics.fmean(p - r for p, r in zip(policy, ref, strict=True))


def _stats(values: Sequence[float]) -> dict[str, float]:
    return {
        "mean": round(statistics.fmean(values), 4),
        "std": round(statistics.pstdev(values), 4) if len(values) > 1 else 0.0,
    }


def evaluate_alignment(
    base: str | Path,
    tuned: str | Path,
    classifier: str | Path,
    prompts: str | Path,
    out: str | Path,
    label: str = "not_toxic",
    reward_model: str | Path | None = None,
    samples: int = 4,
    seed: int = 0,
    max_new_tokens: int = 24,
    min_new_tokens: int = 4,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    show: int = 8,
) -> dict:
    from ..models.io import load_causal_lm
    from .rl import RewardModelReward, read_prompts, relative_improvement
    from .toxicity import ClassifierScorer

    held_out = read_prompts(Path(prompts))
    scorer = ClassifierScorer(classifier, label=label, output="probability")
    sampling: dict[str, Any] = {
        "samples": samples,
        "seed": seed,
        "max_new_tokens": max_new_tokens,
        "min_new_tokens": min_new_tokens,
        "temperature": temperature,
        "top_k": top_k,
        "top_p": top_p,
    }
    base_model, base_tokenizer = load_causal_lm(base)
    before, repeated = sample_completions(base_model, base_tokenizer, held_out, **sampling)
    tuned_model, tuned_tokenizer = _load_tuned(Path(base), Path(tuned))
    after, _ = sample_completions(tuned_model, tuned_tokenizer, held_out, **sampling)

    toxic_before = [1.0 - p for p in scorer(before)]
    toxic_after = [1.0 - p for p in scorer(after)]
    stats_before, stats_after = _stats(toxic_before), _stats(toxic_after)
    report: dict = {
        "prompts": len(held_out),
        "samples_per_prompt": samples,
        "sampling": {k: v for k, v in sampling.items() if k != "samples"},
        "toxicity": {
            "definition": f"1 - P({label}) of the classifier {Path(classifier).name}",
            "before": stats_before,
            "after": stats_after,
            "relative_improvement": relative_improvement(statistics.fmean(toxic_before), statistics.fmean(toxic_after)),
        },
    }
    reward_before = reward_after = None
    if reward_model is not None:
        rm = RewardModelReward(reward_model)
        reward_before = rm(prompts=repeated, completions=before)
        reward_after = rm(prompts=repeated, completions=after)
        report["reward"] = {
            "before": _stats(reward_before),
            "after": _stats(reward_after),
            "gain": round(statistics.fmean(reward_after) - statistics.fmean(reward_before), 4),
        }
    report["samples"] = [
        {
            "prompt": prompt,
            "before": b,
            "after": a,
            "toxicity_before": round(tb, 4),
            "toxicity_after": round(ta, 4),
            **(
                {"reward_before": round(reward_before[i], 4), "reward_after": round(reward_after[i], 4)}
                if reward_before is not None and reward_after is not None
                else {}
            ),
        }
        for i, (prompt, b, a, tb, ta) in enumerate(zip(repeated, before, after, toxic_before, toxic_after, strict=True))
    ][:show]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n")
    rl_log = Path(tuned).parent / "rl_log.jsonl"
    plot(report, _read_jsonl(rl_log) if rl_log.is_file() else [], out / "evaluation.png")
    return report


def _load_tuned(base: Path, tuned: Path):
    """A full model folder, or a PEFT adapter put on ``--base`` (not on the path its config recorded at
    training time, which need not exist here)."""
    from ..models.io import load_causal_lm, require_model_dir

    if not (tuned / "adapter_config.json").is_file():
        return load_causal_lm(require_model_dir(tuned, "--tuned"))
    from peft import PeftModel
    from transformers import AutoTokenizer

    model, tokenizer = load_causal_lm(base)
    if (tuned / "tokenizer_config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(tuned)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
    return PeftModel.from_pretrained(model, tuned).eval(), tokenizer


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot(report: dict, rl_log: list[dict], path: Path) -> Path:
    """Toxicity before/after (mean, std) and, when the tuned model's rl_log.jsonl is next to it, the
    reward and KL per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (bars, curve) = plt.subplots(1, 2, figsize=(10, 4))
    toxicity = report["toxicity"]
    bars.bar(
        ["before", "after"],
        [toxicity["before"]["mean"], toxicity["after"]["mean"]],
        yerr=[toxicity["before"]["std"], toxicity["after"]["std"]],
        capsize=6,
        color=["tab:red", "tab:green"],
    )
    improvement = toxicity["relative_improvement"]
    bars.set(
        title=f"toxicity on held-out prompts ({improvement:.1%} better)" if improvement is not None else "toxicity",
        ylabel=toxicity["definition"],
    )
    steps = [e["step"] for e in rl_log if e.get("reward") is not None]
    if steps:
        curve.plot(steps, [e["reward"] for e in rl_log if e.get("reward") is not None], marker="o", label="reward")
        kl = [(e["step"], e["kl"]) for e in rl_log if e.get("kl") is not None]
        if kl:
            curve.plot(*zip(*kl, strict=True), marker="x", label="KL to reference")
        curve.legend()
    curve.set(title="RL training", xlabel="step")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
