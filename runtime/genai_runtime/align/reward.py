"""``genai align reward``: a reward model trained on human preference pairs with trl's ``RewardTrainer``.

The model is the base causal LM with a one-output regression head (``AutoModelForSequenceClassification``,
``num_labels=1``): its logit at the last token of prompt + completion is the reward. Training minimises the
pairwise (Bradley-Terry) loss −log σ(r_chosen − r_rejected), trl's own
(``trl/trainer/reward_trainer.py`` 1.16, ``RewardTrainer.compute_loss``:
``loss = -nn.functional.logsigmoid(rewards_chosen - rewards_rejected).mean()``), in full or with LoRA
(peft ``TaskType.SEQ_CLS``, which also trains the new ``score`` head: peft puts it in ``modules_to_save``).

Outputs, in ``output_dir``:

- ``model/``: the reward model, LoRA merged into the base, with its tokenizer: what ``RewardModelScorer``
  (and the RL step's reward function) loads with plain transformers;
- ``metrics.json``: ``{"method": "reward", "pairwise_accuracy", "pairwise_accuracy_before", "pairs", ...}``,
  the share of held-out pairs (split by prompt) where r_chosen > r_rejected, before and after training.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .config import RewardRunConfig
from .preferences import read_pairs, split_by_prompt

log = logging.getLogger(__name__)


def lora_targets(config_targets: list[str] | None, model_type: str) -> list[str]:
    from ..train.sft import DEFAULT_TARGET_MODULES

    if config_targets:
        return config_targets
    if model_type not in DEFAULT_TARGET_MODULES:
        raise UsageError(f"lora.target_modules: no default for model type {model_type!r}; list the modules")
    return DEFAULT_TARGET_MODULES[model_type]


def load_tokenizer(path: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"  # trl's preference collator pads on the right as well
    return tokenizer


def _model_folder(path: Path) -> Path:
    if not (path / "config.json").is_file():
        raise UsageError(f"model={path}: not a model folder (no config.json in it)")
    return path


def start_model(model: Path, base: Path | None = None) -> Path:
    """The folder of the model a run starts from.

    ``model`` may be a model folder, a ``genai train sft`` output (its ``merged/``, else ``model/``), or a LoRA
    adapter; an adapter is merged into its base (``base``, else the adapter's ``base_model_name_or_path``)
    in a temporary folder first, so the reward head or the DPO reference sits on the SFT model itself.
    A ``model.tar.gz`` (what a model package's ``ModelDataUrl`` names, and so what the pipeline's ``model``
    channel receives for ``base_model_package_arn``) is unpacked first.
    """
    archive = model if model.is_file() else model / "model.tar.gz"
    if archive.is_file() and archive.name.endswith((".tar.gz", ".tgz")):
        return start_model(_unpack(archive), base)
    for candidate in (model, model / "merged", model / "model"):
        if (candidate / "config.json").is_file():
            return candidate
        if (candidate / "adapter_config.json").is_file():
            return _merge_adapter(candidate, base)
    raise UsageError(f"model={model}: not a model folder (no config.json or adapter_config.json in it)")


def trainer_arguments(config: Any, progress: bool) -> dict[str, Any]:
    """The training arguments the reward and DPO trainers share (both configs carry ``training``)."""
    import torch

    from ..train.sft import precision_arguments

    training = config.training
    return dict(
        output_dir=str(config.checkpoints),
        num_train_epochs=training.epochs,
        max_steps=training.max_steps,
        learning_rate=training.learning_rate,
        per_device_train_batch_size=training.batch_size,
        per_device_eval_batch_size=training.batch_size,
        gradient_accumulation_steps=training.gradient_accumulation_steps,
        max_length=training.max_length,
        logging_steps=training.logging_steps,
        save_strategy="no",
        seed=training.seed,
        data_seed=training.seed,
        report_to="none",
        gradient_checkpointing=training.gradient_checkpointing,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=not progress,
        **precision_arguments(training.precision),
    )


def _unpack(archive: Path) -> Path:
    """``archive`` extracted into a temporary folder; tarfile's ``data`` filter refuses absolute paths,
    ``..``, links out of the folder and device files (a model package is not trusted input)."""
    import tarfile
    import tempfile

    out = Path(tempfile.mkdtemp(prefix="genai-align-model-"))
    try:
        with tarfile.open(archive, "r:gz") as bundle:
            bundle.extractall(out, filter="data")
    except (tarfile.TarError, OSError) as error:
        raise UsageError(f"model={archive}: cannot unpack the model archive: {error}") from None
    return out


def _merge_adapter(adapter: Path, base: Path | None) -> Path:
    import tempfile

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    if base is None:
        named = json.loads((adapter / "adapter_config.json").read_text()).get("base_model_name_or_path")
        base = Path(named) if named else None
    if base is not None and not (base / "config.json").is_file() and (base / "model" / "config.json").is_file():
        base = base / "model"  # a genai train sft output
    if base is None or not (base / "config.json").is_file():
        raise UsageError(
            f"model={adapter}: a LoRA adapter whose base model {str(base) if base else '(unnamed)'} is not a "
            "model folder here; give it as base (config: base, job: the 'base' channel)"
        )
    log.info("merging the adapter %s into %s", adapter, base)
    merged = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), adapter
    ).merge_and_unload()
    out = Path(tempfile.mkdtemp(prefix="genai-align-start-"))
    merged.save_pretrained(out)
    load_tokenizer(adapter if (adapter / "tokenizer_config.json").is_file() else base).save_pretrained(out)
    return out


def reward_scores(model, tokenizer, texts: Sequence[str], max_length: int = 512, batch_size: int = 16) -> list[float]:
    """The reward head's logit for each text (already prompt + completion + EOS), in evaluation mode."""
    import torch

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    scores: list[float] = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                list(texts[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            ).to(device)
            logits = model(**batch, use_cache=False).logits
            scores.extend(float(v) for v in logits[:, 0].float().cpu())
    model.train(was_training)
    return scores


def pairwise_accuracy(model, tokenizer, pairs: Sequence[dict[str, str]], max_length: int = 512) -> tuple[float, float]:
    """Share of pairs where r(prompt + chosen) > r(prompt + rejected), and the mean margin.

    The texts are built as trl's ``RewardTrainer`` builds them: prompt + completion, EOS appended.
    """
    if not pairs:
        return float("nan"), float("nan")
    eos = tokenizer.eos_token or ""
    chosen = reward_scores(model, tokenizer, [_with_eos(p["prompt"] + p["chosen"], eos) for p in pairs], max_length)
    rejected = reward_scores(model, tokenizer, [_with_eos(p["prompt"] + p["rejected"], eos) for p in pairs], max_length)
    wins = sum(c > r for c, r in zip(chosen, rejected, strict=True))
    margin = sum(c - r for c, r in zip(chosen, rejected, strict=True)) / len(pairs)
    return wins / len(pairs), margin


def _with_eos(text: str, eos: str) -> str:
    return text if not eos or text.endswith(eos) else text + eos


def build_reward_model(config: RewardRunConfig):
    """The sequence-classification model (one output) over the base, and the LoRA config (or ``None``)."""
    import torch
    from peft import LoraConfig, TaskType
    from transformers import AutoModelForSequenceClassification, set_seed

    folder = start_model(config.model, config.base)
    tokenizer = load_tokenizer(folder)
    set_seed(config.training.seed)  # the new score head is random: seed it
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1, dtype=torch.float32)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id  # the head reads the last non-pad token
    peft_config = None
    if config.lora.enabled:
        peft_config = LoraConfig(
            task_type=TaskType.SEQ_CLS,  # peft adds the score head to modules_to_save: it trains in full
            r=config.lora.r,
            lora_alpha=config.lora.alpha,
            lora_dropout=config.lora.dropout,
            target_modules=lora_targets(config.lora.target_modules, model.config.model_type),
        )
    return model, tokenizer, peft_config


def run_reward(config: RewardRunConfig, progress: bool = True) -> dict[str, Any]:
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    pairs = read_pairs(config.data.train)
    train, held_out = split_by_prompt(pairs, config.data.validation_fraction, config.training.seed)
    model, tokenizer, peft_config = build_reward_model(config)
    training = config.training
    config.checkpoints.mkdir(parents=True, exist_ok=True)
    settings: dict[str, Any] = dict(
        trainer_arguments(config, progress),
        center_rewards_coefficient=config.center_rewards_coefficient,
        dataset_num_proc=None,
    )
    trainer: Any = RewardTrainer(
        model=model,
        args=RewardConfig(**settings),
        train_dataset=Dataset.from_list(train),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    before, margin_before = pairwise_accuracy(trainer.model, tokenizer, held_out, training.max_length)
    output = trainer.train()
    after, margin_after = pairwise_accuracy(trainer.model, tokenizer, held_out, training.max_length)

    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in trainer.model.parameters())
    model_dir = config.output_dir / "model"
    final = trainer.model.merge_and_unload() if peft_config is not None else trainer.model
    final.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    metrics = {
        "method": "reward",
        "pairwise_accuracy": after,
        "pairwise_accuracy_before": before,
        "pairs": len(held_out),
        "reward_margin": margin_after,
        "reward_margin_before": margin_before,
        "train_pairs": len(train),
        "lora": config.lora.enabled,
        "trainable_parameters": trainable,
        "total_parameters": total,
        "global_step": trainer.state.global_step,
        "losses": [(e["step"], e["loss"]) for e in trainer.state.log_history if "loss" in e],
        "train_runtime_s": float(output.metrics.get("train_runtime", 0.0)),
        "model_dir": str(model_dir),
    }
    (config.output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


class RewardModelScorer:
    """A trained reward model as a reward function: ``scorer(prompts, completions) -> [reward, ...]``.

    The reward is the head's scalar logit for prompt + completion (+ EOS, as in training), one per pair
    of the two lists, so it plugs into trl's online trainers' ``reward_funcs`` as a plain callable
    (it accepts and ignores their extra keyword arguments).
    """

    def __init__(self, model_dir: str | Path, device: str | None = None, max_length: int = 512, batch_size: int = 16):
        import torch
        from transformers import AutoModelForSequenceClassification

        folder = _model_folder(Path(model_dir))
        self.tokenizer = load_tokenizer(folder)
        self.model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32)
        if getattr(self.model.config, "num_labels", None) != 1:
            raise UsageError(f"{folder}: num_labels={self.model.config.num_labels}; a reward model has one output")
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model.to(device or ("cuda" if torch.cuda.is_available() else "cpu")).eval()
        self.max_length = max_length
        self.batch_size = batch_size
        self.__name__ = "reward_model"  # trl logs reward functions by name

    def __call__(self, prompts: list[str], completions: list[str], **_: Any) -> list[float]:
        if len(prompts) != len(completions):
            raise UsageError(f"{len(prompts)} prompts for {len(completions)} completions: give one prompt each")
        eos = self.tokenizer.eos_token or ""
        texts = [_with_eos(p + c, eos) for p, c in zip(prompts, completions, strict=True)]
        return reward_scores(self.model, self.tokenizer, texts, self.max_length, self.batch_size)
