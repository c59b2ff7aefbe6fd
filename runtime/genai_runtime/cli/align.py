"""``genai align``: human rankings to preference pairs, a reward model, and DPO/ORPO on the pairs.

    genai align pairs IN... --out pairs.jsonl      A2I output.json / Ground Truth manifests / JSONL -> pairs
    genai align reward --config reward.yaml        reward model (trl RewardTrainer), pairwise accuracy
    genai align dpo --model M --data pairs.jsonl   DPO (or --method orpo), preference accuracy

``reward`` and ``dpo`` run the same inside a SageMaker training job: the ``train`` and ``model`` channels,
``/opt/ml/model`` and the job's hyperparameters override the config file, and a failure's reason goes to
``/opt/ml/output/failure``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from . import align_label, align_rl
from ._args import fraction_or_bound, positive_float, positive_int, records_failure

_records_failure = records_failure("align")


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("align", help="preference pairs, reward models and DPO (alignment, chapter 7)")
    sub = group.add_subparsers(dest="command", metavar="COMMAND", required=True)

    pairs = sub.add_parser(
        "pairs",
        help="convert human rankings (A2I output.json, Ground Truth output manifests, JSONL) to preference pairs",
        description="Each ranking of n responses gives its n(n-1)/2 pairs, preferred first, as prompt/chosen/"
        "rejected lines; with several labelers per item each labeler's ranking gives its own pairs. A bad "
        "record (tie, ranks not a permutation, missing responses, chosen == rejected, empty text) is named "
        "with its file:line or human loop; the command then exits 2 unless --skip-bad.",
    )
    pairs.add_argument("inputs", nargs="+", type=Path, metavar="IN", help="files or folders (.json, .jsonl, .manifest)")
    pairs.add_argument("--out", type=Path, required=True, help="where the pairs go (JSONL)")
    pairs.add_argument(
        "--label-attribute", help="Ground Truth: the label attribute to read (default: the one with -metadata)"
    )
    pairs.add_argument("--skip-bad", action="store_true", help="report bad records and write the good pairs")
    pairs.set_defaults(run=_pairs)

    reward = sub.add_parser("reward", help="train a reward model on preference pairs (trl RewardTrainer)")
    _run_arguments(reward)
    reward.set_defaults(run=_records_failure(_reward))

    dpo = sub.add_parser("dpo", help="direct preference optimisation on preference pairs (trl DPOTrainer)")
    _run_arguments(dpo)
    dpo.add_argument("--beta", type=positive_float, help="KL strength of the implicit reward (ORPO: lambda)")
    dpo.add_argument("--method", choices=["dpo", "orpo"], help="dpo (default) or orpo (trl.experimental)")
    dpo.set_defaults(run=_records_failure(_dpo))

    align_rl.register(sub)  # classifier, rl, evaluate
    align_label.register(sub)  # label start|status|fetch


FLAGS = {
    "model": "model",
    "data": "data.train",
    "out": "output_dir",
    "lora_r": "lora.r",
    "epochs": "training.epochs",
    "max_steps": "training.max_steps",
    "learning_rate": "training.learning_rate",
    "batch_size": "training.batch_size",
    "seed": "training.seed",
    "validation_fraction": "data.validation_fraction",
    "beta": "beta",
    "method": "method",
}


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        help="YAML/JSON run config (inside a SageMaker job its channels and hyperparameters override it)",
    )
    parser.add_argument("--model", type=Path, help="the base model folder (config: model)")
    parser.add_argument("--data", type=Path, help="preference pairs, JSONL file or folder (config: data.train)")
    parser.add_argument("--out", type=Path, help="output folder (config: output_dir)")
    lora = parser.add_mutually_exclusive_group()
    lora.add_argument("--lora", dest="lora", action="store_true", default=None, help="train a LoRA adapter (default)")
    lora.add_argument("--full", dest="lora", action="store_false", help="train every weight")
    parser.add_argument("--lora-r", type=positive_int, help="LoRA rank (config: lora.r)")
    parser.add_argument("--epochs", type=positive_float, help="training epochs (config: training.epochs)")
    parser.add_argument("--max-steps", type=positive_int, help="stop after N steps (config: training.max_steps)")
    parser.add_argument("--learning-rate", type=positive_float, help="config: training.learning_rate")
    parser.add_argument("--batch-size", type=positive_int, help="config: training.batch_size")
    parser.add_argument("--seed", type=int, help="config: training.seed")
    parser.add_argument(
        "--validation-fraction",
        type=fraction_or_bound,
        help="held-out share of prompts (config: data.validation_fraction)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config key, e.g. --set lora.alpha=32",
    )
    # SageMaker starts training images as `<entrypoint> train`; accept and ignore that word.
    parser.add_argument("sagemaker_mode", nargs="?", choices=["train"], help=argparse.SUPPRESS)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    from ..errors import UsageError

    found: dict[str, Any] = {}
    for flag, key in FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            found[key] = str(value) if isinstance(value, Path) else value
    if args.lora is not None:
        found["lora.enabled"] = args.lora
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set {item!r}: use KEY=VALUE")
        try:
            found[key] = json.loads(value)
        except json.JSONDecodeError:
            found[key] = value
    return found


def _summary(metrics: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in metrics.items() if k != "losses"}, indent=2)


def _pairs(args: argparse.Namespace) -> int:
    from ..align.preferences import convert_paths, write_pairs
    from ..errors import UsageError

    result = convert_paths(args.inputs, args.label_attribute)
    for bad in result.bad:
        print(f"genai: bad record: {bad}", file=sys.stderr)
    if result.bad and not args.skip_bad:
        raise UsageError(f"{len(result.bad)} bad record(s), nothing written; fix them or pass --skip-bad")
    if not result.pairs:
        raise UsageError("no preference pairs in the inputs")
    count = write_pairs(result.pairs, args.out)
    print(
        json.dumps(
            {"pairs": count, "rankings": result.rankings, "bad_records": len(result.bad), "out": str(args.out)},
            indent=2,
        )
    )
    return 0


def _reward(args: argparse.Namespace) -> int:
    from ..align.config import load_reward_config
    from ..align.reward import run_reward

    print(_summary(run_reward(load_reward_config(args.config, _overrides(args)))))
    return 0


def _dpo(args: argparse.Namespace) -> int:
    from ..align.config import load_dpo_config
    from ..align.dpo import run_dpo

    print(_summary(run_dpo(load_dpo_config(args.config, _overrides(args)))))
    return 0
