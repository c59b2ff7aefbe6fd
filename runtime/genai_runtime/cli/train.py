"""``genai train``: instruction fine-tuning, locally or inside a SageMaker job, and pipeline runs."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict
from pathlib import Path

from ..train.slurm import DEFAULT_INSTANCE_TYPE, DEFAULT_VENV, SHARED_ROOT
from ._args import positive_float, positive_int, records_failure

_records_failure = records_failure("train")


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

    slurm = sub.add_parser(
        "slurm-script",
        help="write an sbatch script that runs genai train launch on every node of a HyperPod Slurm cluster",
        description="Write an sbatch script: srun starts `genai train launch` once per node, torchrun one process "
        "per NeuronCore/GPU, with the rendezvous from Slurm's variables. Data, outputs and checkpoints go on "
        "FSx (/fsx), which every node mounts. Submit it with sbatch on the login or controller node.",
    )
    slurm.add_argument("--config", type=Path, required=True, help="YAML/JSON TrainConfig (embedded in the script)")
    slurm.add_argument("--nodes", type=positive_int, required=True, help="nodes of the job (sbatch --nodes)")
    slurm.add_argument("--partition", help="the Slurm partition (sbatch --partition); default: the cluster's default")
    slurm.add_argument(
        "--instance-type",
        default=DEFAULT_INSTANCE_TYPE,
        help=f"the nodes' instance type (default {DEFAULT_INSTANCE_TYPE})",
    )
    slurm.add_argument("--time", help="time limit, HH:MM:SS or another sbatch format (sbatch --time)")
    slurm.add_argument("--job-name", help="the job's name and its folder under /fsx/genai (default: the config's name)")
    slurm.add_argument(
        "--venv", default=DEFAULT_VENV, help=f"the virtualenv with genai-cdk[runtime] (default {DEFAULT_VENV})"
    )
    slurm.add_argument("--out", type=Path, help="where the script goes (default: standard output)")
    slurm.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key, e.g. --set mode=qlora"
    )
    slurm.add_argument(
        "--allow-local-paths",
        action="store_true",
        help="accept output, checkpoint, data and model paths outside /fsx (only if they are shared otherwise)",
    )
    slurm.set_defaults(run=_slurm_script)

    job = sub.add_parser(
        "job",
        help="start ONE SageMaker training job (SageMaker Python SDK v3) on the pipeline's Train-step contract",
        description="Start one training job without the pipeline, through the SageMaker Python SDK v3 "
        "(ModelTrainer), exactly as the pipeline's Train step runs it: the image as `genai train launch`, the "
        "'train' and 'model' channels, hyperparameters checked against TrainConfig, checkpoints in "
        "/opt/ml/checkpoints. Needs the sagemaker extra (`make setup-sagemaker` in this repository).",
    )
    job.add_argument(
        "--instance-type", required=True, metavar="TYPE", help="e.g. ml.trn1.32xlarge (one process per NeuronCore/GPU)"
    )
    job.add_argument(
        "--image", required=True, metavar="URI", help="ECR URI:TAG of the training image (containers/training)"
    )
    job.add_argument(
        "--role", required=True, metavar="ARN", help="ARN of the job's execution role (e.g. the pipeline's)"
    )
    job.add_argument(
        "--dataset", required=True, metavar="S3_URI", help="s3://BUCKET/KEY of the training data (the 'train' channel)"
    )
    job.add_argument(
        "--base-model",
        required=True,
        metavar="S3_PREFIX",
        help="s3://BUCKET/PREFIX/ of the uncompressed base model (the 'model' channel)",
    )
    job.add_argument(
        "--output",
        required=True,
        metavar="S3_PREFIX",
        help="s3://BUCKET/PREFIX/ for the model (JOB/output/model.tar.gz)",
    )
    job.add_argument("--instance-count", type=positive_int, default=1, metavar="N", help="instances (default 1)")
    job.add_argument(
        "--volume-size",
        type=positive_int,
        default=200,
        metavar="GB",
        help="EBS volume, where the type has no NVMe storage (default 200)",
    )
    job.add_argument("--spot", action="store_true", help="managed spot training (needs --checkpoints)")
    job.add_argument("--max-runtime", type=positive_float, default=24.0, metavar="H", help="hours (default 24)")
    job.add_argument("--max-wait", type=positive_float, metavar="H", help="spot: hours of wait + run (1.5 x runtime)")
    job.add_argument(
        "--checkpoints",
        metavar="S3_PREFIX",
        help="s3://BUCKET/PREFIX/ synced with /opt/ml/checkpoints (the same resumes)",
    )
    job.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="hyperparameter, e.g. --set lora.r=8"
    )
    job.add_argument(
        "--kms-key", metavar="KEY", help="KMS key for the model artifacts (and the volume, where it has no NVMe)"
    )
    job.add_argument("--subnet", action="append", default=[], metavar="ID", help="run in a VPC: subnet ID (repeat)")
    job.add_argument(
        "--security-group", action="append", default=[], metavar="ID", help="run in a VPC: security group ID (repeat)"
    )
    job.add_argument("--network-isolation", action="store_true", help="no network access from the container")
    job.add_argument("--wait", action="store_true", help="stream the job's logs until it ends; exit 1 if it fails")
    job.set_defaults(run=_job)

    submit = sub.add_parser("submit", help="start the deployed fine-tuning pipeline for a dataset")
    submit.add_argument("-c", dest="context", required=True, metavar="env=NAME", help="the environment, e.g. env=dev")
    submit.add_argument("--dataset", required=True, help="s3://BUCKET/KEY of the training data")
    submit.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="hyperparameter override")
    submit.set_defaults(run=_submit)


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
    # Under torchrun rank 0 alone wrote the outputs (test.jsonl included): it alone evaluates.
    if config.evaluate and not args.no_eval and os.environ.get("RANK", "0") == "0":
        from ..train.evaluate import evaluate_before_after

        report = evaluate_before_after(
            config.model, Path(result.model_dir), config.output_dir / "test.jsonl", config.output_dir, result.losses
        )
        print(json.dumps(report, indent=2))
    return 0


def _launch(args: argparse.Namespace) -> int:
    import subprocess

    from ..train.config import load_config
    from ..train.launch import torchrun_command

    load_config(args.config, _pairs(args.set))  # refuse a bad config here, once, not in every process

    forwarded = ([f"--config={args.config}"] if args.config else []) + [f"--set={item}" for item in args.set]
    command = torchrun_command(forwarded + (["--no-eval"] if args.no_eval else []))
    print(" ".join(command), flush=True)
    return subprocess.run(command, check=False).returncode


def _evaluate(args: argparse.Namespace) -> int:
    from genai_contracts.evaluation import metric_line

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
        print(metric_line(name, value))  # FineTuningPipeline's metric definitions read these lines
    print(json.dumps(report, indent=2))
    return 0


def _slurm_script(args: argparse.Namespace) -> int:
    import sys

    from ..errors import UsageError
    from ..train.slurm import slurm_script

    job = slurm_script(
        args.config,
        args.nodes,
        instance_type=args.instance_type,
        partition=args.partition,
        time=args.time,
        job_name=args.job_name,
        venv=args.venv,
        overrides=_pairs(args.set),
        allow_local_paths=args.allow_local_paths,
    )
    if args.out is None:
        sys.stdout.write(job.text)
        return 0
    if not args.out.parent.is_dir():
        raise UsageError(f"--out={args.out}: no folder {args.out.parent}")
    args.out.write_text(job.text)
    args.out.chmod(0o755)
    # Slurm does not create the folder of #SBATCH --output; without it the job has no log. Create it here on
    # the cluster (never a stray /fsx on a machine that does not mount it).
    logs = Path(job.log_dir)
    try:
        if logs.is_relative_to(SHARED_ROOT) and not Path(SHARED_ROOT).is_dir():
            raise FileNotFoundError(f"{SHARED_ROOT} is not mounted here")
        logs.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(f"genai: note: create {logs} on the cluster before sbatch ({error})", file=sys.stderr)
    print(
        f"wrote {args.out}: {job.nodes} x {job.instance_type}, {job.processes_per_node} process(es) per node, "
        f"outputs in {job.output_dir}; submit it on the login node: sbatch {args.out}"
    )
    return 0


def _submit(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..train.submit import submit

    key, _, env = args.context.partition("=")
    if key != "env" or not env:
        raise UsageError(f"-c {args.context}: use -c env=NAME")
    print(json.dumps(submit(env, args.dataset, hyperparameters=_pairs(args.set)), indent=2))
    return 0


def _job(args: argparse.Namespace) -> int:
    from ..train.job import job_spec, start

    spec = job_spec(
        instance_type=args.instance_type,
        image=args.image,
        role=args.role,
        dataset=args.dataset,
        base_model=args.base_model,
        output=args.output,
        instance_count=args.instance_count,
        volume_size_gb=args.volume_size,
        spot=args.spot,
        max_runtime_hours=args.max_runtime,
        max_wait_hours=args.max_wait,
        checkpoints=args.checkpoints,
        overrides=_pairs(args.set),
        kms_key=args.kms_key,
        subnets=args.subnet,
        security_groups=args.security_group,
        network_isolation=args.network_isolation,
    )
    result = start(spec, wait=args.wait)
    print(json.dumps(result, indent=2))
    return 1 if args.wait and result["TrainingJobStatus"] != "Completed" else 0
