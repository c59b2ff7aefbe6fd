"""``genai train``: instruction fine-tuning, locally or inside a SageMaker job, and pipeline runs."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("train", help="fine-tune (sft) and start the deployed pipeline (submit)")
    sub = group.add_subparsers(dest="command", metavar="COMMAND", required=True)

    sft = sub.add_parser("sft", help="supervised instruction fine-tuning: full, lora, qlora or prompt_tuning")
    _sft_arguments(sft)
    sft.set_defaults(run=_records_failure(_sft))

    launch = sub.add_parser("launch", help="genai train sft under torchrun on every device and host of the job")
    _sft_arguments(launch)
    # SageMaker starts training images as `<entrypoint> train`; accept and ignore that word.
    launch.add_argument("sagemaker_mode", nargs="?", choices=["train"], help=argparse.SUPPRESS)
    launch.set_defaults(run=_records_failure(_launch))

    evaluate = sub.add_parser("evaluate", help="ROUGE before vs after on the held-out split (the pipeline's gate)")
    # Inside a SageMaker job each defaults to the platform's own paths: the "model" and "trained"
    # channels and /opt/ml/model, so the pipeline's Evaluate step needs no container arguments.
    evaluate.add_argument("--base", type=Path, help="the base model folder (job: the 'model' channel)")
    evaluate.add_argument(
        "--trained",
        type=Path,
        help="sft output folder, or the training job's model.tar.gz (holds model/ and test.jsonl); "
        "job: the 'trained' channel",
    )
    evaluate.add_argument("--out", type=Path, help="where the report goes (job: /opt/ml/model)")
    evaluate.set_defaults(run=_records_failure(_evaluate))

    submit = sub.add_parser("submit", help="start the deployed fine-tuning pipeline for a dataset")
    submit.add_argument("-c", dest="context", required=True, metavar="env=NAME", help="the environment, e.g. env=dev")
    submit.add_argument("--dataset", required=True, help="s3://BUCKET/KEY of the training data")
    submit.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="hyperparameter override")
    submit.set_defaults(run=_submit)


def _records_failure(run):
    """Inside a SageMaker job, a failure's reason goes to /opt/ml/output/failure (the job's FailureReason)."""
    import functools

    @functools.wraps(run)
    def wrapped(args: argparse.Namespace) -> int:
        from ..train.platform import record_failure

        try:
            code = run(args)
        except Exception as error:
            record_failure(error)
            raise
        if code:
            record_failure(RuntimeError(f"genai train {args.command} exited with status {code}"))
        return code

    return wrapped


def _sft_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        help="YAML/JSON TrainConfig (inside a SageMaker job its channels and hyperparameters override it)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set mode=qlora --set training.max_steps=50",
    )
    parser.add_argument("--no-eval", action="store_true", help="skip the before/after ROUGE evaluation")


def _pairs(items: list[str]) -> dict:
    from ..errors import UsageError

    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set {item!r}: use KEY=VALUE")
        try:
            pairs[key] = json.loads(value)
        except json.JSONDecodeError:
            pairs[key] = value
    return pairs


def _sft(args: argparse.Namespace) -> int:
    from ..train.config import load_config
    from ..train.sft import run_sft

    config = load_config(args.config, _pairs(args.set))
    result = run_sft(config)
    print(json.dumps({k: v for k, v in asdict(result).items() if k != "losses"}, indent=2))
    if config.evaluate and not args.no_eval:
        from ..train.evaluate import evaluate_before_after

        report = evaluate_before_after(
            config.model, Path(result.model_dir), config.output_dir / "test.jsonl", config.output_dir, result.losses
        )
        print(json.dumps(report, indent=2))
    return 0


def _launch(args: argparse.Namespace) -> int:
    import subprocess

    from ..train.launch import torchrun_command

    forwarded = ([f"--config={args.config}"] if args.config else []) + [f"--set={item}" for item in args.set]
    command = torchrun_command(forwarded + (["--no-eval"] if args.no_eval else []))
    print(" ".join(command), flush=True)
    return subprocess.run(command, check=False).returncode


def _evaluate(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..train.evaluate import evaluate_output
    from ..train.platform import current_job

    job = current_job()
    if job is not None:
        args.base = args.base or job.channels.get("model")
        args.trained = args.trained or job.channels.get("trained")
        args.out = args.out or job.model_dir
    missing = [f"--{name}" for name in ("base", "trained", "out") if getattr(args, name) is None]
    if missing:
        raise UsageError(f"{', '.join(missing)}: required outside a SageMaker job (no 'model'/'trained' channel)")
    report = evaluate_output(args.base, args.trained, args.out)
    for name, value in report["after"].items():
        print(f"{name}={value}")  # SageMaker metric definitions read these lines
    print(json.dumps(report, indent=2))
    return 0


def _submit(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..train.submit import submit

    key, _, env = args.context.partition("=")
    if key != "env" or not env:
        raise UsageError(f"-c {args.context}: use -c env=NAME")
    print(json.dumps(submit(env, args.dataset, hyperparameters=_pairs(args.set)), indent=2))
    return 0
