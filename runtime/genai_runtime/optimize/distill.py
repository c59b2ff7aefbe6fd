"""Knowledge distillation of a student from a teacher (book, chapter 8):
``loss = alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T)) + (1 - alpha) * CE(student, labels)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import UsageError
from ..models.io import HELD_OUT_TEXT, load_causal_lm, perplexity, prepare_output_dir, read_texts, write_report


@dataclass
class DistillReport:
    temperature: float
    alpha: float
    steps: int
    losses: list[float] = field(default_factory=list)
    student_perplexity_before: float = 0.0
    student_perplexity_after: float = 0.0


def distillation_loss(student_logits, teacher_logits, labels, temperature: float, alpha: float):
    """Temperature-scaled KL to the teacher's soft targets plus the hard-label cross-entropy."""
    import torch.nn.functional as F

    vocab = student_logits.shape[-1]
    mask = labels[:, 1:] != -100
    s = student_logits[:, :-1][mask] / temperature
    t = teacher_logits[:, :-1][mask] / temperature
    soft = (
        F.kl_div(F.log_softmax(s, dim=-1), F.log_softmax(t, dim=-1), log_target=True, reduction="batchmean")
        * temperature**2
    )
    hard = F.cross_entropy(student_logits[:, :-1].reshape(-1, vocab), labels[:, 1:].reshape(-1), ignore_index=-100)
    return alpha * soft + (1 - alpha) * hard


def distill(
    teacher_dir: str | Path,
    student_dir: str | Path,
    dataset: str | Path,
    out: str | Path,
    *,
    temperature: float = 2.0,
    alpha: float = 0.5,
    epochs: int = 1,
    batch_size: int = 4,
    learning_rate: float = 5e-4,
    max_length: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> DistillReport:
    import torch
    from tqdm.auto import tqdm

    if temperature <= 0:
        raise UsageError(f"--temperature={temperature}: must be above 0")
    if not 0.0 <= alpha <= 1.0:
        raise UsageError(f"--alpha={alpha}: must lie in 0..1 (weight of the soft-target loss)")
    texts = read_texts(Path(dataset))
    out = prepare_output_dir(out)
    teacher, tokenizer = load_causal_lm(teacher_dir)
    student, student_tokenizer = load_causal_lm(student_dir)
    if student_tokenizer.get_vocab() != tokenizer.get_vocab():
        raise UsageError("--student and --teacher must share a tokenizer (the KL compares their vocabularies)")
    torch.manual_seed(seed)
    report = DistillReport(
        temperature, alpha, 0, student_perplexity_before=perplexity(student, tokenizer, HELD_OUT_TEXT)
    )
    optimizer = torch.optim.AdamW(student.parameters(), lr=learning_rate)
    student.train()
    batches = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
    for _ in range(epochs):
        for batch in tqdm(batches, desc="distill", disable=not progress):
            encoded = tokenizer(batch, return_tensors="pt", padding=True, truncation=True, max_length=max_length)
            labels = encoded["input_ids"].masked_fill(encoded["attention_mask"] == 0, -100)
            with torch.no_grad():
                teacher_logits = teacher(**encoded).logits
            loss = distillation_loss(student(**encoded).logits, teacher_logits, labels, temperature, alpha)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            report.losses.append(loss.item())
            report.steps += 1
    student.eval()
    report.student_perplexity_after = perplexity(student, tokenizer, HELD_OUT_TEXT)
    student.save_pretrained(out)
    tokenizer.save_pretrained(out)
    write_report(out, "distill", asdict(report))
    return report
