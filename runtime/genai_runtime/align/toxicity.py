"""A toxicity classifier made locally, in the shape of the book's off-the-shelf reward model.

The book rewards detoxification with Meta's ``facebook/roberta-hate-speech-dynabench-r4-target``
(labels ``nothate``/``hate``) and reads its scores sometimes as logits, sometimes as probabilities,
always by column index. Here:

- ``train_classifier`` fine-tunes a tiny RoBERTa-style sequence classifier, built from config with a
  tokenizer trained on the data (no hub), on labelled ``{"text", "label": "toxic"|"not_toxic"}`` rows,
  with ``id2label``/``label2id`` in its config, and reports its held-out accuracy;
- ``ClassifierScorer`` selects the label BY NAME from the model's config (never by index: a model whose
  labels come in the other order scores the same) and returns per-text logits or probabilities, as
  ``output`` says;
- ``write_tiny_policy`` makes a tiny causal LM that, briefly pre-trained on a mix of polite and hostile
  replies, gives the RL something to move.

trl's own path for a reward *model* passed as an ``nn.Module`` reads ``logits[:, 0]``, the first
column whatever it means; ``rl.py`` therefore passes classifiers through ``ClassifierScorer``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError

LABELS = ("not_toxic", "toxic")
OUTPUTS = ("logit", "probability")
SPECIAL = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>"}


def read_labelled(path: str | Path, labels: Sequence[str] = LABELS) -> list[dict]:
    """``{"text", "label"}`` rows of a JSONL file; every label must be one of ``labels``."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--data={path}: no such file (JSONL with 'text' and 'label')")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            text, label = str(row["text"]), str(row["label"])
        except (json.JSONDecodeError, KeyError, TypeError):
            raise UsageError(f"--data={path}: line {number} is not a JSON object with 'text' and 'label'") from None
        if label not in labels:
            raise UsageError(f"--data={path}: line {number} has label {label!r}; use one of {', '.join(labels)}")
        rows.append({"text": text, "label": label})
    if len({r["label"] for r in rows}) < 2:
        raise UsageError(f"--data={path}: needs examples of at least two labels")
    return rows


def train_tokenizer(texts: Sequence[str], vocab_size: int = 600, wrap: bool = True):
    """A byte-level BPE tokenizer trained on ``texts``; ``wrap`` frames each text as ``<s> ... </s>``
    (for a classifier, whose head reads the first token)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=SPECIAL["unk_token"]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(texts) * 2, trainer)
    bos, eos = SPECIAL["bos_token"], SPECIAL["eos_token"]
    if not wrap:
        return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **SPECIAL)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} $B {eos}",
        special_tokens=[(bos, tokenizer.token_to_id(bos)), (eos, tokenizer.token_to_id(eos))],
    )
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **SPECIAL)


@dataclass(frozen=True)
class ClassifierResult:
    model_dir: str
    labels: list[str]
    train_examples: int
    held_out_examples: int
    held_out_accuracy: float
    train_accuracy: float
    epochs: int


def train_classifier(
    rows: list[dict],
    out_dir: str | Path,
    seed: int = 0,
    labels: Sequence[str] = LABELS,
    epochs: int = 6,
    held_out_fraction: float = 0.2,
    hidden_size: int = 64,
    learning_rate: float = 2e-3,
) -> ClassifierResult:
    """Fine-tune a tiny sequence classifier (built from config) on ``rows``; save it with its tokenizer.

    ``labels`` fixes the column order (``id2label``); the scorer reads labels by name, so any order works.
    """
    import torch
    from transformers import RobertaConfig, RobertaForSequenceClassification

    if len(set(labels)) != len(labels) or len(labels) < 2:
        raise UsageError(f"labels={list(labels)}: need two or more distinct names")
    unknown = sorted({r["label"] for r in rows} - set(labels))
    if unknown:
        raise UsageError(f"rows carry labels {unknown} that are not among {list(labels)}")
    shuffled = list(rows)
    random.Random(seed).shuffle(shuffled)
    n_held = max(1, round(len(shuffled) * held_out_fraction))
    held, train = shuffled[:n_held], shuffled[n_held:]
    label2id = {name: index for index, name in enumerate(labels)}

    tokenizer = train_tokenizer([r["text"] for r in train])
    torch.manual_seed(seed)
    config = RobertaConfig(  # type: ignore[call-arg]  # num_labels and id2label go to PretrainedConfig
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=hidden_size * 2,
        max_position_embeddings=130,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        num_labels=len(labels),
        id2label={index: name for name, index in label2id.items()},
        label2id=label2id,
        problem_type="single_label_classification",
    )
    model = RobertaForSequenceClassification(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    generator = random.Random(seed)
    model.train()
    for _ in range(epochs):
        order = list(train)
        generator.shuffle(order)
        for start in range(0, len(order), 16):
            batch = order[start : start + 16]
            encoded = tokenizer([r["text"] for r in batch], return_tensors="pt", padding=True, truncation=True)
            target = torch.tensor([label2id[r["label"]] for r in batch])
            loss = model(**encoded, labels=target).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    scorer = ClassifierScorer(out, label=labels[0], output="probability")
    result = ClassifierResult(
        model_dir=str(out),
        labels=list(labels),
        train_examples=len(train),
        held_out_examples=len(held),
        held_out_accuracy=round(accuracy(scorer, held), 4),
        train_accuracy=round(accuracy(scorer, train), 4),
        epochs=epochs,
    )
    (out / "classifier_metrics.json").write_text(json.dumps(result.__dict__, indent=2) + "\n")
    return result


def accuracy(scorer: ClassifierScorer, rows: list[dict]) -> float:
    predicted = scorer.predict([r["text"] for r in rows])
    return sum(p == r["label"] for p, r in zip(predicted, rows, strict=True)) / max(len(rows), 1)


class ClassifierScorer:
    """Per-text scores of one label of a sequence classifier, the label chosen by name.

    ``output="logit"``: the raw logit of ``label``; ``"probability"``: its softmax probability. Their
    scales differ, and so can their order within a class: the probability follows the logit
    *difference* between the labels, not one label's raw logit (measured on our classifier: two
    near-certain polite texts rank differently). Say which one a reward or a metric uses.
    """

    def __init__(
        self,
        model_dir: str | Path,
        label: str = "not_toxic",
        output: str = "logit",
        batch_size: int = 32,
        max_length: int = 128,
    ) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if output not in OUTPUTS:
            raise UsageError(f"output={output!r}: choose one of {', '.join(OUTPUTS)}")
        path = Path(model_dir)
        if not (path / "config.json").is_file():
            raise UsageError(f"--classifier={path}: not a model folder (no config.json)")
        self.model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.labels = [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]
        self.label, self.output = label, output
        self.index = self.label_index(label)
        self.batch_size, self.max_length = batch_size, max_length
        self.__name__ = f"{path.name}_{label}_{output}"  # trl names reward columns after this

    def label_index(self, label: str) -> int:
        """The column of ``label`` by the model's ``label2id``; a UsageError lists the model's labels."""
        if label not in self.labels:
            raise UsageError(f"label {label!r} is not a label of this classifier; its labels are {self.labels}")
        return self.labels.index(label)

    def logits(self, texts: Sequence[str]):
        import torch

        rows = []
        for start in range(0, len(texts), self.batch_size):
            batch = [t if t.strip() else self.tokenizer.unk_token for t in texts[start : start + self.batch_size]]
            encoded = self.tokenizer(
                batch, return_tensors="pt", padding=True, truncation=True, max_length=self.max_length
            )
            with torch.inference_mode():
                rows.append(self.model(**encoded).logits.float())
        return torch.cat(rows) if rows else torch.zeros(0, len(self.labels))

    def scores(self, texts: Sequence[str], label: str | None = None, output: str | None = None) -> list[float]:
        index = self.index if label is None else self.label_index(label)
        output = output or self.output
        if output not in OUTPUTS:
            raise UsageError(f"output={output!r}: choose one of {', '.join(OUTPUTS)}")
        logits = self.logits(texts)
        values = logits.softmax(-1) if output == "probability" else logits
        return [float(v) for v in values[:, index]]

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [self.labels[i] for i in self.logits(texts).argmax(-1).tolist()]

    def __call__(self, texts: Sequence[str]) -> list[float]:
        return self.scores(texts)


# Prompts the tiny policy answers; replies are the labelled lines, polite or hostile.
PROMPTS = [
    "Customer: my order is late. Agent:",
    "Customer: the app crashed again. Agent:",
    "Customer: can you help me with my bill? Agent:",
    "Customer: I forgot my password. Agent:",
    "Customer: where is my package? Agent:",
    "Customer: the report has an error. Agent:",
    "Customer: I need a refund. Agent:",
    "Customer: your service is slow today. Agent:",
    "Customer: can we meet tomorrow? Agent:",
    "Customer: I have a question about the invoice. Agent:",
    "Customer: the printer does not work. Agent:",
    "Customer: please call me back. Agent:",
]
HELD_OUT_PROMPTS = [
    "Customer: the delivery came broken. Agent:",
    "Customer: I cannot log in. Agent:",
    "Customer: when do you open? Agent:",
    "Customer: my screen is black. Agent:",
    "Customer: I was charged twice. Agent:",
    "Customer: the link does not open. Agent:",
]


def write_tiny_policy(
    out: str | Path, rows: list[dict], seed: int = 0, steps: int = 150, hidden_size: int = 64
) -> Path:
    """A tiny Llama whose tokenizer knows the data's words, pre-trained (plain torch, full weights) for
    ``steps`` steps on prompt -> reply pairs where the reply is a polite or a hostile line, half each:
    its samples are a mix, so RL against a not-toxic reward has something to shift."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from ..models.tiny import CORPUS

    texts = [r["text"] for r in rows]
    tokenizer = train_tokenizer(texts + PROMPTS + HELD_OUT_PROMPTS + CORPUS, vocab_size=700, wrap=False)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    by_label: dict[str, list[str]] = {}
    for row in rows:
        by_label.setdefault(row["label"], []).append(row["text"])
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        batch = []
        for _ in range(16):
            reply = rng.choice(by_label[rng.choice(sorted(by_label))])
            batch.append(f"{rng.choice(PROMPTS + HELD_OUT_PROMPTS)} {reply}{tokenizer.eos_token}")
        encoded = tokenizer(batch, return_tensors="pt", padding=True)
        labels = encoded["input_ids"].masked_fill(encoded["attention_mask"] == 0, -100)
        loss = model(**encoded, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def write_prompts(path: str | Path, prompts: Sequence[str]) -> Path:
    path = Path(path)
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    return path
