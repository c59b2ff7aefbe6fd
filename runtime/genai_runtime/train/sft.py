"""``genai train sft``: supervised instruction fine-tuning in full, LoRA, QLoRA or prompt-tuning
mode, on trl's ``SFTTrainer`` (prompt/completion data, loss on the completion only).

Runs the same locally and in a SageMaker job; checkpoints go to ``checkpoint_dir`` and a restarted
job resumes from the newest one, finishing at the same step count.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import cast

from ..errors import UsageError, require
from .config import TrainConfig
from .data import mix, read_rows, split, to_instructions
from .distributed import fsdp_arguments, world_size

log = logging.getLogger(__name__)

# LoRA targets per architecture: the attention projections, as in the book.
DEFAULT_TARGET_MODULES = {
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "gpt2": ["c_attn"],
    "gpt_neox": ["query_key_value"],
    "t5": ["q", "v"],
}


@dataclass
class TrainResult:
    mode: str
    global_step: int
    resumed_from: str | None
    trainable_parameters: int
    total_parameters: int
    losses: list[tuple[int, float]] = field(default_factory=list)
    model_dir: str = ""
    merged_dir: str | None = None
    train_runtime_s: float = 0.0
    steps_per_second: float = 0.0
    splits: dict[str, int] = field(default_factory=dict)
    world_size: int = 1  # processes that trained together (torchrun ranks)


def prepare_examples(config: TrainConfig) -> dict[str, list[dict]]:
    rows = read_rows(config.data.train)
    examples = to_instructions(
        rows, config.data.template, config.data.input_column, config.data.output_column, seed=config.training.seed
    )
    parts = split(examples, config.data.validation_fraction, config.data.test_fraction, seed=config.training.seed)
    if config.data.mix_ratio:
        general = [
            {"prompt": r["prompt"], "completion": r["completion"]} for r in read_rows(cast(Path, config.data.general))
        ]
        parts["train"] = mix(parts["train"], general, config.data.mix_ratio, seed=config.training.seed)
    if not parts["train"]:
        raise UsageError(f"data.train={config.data.train}: no training examples left after the splits")
    return parts


def target_modules(config: TrainConfig, model_type: str) -> list[str]:
    if config.lora.target_modules:
        return config.lora.target_modules
    if model_type not in DEFAULT_TARGET_MODULES:
        raise UsageError(f"lora.target_modules: no default for model type {model_type!r}; list the modules")
    return DEFAULT_TARGET_MODULES[model_type]


def build_model(config: TrainConfig):
    """The model to train for ``config.mode`` (a PEFT wrapper for lora/qlora/prompt_tuning) and its tokenizer."""
    import torch
    from peft import LoraConfig, PromptTuningConfig, PromptTuningInit, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(config.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    kwargs: dict = {"dtype": torch.float32}
    if config.mode == "qlora":
        from transformers import BitsAndBytesConfig

        require("bitsandbytes", "runtime", "QLoRA loads the base model in 4 bits")
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if torch.cuda.is_available() else torch.float32,
        )
        kwargs["device_map"] = {"": 0} if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(config.model, **kwargs)
    if config.mode == "full":
        return model, tokenizer
    if config.mode == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if config.mode in ("lora", "qlora"):
        peft_config: LoraConfig | PromptTuningConfig = LoraConfig(
            r=config.lora.r,
            lora_alpha=config.lora.alpha,
            lora_dropout=config.lora.dropout,
            target_modules=target_modules(config, model.config.model_type),
            task_type="CAUSAL_LM",
        )
    else:
        peft_config = PromptTuningConfig(
            task_type="CAUSAL_LM",
            prompt_tuning_init=PromptTuningInit.TEXT,
            num_virtual_tokens=config.prompt_tuning.virtual_tokens,
            prompt_tuning_init_text=config.prompt_tuning.init_text,
            tokenizer_name_or_path=str(config.model),
        )
    return get_peft_model(model, peft_config), tokenizer


def precision_arguments(precision: str) -> dict[str, bool]:
    """Mixed-precision flags; ``auto`` picks bf16 where the accelerator supports it, else fp32."""
    import torch

    if precision == "auto":
        precision = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    if precision != "fp32" and not torch.cuda.is_available():
        raise UsageError(f"training.precision={precision}: needs a GPU; use fp32 or auto on CPU")
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def latest_checkpoint(directory: Path) -> Path | None:
    checkpoints = [p for p in directory.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    complete = [p for p in checkpoints if (p / "trainer_state.json").is_file()]
    return max(complete, key=lambda p: int(p.name.split("-")[-1]), default=None)


def lean_sft_trainer():
    """trl's ``SFTTrainer`` with the model's own loss on its collator's labels (-100 outside the completion).

    trl computes the loss through a fused LM head that also derives per-token entropy and token
    accuracy every step, for its logs only; on CPU that cost 24 % of the step time
    (bench/results/train_overhead.json). The labels already mask the prompt, so the model's
    cross-entropy, averaged over ``num_items_in_batch``, is the same completion-only loss.
    """
    from transformers import Trainer
    from trl import SFTTrainer

    class LeanSFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            inputs["use_cache"] = False
            return Trainer.compute_loss(
                self, model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )

    return LeanSFTTrainer


def run_sft(config: TrainConfig, progress: bool = True) -> TrainResult:
    import torch
    from datasets import Dataset

    parts = prepare_examples(config)
    fsdp = fsdp_arguments(config.sharding_degree, world_size())
    model, tokenizer = build_model(config)
    if config.trainer == "neuron":
        neuron = require(
            "optimum.neuron",
            "neuron",
            "the Trainium path runs optimum-neuron's trainer in the "
            "Neuron training image (containers/training/Dockerfile.neuron)",
        )
        trainer_class, config_class = neuron.NeuronSFTTrainer, neuron.NeuronSFTConfig
    else:
        from trl import SFTConfig

        trainer_class, config_class = lean_sft_trainer(), SFTConfig
    training = config.training
    config.checkpoints.mkdir(parents=True, exist_ok=True)
    arguments = config_class(
        output_dir=str(config.checkpoints),
        num_train_epochs=training.epochs,
        max_steps=training.max_steps,
        learning_rate=training.learning_rate,
        per_device_train_batch_size=training.batch_size,
        gradient_accumulation_steps=training.gradient_accumulation_steps,
        max_length=training.max_length,
        logging_steps=training.logging_steps,
        save_steps=training.save_steps,
        save_total_limit=training.save_total_limit,
        seed=training.seed,
        data_seed=training.seed,
        report_to="none",
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=not progress,
        completion_only_loss=True,
        gradient_checkpointing=training.gradient_checkpointing,
        ddp_find_unused_parameters=False,  # every LoRA/full parameter takes part in each step
        **precision_arguments(training.precision),
        **fsdp,
    )
    trainer = trainer_class(
        model=model, args=arguments, train_dataset=Dataset.from_list(parts["train"]), processing_class=tokenizer
    )
    resume = latest_checkpoint(config.checkpoints)
    if resume:
        log.info("resuming from %s", resume)
    output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)

    model_dir = config.output_dir / "model"
    trainer.save_model(str(model_dir))  # every rank calls it: under FSDP the ranks gather the weights together
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(model_dir)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in trainer.model.parameters())
    result = TrainResult(
        mode=config.mode,
        global_step=trainer.state.global_step,
        resumed_from=str(resume) if resume else None,
        trainable_parameters=trainable,
        total_parameters=total,
        losses=[(entry["step"], entry["loss"]) for entry in trainer.state.log_history if "loss" in entry],
        model_dir=str(model_dir),
        splits={name: len(rows) for name, rows in parts.items()},
        train_runtime_s=float(output.metrics.get("train_runtime", 0.0)),
        steps_per_second=float(output.metrics.get("train_steps_per_second", 0.0)),
        world_size=trainer.args.world_size,
    )
    if not trainer.is_world_process_zero():
        return result  # under torchrun, rank 0 alone writes the outputs
    if config.merge_adapter:
        merged = trainer.model.merge_and_unload()
        result.merged_dir = str(config.output_dir / "merged")
        merged.save_pretrained(result.merged_dir)
        tokenizer.save_pretrained(result.merged_dir)
    (config.output_dir / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in parts["test"]))
    (config.output_dir / "train_metrics.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
    return result
