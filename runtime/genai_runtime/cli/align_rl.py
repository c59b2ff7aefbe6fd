"""``genai align classifier|rl|evaluate``: a toxicity classifier made locally, online RL (GRPO/RLOO) with
a KL bound against reward functions, and the before/after toxicity evaluation.

``register(sub)`` adds these to the ``genai align`` group (``cli/align.py`` calls it). Inside a SageMaker
job ``rl`` reads its inputs from the job's channels (``model``: the policy, ``train``: the prompts,
``classifier``: a classifier reward) and writes to ``/opt/ml/model`` when the flags do not say otherwise.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._args import non_negative_int, positive_float, positive_int, records_failure

_records_failure = records_failure("align")


def register(sub: argparse._SubParsersAction) -> None:
    classifier = sub.add_parser(
        "classifier",
        help="train a small toxic / not_toxic sequence classifier (a reward model for detoxification)",
        description="Fine-tune a tiny sequence classifier, built from config with a tokenizer trained on the data "
        "(no hub), on JSONL rows {'text', 'label'}; its config carries id2label/label2id, so rewards read the "
        "label by name. Prints the held-out accuracy.",
    )
    classifier.add_argument("--data", type=Path, required=True, help="JSONL of {'text', 'label'}")
    classifier.add_argument("--out", type=Path, required=True, help="the classifier's folder")
    classifier.add_argument(
        "--labels", default="not_toxic,toxic", help="label names in column order (default not_toxic,toxic)"
    )
    classifier.add_argument("--epochs", type=positive_int, default=6)
    classifier.add_argument("--seed", type=int, default=0)
    classifier.set_defaults(run=_records_failure(_classifier))

    rl = sub.add_parser(
        "rl",
        help="online RL (GRPO or RLOO, trl) of a causal LM against reward functions, KL-bounded by --beta",
        description="Sample completions of the prompts, score them with the reward functions and update the "
        "policy (a LoRA adapter by default) with group-relative (GRPO) or leave-one-out (RLOO) baselines, with a "
        "KL penalty --beta to the frozen reference. Stops at --target-reward / --target-toxicity or --max-steps. "
        "Writes OUT/model, OUT/rl_log.jsonl and OUT/metrics.json.",
    )
    rl.add_argument("--policy", type=Path, help="the policy model folder (job: the 'model' channel)")
    rl.add_argument("--prompts", type=Path, help="JSONL with a 'prompt' per line (job: the 'train' channel)")
    rl.add_argument("--eval-prompts", type=Path, help="held-out prompts for reward/toxicity before and after")
    rl.add_argument("--out", type=Path, help="output folder (job: /opt/ml/model)")
    rl.add_argument(
        "--reward",
        action="append",
        default=[],
        metavar="KIND:TARGET[,weight=W][,label=L][,output=O]",
        help="a reward function (repeat for several): classifier:DIR (label by name, default not_toxic; "
        "output probability|logit), reward-model:DIR (a trained reward model), python:module:function "
        "(trl's signature f(prompts, completions, **kw) -> list[float])",
    )
    rl.add_argument("--algorithm", choices=["grpo", "rloo"], default="grpo")
    rl.add_argument("--beta", type=float, default=None, help="KL coefficient to the reference (default 0.05; 0: none)")
    rl.add_argument("--full", action="store_true", help="update all weights instead of a LoRA adapter")
    rl.add_argument("--lora-r", type=positive_int, default=8)
    rl.add_argument("--lora-target-modules", help="comma-separated, or all-linear (default: attention projections)")
    rl.add_argument("--learning-rate", type=positive_float, default=1e-4)
    rl.add_argument("--max-steps", type=positive_int, default=20)
    rl.add_argument("--num-generations", type=positive_int, default=4, help="completions per prompt (the group)")
    rl.add_argument("--prompts-per-step", type=positive_int, default=4)
    rl.add_argument("--max-completion-length", type=positive_int, default=24)
    rl.add_argument("--min-new-tokens", type=non_negative_int, default=4)
    rl.add_argument("--temperature", type=positive_float, default=1.0)
    rl.add_argument("--top-k", type=non_negative_int, default=0, help="0: off")
    rl.add_argument("--top-p", type=positive_float, default=1.0)
    rl.add_argument("--target-reward", type=float, help="stop once a step's mean reward reaches this")
    rl.add_argument("--target-toxicity", type=float, help="stop once a step's toxicity falls to this (classifier)")
    rl.add_argument("--seed", type=int, default=0)
    rl.set_defaults(run=_records_failure(_rl), parser=rl)

    evaluate = sub.add_parser(
        "evaluate",
        help="toxicity (and reward) of base vs tuned on the same held-out prompts, sampled alike",
        description="Generate from both models on the same prompts with the same seed and sampling; toxicity is "
        "1 - P(--label) of the classifier: mean, std, relative improvement (before - after) / before. Writes "
        "OUT/evaluation.json and OUT/evaluation.png.",
    )
    evaluate.add_argument("--base", type=Path, required=True, help="the base model folder")
    evaluate.add_argument("--tuned", type=Path, required=True, help="the tuned model or adapter folder (rl OUT/model)")
    evaluate.add_argument("--classifier", type=Path, required=True, help="the toxicity classifier folder")
    evaluate.add_argument("--label", default="not_toxic", help="the classifier's good label, by name")
    evaluate.add_argument("--reward-model", type=Path, help="also score both with this reward model")
    evaluate.add_argument("--prompts", type=Path, required=True, help="held-out prompts, JSONL with 'prompt'")
    evaluate.add_argument("--out", type=Path, required=True)
    evaluate.add_argument("--samples", type=positive_int, default=4, help="completions per prompt")
    evaluate.add_argument("--max-new-tokens", type=positive_int, default=24)
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.set_defaults(run=_evaluate)


def _classifier(args: argparse.Namespace) -> int:
    from ..align.toxicity import read_labelled, train_classifier
    from ..models.io import prepare_output_dir

    labels = [name.strip() for name in args.labels.split(",") if name.strip()]
    rows = read_labelled(args.data, labels)
    result = train_classifier(rows, prepare_output_dir(args.out), seed=args.seed, labels=labels, epochs=args.epochs)
    print(json.dumps(result.__dict__, indent=2))
    return 0


def _rl(args: argparse.Namespace) -> int:
    from ..align.rl import DEFAULT_BETA, RewardSpec, RLConfig, run_rl
    from ..errors import UsageError
    from ..train.platform import DEFAULT_ROOT, current_job

    job = current_job()
    if job is not None:
        _apply_hyperparameters(args, job.hyperparameters)
        args.policy = args.policy or job.channels.get("model")
        args.prompts = args.prompts or job.channels.get("train")
        args.out = args.out or job.model_dir
        if not args.reward and "classifier" in job.channels:
            args.reward = [f"classifier:{job.channels['classifier']}"]
        # A reward spec names /opt/ml/input/data/CHANNEL; where GENAI_SAGEMAKER_ROOT moved /opt/ml, follow it.
        if str(job.root) != DEFAULT_ROOT:
            args.reward = [
                spec.replace(f":{DEFAULT_ROOT}/", f":{job.root}/", 1) if f":{DEFAULT_ROOT}/" in spec else spec
                for spec in args.reward
            ]
    missing = [f"--{name}" for name in ("policy", "prompts", "out") if getattr(args, name) is None]
    if missing:
        raise UsageError(f"{', '.join(missing)}: required outside a SageMaker job")
    if args.prompts.is_dir():
        found = sorted(args.prompts.glob("*.jsonl"))
        if len(found) != 1:
            raise UsageError(f"--prompts={args.prompts}: expected one .jsonl file in the folder")
        args.prompts = found[0]
    modules = [m.strip() for m in args.lora_target_modules.split(",")] if args.lora_target_modules else None
    config = RLConfig(
        policy=args.policy,
        prompts=args.prompts,
        eval_prompts=args.eval_prompts,
        output_dir=args.out,
        rewards=[RewardSpec.parse(text) for text in args.reward],
        algorithm=args.algorithm,
        beta=DEFAULT_BETA if args.beta is None else args.beta,
        lora=not args.full,
        lora_r=args.lora_r,
        lora_alpha=2 * args.lora_r,
        lora_target_modules=modules,
        learning_rate=args.learning_rate,
        max_steps=args.max_steps,
        num_generations=args.num_generations,
        prompts_per_step=args.prompts_per_step,
        max_completion_length=args.max_completion_length,
        min_new_tokens=args.min_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        target_reward=args.target_reward,
        target_toxicity=args.target_toxicity,
        seed=args.seed,
    )
    print(json.dumps(run_rl(config).metrics(), indent=2))
    return 0


def _apply_hyperparameters(args: argparse.Namespace, hyperparameters: dict[str, str]) -> None:
    """The job's hyperparameters (strings) as ``genai align rl`` flags: ``max_steps`` is ``--max-steps``,
    ``reward`` a ``--reward`` spec; a flag given on the command line wins. An unknown key is a UsageError."""
    from ..errors import UsageError

    parser: argparse.ArgumentParser = args.parser
    argv = []
    for key, value in hyperparameters.items():
        flag = "--" + key.replace("_", "-")
        if key == "full":
            argv += [flag] if str(value).lower() in ("true", "1", "yes") else []
        else:
            argv.append(f"{flag}={value}")
    try:
        from_job, unknown = parser.parse_known_args(argv)
    except SystemExit:
        raise UsageError(f"hyperparameters {hyperparameters}: a value is not valid for genai align rl") from None
    if unknown:
        raise UsageError(f"hyperparameters: {', '.join(unknown)} are not genai align rl flags")
    for name, value in vars(from_job).items():
        if name in ("run", "parser") or not any(f"--{name.replace('_', '-')}" == a.split("=")[0] for a in argv):
            continue
        if getattr(args, name) == parser.get_default(name):  # not given on the command line
            setattr(args, name, value)


def _evaluate(args: argparse.Namespace) -> int:
    from ..align.evaluate import evaluate_alignment

    report = evaluate_alignment(
        args.base,
        args.tuned,
        args.classifier,
        args.prompts,
        args.out,
        label=args.label,
        reward_model=args.reward_model,
        samples=args.samples,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
    )
    print(json.dumps({k: v for k, v in report.items() if k != "samples"}, indent=2))
    return 0
