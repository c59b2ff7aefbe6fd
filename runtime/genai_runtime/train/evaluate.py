"""ROUGE-1/2/L of a model's completions on held-out examples, before vs after fine-tuning
(``rouge_score`` directly: ``evaluate.load`` fetches metrics from the hub), plus a plot of the
loss curve and the before/after table."""

from __future__ import annotations

import json
from pathlib import Path

from genai_contracts.evaluation import ROUGE_METRICS as METRICS

from ..models.io import load_causal_lm


def generate_completions(model, tokenizer, prompts: list[str], max_new_tokens: int = 48) -> list[str]:
    import torch

    tokenizer.padding_side = "left"
    outputs = []
    for start in range(0, len(prompts), 8):
        batch = prompts[start : start + 8]
        encoded = tokenizer(batch, return_tensors="pt", padding=True)
        with torch.inference_mode():
            generated = model.generate(
                **encoded, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
        outputs += tokenizer.batch_decode(generated[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True)
    return [text.strip() for text in outputs]


def rouge(predictions: list[str], references: list[str]) -> dict[str, float]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(METRICS), use_stemmer=True)
    totals = dict.fromkeys(METRICS, 0.0)
    for prediction, reference in zip(predictions, references, strict=True):
        for name, score in scorer.score(reference, prediction).items():
            totals[name] += score.fmeasure
    count = max(len(predictions), 1)
    return {name: round(total / count, 4) for name, total in totals.items()}


def load_trained(model_dir: Path):
    """A full model folder, or a PEFT adapter on top of the base it names."""
    if (model_dir / "adapter_config.json").is_file():
        from peft import AutoPeftModelForCausalLM
        from transformers import AutoTokenizer

        model = AutoPeftModelForCausalLM.from_pretrained(model_dir).eval()
        return model, AutoTokenizer.from_pretrained(model_dir)
    return load_causal_lm(model_dir)


def evaluate_before_after(
    base_dir: Path,
    trained_dir: Path,
    test_file: Path,
    out: Path,
    losses: list[tuple[int, float]] | None = None,
    max_examples: int = 64,
) -> dict:
    examples = [json.loads(line) for line in test_file.read_text().splitlines() if line.strip()][:max_examples]
    if not examples:
        return {}
    prompts = [e["prompt"] for e in examples]
    references = [e["completion"].strip() for e in examples]
    base, tokenizer = load_causal_lm(base_dir)
    before = rouge(generate_completions(base, tokenizer, prompts), references)
    trained, trained_tokenizer = load_trained(trained_dir)
    after = rouge(generate_completions(trained, trained_tokenizer, prompts), references)
    report = {
        "examples": len(examples),
        "before": before,
        "after": after,
        "improvement": {k: round(after[k] - before[k], 4) for k in METRICS},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, losses or [], out / "eval.png")
    return report


def plot(report: dict, losses: list[tuple[int, float]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (curve, table) = plt.subplots(1, 2, figsize=(10, 4))
    if losses:
        steps, values = zip(*losses, strict=True)
        curve.plot(steps, values, marker="o")
    curve.set(title="training loss", xlabel="step", ylabel="loss")
    table.axis("off")
    rows = [[name, f"{report['before'][name]:.3f}", f"{report['after'][name]:.3f}"] for name in METRICS]
    table.table(cellText=rows, colLabels=["metric", "before", "after"], loc="center")
    table.set_title(f"ROUGE on {report['examples']} held-out examples")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def evaluate_output(base_dir: str | Path, trained: str | Path, out: str | Path) -> dict:
    """Evaluate an sft output folder (or the training job's ``model.tar.gz`` of it): its ``model/``
    against the base on its own ``test.jsonl``."""
    import tarfile
    import tempfile

    from ..errors import UsageError

    trained, out = Path(trained), Path(out)
    if trained.is_file() and trained.name.endswith(".tar.gz"):
        root = Path(tempfile.mkdtemp(prefix="genai-eval-"))
        with tarfile.open(trained) as archive:
            archive.extractall(root, filter="data")
        trained = root
    if trained.is_dir() and (trained / "model.tar.gz").is_file() and not (trained / "model").is_dir():
        return evaluate_output(base_dir, trained / "model.tar.gz", out)
    if not (trained / "model").is_dir() or not (trained / "test.jsonl").is_file():
        raise UsageError(f"--trained={trained}: expected an sft output with model/ and test.jsonl")
    losses = []
    metrics = trained / "train_metrics.json"
    if metrics.is_file():
        losses = [tuple(pair) for pair in json.loads(metrics.read_text()).get("losses", [])]
    report = evaluate_before_after(Path(base_dir), trained / "model", trained / "test.jsonl", out, losses)
    if not report:
        raise UsageError(f"--trained={trained}: test.jsonl holds no examples; raise data.test_fraction")
    return report
