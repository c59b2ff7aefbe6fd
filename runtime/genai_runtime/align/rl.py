"""``genai align rl``: online reinforcement learning of a causal LM against reward functions, with a
KL bound to the frozen reference, on trl's ``GRPOTrainer`` or ``RLOOTrainer`` (``algorithm``).

How this maps to the book's PPO (chapter 7, ``trl.PPOTrainer`` with ``AutoModelForCausalLMWithValueHead``):

- **PPO's value head and its clipped value loss are gone.** The baseline that turns rewards into
  advantages comes from the samples themselves: GRPO samples ``num_generations`` completions per
  prompt and normalises each reward by its group's mean (and std); RLOO subtracts the mean of the
  *other* completions of the same prompt (leave-one-out). GRPO keeps PPO's clipped ratio objective
  (``epsilon``) over the policy's own log-probabilities; neither trains a critic.
- **The KL penalty to the reference is kept, as ``beta``.** GRPO adds ``beta * KL`` (k3 estimator) to its
  per-token loss; RLOO subtracts ``beta * sum_t (log pi - log ref)`` from each sequence's reward, like the
  book's PPO did. ``beta = 0`` drops the reference entirely (trl then loads none and logs no KL; the
  final KL in ``metrics.json`` is measured here, the same way for every beta).
- **PEFT as in the book**: the policy is a LoRA adapter on the base (``lora=True``, the default): only the
  adapter weights update and the reference is the same model with its adapters disabled, so no second
  copy is loaded.
- Generation: ``temperature``, ``top_k``, ``top_p`` and ``max_completion_length`` are trl's fields;
  ``min_new_tokens`` (the book's ``min_length``) goes through ``generation_kwargs``.

Rewards (``RewardSpec``, any number, weighted): a classifier label by name (``ClassifierScorer``: the
not-toxic probability or logit), a trained reward model (engineer A's ``RewardModelScorer`` when present,
else a one-logit ``AutoModelForSequenceClassification`` read here), or any Python callable
``module:function`` with trl's signature ``f(prompts, completions, **kwargs) -> list[float]``. A
classifier is never handed to trl as a module: trl reads ``logits[:, 0]``, whatever label that is.

Outputs in ``output_dir``: ``model/`` (the adapter or the full model, with the tokenizer), ``rl_log.jsonl``
(reward, reward std, KL, mean completion length and toxicity per step) and ``metrics.json``.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .toxicity import ClassifierScorer

log = logging.getLogger(__name__)

ALGORITHMS = ("grpo", "rloo")
REWARD_KINDS = ("classifier", "reward-model", "python")
DEFAULT_BETA = 0.05


@dataclass
class RewardSpec:
    """One reward function: ``kind`` (classifier | reward-model | python), ``target`` (a folder, or
    ``module:function``), its ``weight``, and for a classifier the ``label`` and ``output``."""

    kind: str
    target: str
    weight: float = 1.0
    label: str = "not_toxic"
    output: str = "probability"

    @classmethod
    def parse(cls, text: str) -> RewardSpec:
        """``KIND:TARGET[,weight=W][,label=L][,output=logit|probability]``, e.g. ``classifier:clf,label=not_toxic``."""
        head, *options = text.split(",")
        kind, sep, target = head.partition(":")
        if not sep or kind not in REWARD_KINDS or not target:
            raise UsageError(f"--reward={text!r}: use KIND:TARGET with KIND one of {', '.join(REWARD_KINDS)}")
        values: dict[str, Any] = {}
        for option in options:
            key, sep, value = option.partition("=")
            if not sep or key not in ("weight", "label", "output"):
                raise UsageError(f"--reward={text!r}: option {option!r} is not weight=, label= or output=")
            values[key] = float(value) if key == "weight" else value
        return cls(kind=kind, target=target, **values)


@dataclass
class RLConfig:
    policy: Path
    prompts: Path
    output_dir: Path
    rewards: list[RewardSpec]
    algorithm: str = "grpo"
    beta: float = DEFAULT_BETA
    lora: bool = True
    lora_r: int = 8
    lora_alpha: int = 16
    lora_target_modules: list[str] | None = None
    learning_rate: float = 1e-4
    max_steps: int = 20
    num_generations: int = 4
    prompts_per_step: int = 4
    max_completion_length: int = 24
    min_new_tokens: int = 4
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    target_reward: float | None = None
    target_toxicity: float | None = None
    eval_prompts: Path | None = None
    eval_samples: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise UsageError(f"--algorithm={self.algorithm!r}: choose one of {', '.join(ALGORITHMS)}")
        if self.beta < 0:
            raise UsageError(f"--beta={self.beta}: the KL coefficient must be 0 or more")
        if self.num_generations < 2:
            raise UsageError(f"--num-generations={self.num_generations}: group baselines need at least 2")
        if not self.rewards:
            raise UsageError("--reward: give at least one reward function")
        if self.target_toxicity is not None and not any(r.kind == "classifier" for r in self.rewards):
            raise UsageError("--target-toxicity needs a classifier among the rewards (--reward classifier:DIR)")


# ---------------------------------------------------------------- reward functions, trl's signature


class ClassifierReward:
    """A classifier label as a trl reward: the score of ``label`` for each completion (the reply alone,
    as the book scores the response). Remembers the last batch's toxicity, 1 - P(label)."""

    def __init__(self, model_dir: str | Path, label: str = "not_toxic", output: str = "probability") -> None:
        self.scorer = ClassifierScorer(model_dir, label=label, output=output)
        self.__name__ = f"classifier_{label}_{output}"
        self.last_toxicity: float | None = None

    def toxicity(self, completions: Sequence[str]) -> list[float]:
        return [1.0 - p for p in self.scorer.scores(completions, output="probability")]

    def __call__(self, prompts: Sequence, completions: Sequence, **kwargs: Any) -> list[float]:
        texts = [_text(c) for c in completions]
        logits = self.scorer.logits(texts)
        probabilities = logits.softmax(-1)[:, self.scorer.index]
        self.last_toxicity = float(1.0 - probabilities.mean())
        values = probabilities if self.scorer.output == "probability" else logits[:, self.scorer.index]
        return [float(v) for v in values]


class RewardModelReward:
    """A trained reward model scoring prompt + completion: engineer A's ``RewardModelScorer`` where it
    exists, else a one-output ``AutoModelForSequenceClassification`` read here."""

    def __init__(self, model_dir: str | Path) -> None:
        path = Path(model_dir)
        if not (path / "config.json").is_file():
            raise UsageError(f"--reward reward-model:{path}: not a model folder (no config.json)")
        self.__name__ = f"reward_model_{path.name}"
        self.score: Callable[[list[str], list[str]], Sequence[float]]
        try:
            from .reward import RewardModelScorer  # engineer A's module
        except ImportError:
            self.score = _SequenceRewardModel(path)
        else:
            self.score = RewardModelScorer(path)

    def __call__(self, prompts: Sequence, completions: Sequence, **kwargs: Any) -> list[float]:
        return [float(v) for v in self.score([_text(p) for p in prompts], [_text(c) for c in completions])]


class _SequenceRewardModel:
    def __init__(self, path: Path) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32).eval()
        if self.model.config.num_labels != 1:
            raise UsageError(
                f"--reward reward-model:{path}: has {self.model.config.num_labels} outputs; a reward model has one "
                "(use classifier:DIR,label=NAME for a classifier)"
            )
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    def __call__(self, prompts: list[str], completions: list[str]) -> list[float]:
        import torch

        texts = [p + c for p, c in zip(prompts, completions, strict=True)]
        encoded = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True)
        with torch.inference_mode():
            return [float(v) for v in self.model(**encoded).logits[:, 0]]


def load_callable(target: str) -> Callable:
    module_name, sep, attribute = target.rpartition(":")
    if not sep or not module_name or not attribute:
        raise UsageError(f"--reward python:{target}: use python:module:function")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise UsageError(f"--reward python:{target}: cannot import it ({error})") from None
    if not callable(function):
        raise UsageError(f"--reward python:{target}: is not callable")
    return function


def build_reward(spec: RewardSpec) -> Callable:
    if spec.kind == "classifier":
        return ClassifierReward(spec.target, label=spec.label, output=spec.output)
    if spec.kind == "reward-model":
        return RewardModelReward(spec.target)
    return load_callable(spec.target)


def _text(item: Any) -> str:
    """A completion as text: trl passes strings, or message lists for conversational data."""
    if isinstance(item, str):
        return item
    if isinstance(item, list) and item and isinstance(item[-1], dict):
        return str(item[-1].get("content", ""))
    return str(item)


# ---------------------------------------------------------------- the per-step log and the stop


def rl_callback(
    log_path: Path, target_reward: float | None, target_toxicity: float | None, classifier: ClassifierReward | None
):
    """A TrainerCallback that appends reward, KL, completion length (and toxicity) per step to
    ``rl_log.jsonl`` and stops at the target mean reward or toxicity (``max_steps`` stops it otherwise)."""
    from transformers import TrainerCallback

    class RLLogCallback(TrainerCallback):
        stopped_by: str | None = None

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or "reward" not in logs:
                return control
            entry = {
                "step": state.global_step,
                "reward": logs.get("reward"),
                "reward_std": logs.get("reward_std"),
                "kl": logs.get("kl"),
                "completion_length": logs.get("completions/mean_length"),
                "toxicity": classifier.last_toxicity if classifier is not None else None,
                "loss": logs.get("loss"),
            }
            with log_path.open("a") as handle:
                handle.write(json.dumps(entry) + "\n")
            if target_reward is not None and entry["reward"] is not None and entry["reward"] >= target_reward:
                self.stopped_by = "target_reward"
            elif target_toxicity is not None and entry["toxicity"] is not None and entry["toxicity"] <= target_toxicity:
                self.stopped_by = "target_toxicity"
            if self.stopped_by:
                control.should_training_stop = True
            return control

    return RLLogCallback()


# ---------------------------------------------------------------- the run


@dataclass
class RLResult:
    method: str
    algorithm: str
    beta: float
    steps: int
    stopped_by: str
    reward_before: float
    reward_after: float
    reward_gain: float
    kl_final: float
    kl_final_trainer: float | None
    completion_length_before: float
    completion_length_after: float
    trainable_parameters: int
    total_parameters: int
    model_dir: str
    toxicity_before: float | None = None
    toxicity_after: float | None = None
    toxicity_improvement: float | None = None
    extra: dict = field(default_factory=dict)

    def metrics(self) -> dict:
        found = {k: v for k, v in asdict(self).items() if k != "extra"}
        if self.toxicity_before is None:
            for key in ("toxicity_before", "toxicity_after", "toxicity_improvement"):
                found.pop(key)
        return found


def read_prompts(path: Path, flag: str = "--prompts") -> list[str]:
    if not path.is_file():
        raise UsageError(f"{flag}={path}: no such file (JSONL with a 'prompt' field)")
    prompts = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            prompts.append(str(json.loads(line)["prompt"]))
        except (json.JSONDecodeError, KeyError, TypeError):
            raise UsageError(f"{flag}={path}: line {number} is not a JSON object with 'prompt'") from None
    if not prompts:
        raise UsageError(f"{flag}={path}: holds no prompts")
    return prompts


def build_policy(config: RLConfig):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..train.sft import DEFAULT_TARGET_MODULES

    tokenizer = AutoTokenizer.from_pretrained(config.policy)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(config.policy, dtype=torch.float32)
    if not config.lora:
        return model, tokenizer
    modules = config.lora_target_modules or DEFAULT_TARGET_MODULES.get(model.config.model_type)
    if not modules:
        raise UsageError(f"--lora-target-modules: no default for model type {model.config.model_type!r}")
    peft_config = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=0.0,
        target_modules="all-linear" if modules == ["all-linear"] else modules,  # peft wants the bare string
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, peft_config), tokenizer


def run_rl(config: RLConfig, progress: bool = True) -> RLResult:
    import torch
    from datasets import Dataset

    from .evaluate import mean_kl, sample_completions

    prompts = read_prompts(config.prompts)
    eval_prompts = read_prompts(config.eval_prompts, "--eval-prompts") if config.eval_prompts else prompts
    rewards: list[Any] = [build_reward(spec) for spec in config.rewards]
    weights = [spec.weight for spec in config.rewards]
    classifier = next((r for r in rewards if isinstance(r, ClassifierReward)), None)
    model, tokenizer = build_policy(config)
    reference = None
    if not config.lora:  # a full-weight policy: its reference for the measured KL is a frozen copy
        from transformers import AutoModelForCausalLM

        reference = AutoModelForCausalLM.from_pretrained(config.policy, dtype=torch.float32).eval()

    sampling: dict[str, Any] = {
        "max_new_tokens": config.max_completion_length,
        "min_new_tokens": config.min_new_tokens,
        "temperature": config.temperature,
        "top_k": config.top_k,
        "top_p": config.top_p,
    }

    def measure() -> dict:
        completions, repeated = sample_completions(
            model, tokenizer, eval_prompts, samples=config.eval_samples, seed=config.seed, **sampling
        )
        total = [0.0] * len(completions)
        for reward, weight in zip(rewards, weights, strict=True):
            values = reward(prompts=repeated, completions=completions)
            total = [t + weight * float(v) for t, v in zip(total, values, strict=True)]
        found = {
            "reward": statistics.fmean(total),
            "length": statistics.fmean(len(tokenizer(c)["input_ids"]) for c in completions),
            "kl": mean_kl(model, tokenizer, repeated, completions, reference),
        }
        if classifier is not None:
            found["toxicity"] = statistics.fmean(classifier.toxicity(completions))
        return found

    before = measure()
    config.output_dir.mkdir(parents=True, exist_ok=True)
    log_path = config.output_dir / "rl_log.jsonl"
    log_path.write_text("")
    callback = rl_callback(log_path, config.target_reward, config.target_toxicity, classifier)
    dataset = Dataset.from_list([{"prompt": p} for p in prompts])
    trainer = _trainer(config, model, tokenizer, rewards, weights, dataset, progress)
    trainer.add_callback(callback)
    trainer.train()
    model = trainer.model
    model.eval()
    after = measure()

    model_dir = config.output_dir / "model"
    trainer.save_model(str(model_dir))
    tokenizer.save_pretrained(model_dir)
    trainer_kl = [e["kl"] for e in _read_log(log_path) if e.get("kl") is not None]
    result = RLResult(
        method="rl",
        algorithm=config.algorithm,
        beta=config.beta,
        steps=trainer.state.global_step,
        stopped_by=callback.stopped_by or "max_steps",
        reward_before=round(before["reward"], 4),
        reward_after=round(after["reward"], 4),
        reward_gain=round(after["reward"] - before["reward"], 4),
        kl_final=round(after["kl"], 4),
        kl_final_trainer=round(trainer_kl[-1], 4) if trainer_kl else None,
        completion_length_before=round(before["length"], 2),
        completion_length_after=round(after["length"], 2),
        trainable_parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
        total_parameters=sum(p.numel() for p in model.parameters()),
        model_dir=str(model_dir),
    )
    if classifier is not None:
        result.toxicity_before = round(before["toxicity"], 4)
        result.toxicity_after = round(after["toxicity"], 4)
        result.toxicity_improvement = relative_improvement(before["toxicity"], after["toxicity"])
    (config.output_dir / "metrics.json").write_text(json.dumps(result.metrics(), indent=2) + "\n")
    return result


def relative_improvement(before: float, after: float) -> float | None:
    """(before - after) / before: the book's 0.0323 -> 0.0272 is 0.158 (15.8 %); None when before is 0."""
    if before == 0 or math.isnan(before):
        return None
    return round((before - after) / before, 4)


def _read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _trainer(config: RLConfig, model, tokenizer, rewards: list[Any], weights: list[float], dataset, progress: bool):
    import torch

    common: dict[str, Any] = {
        "output_dir": str(config.output_dir / "checkpoints"),
        "max_steps": config.max_steps,
        "learning_rate": config.learning_rate,
        "per_device_train_batch_size": config.num_generations * config.prompts_per_step,
        "num_generations": config.num_generations,
        "max_completion_length": config.max_completion_length,
        "temperature": config.temperature,
        "top_k": config.top_k,
        "top_p": config.top_p,
        "generation_kwargs": {"min_new_tokens": config.min_new_tokens},
        "beta": config.beta,
        "reward_weights": weights,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "seed": config.seed,
        "data_seed": config.seed,
        "use_cpu": not torch.cuda.is_available(),
        "bf16": False,
        "disable_tqdm": not progress,
    }
    if config.algorithm == "grpo":
        from trl import GRPOConfig, GRPOTrainer

        return GRPOTrainer(
            model=model,
            reward_funcs=rewards,
            args=GRPOConfig(**common),
            train_dataset=dataset,
            processing_class=tokenizer,
        )
    from trl import RLOOConfig, RLOOTrainer

    return RLOOTrainer(
        model=model, reward_funcs=rewards, args=RLOOConfig(**common), train_dataset=dataset, processing_class=tokenizer
    )
