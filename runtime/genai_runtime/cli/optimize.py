"""``genai optimize``: turn a fine-tuned model into a deployable artifact."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, cast

from genai_contracts.lmi_engine import NEURON_DTYPES
from genai_contracts.lmi_options import DTYPE_CHOICES, ROLLING_BATCH_CHOICES, LmiOptions

from ._args import existing_dir, fraction, model_dir, positive_float, positive_int

# The flags of `package` and `compile` are LmiOptions fields: their defaults and choices come from it, and
# LmiOptions itself refuses a bad value (its message names the option).
OPTION_DEFAULTS = LmiOptions()


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("optimize", help="merge, quantize, prune, distill, compile, package")
    sub = group.add_subparsers(dest="command", metavar="COMMAND", required=True)

    merge = sub.add_parser("merge", help="merge a LoRA adapter into its base model")
    merge.add_argument("--model", type=model_dir, required=True, help="base model folder")
    merge.add_argument("--adapter", type=existing_dir, required=True, help="PEFT adapter folder")
    merge.add_argument("--out", type=Path, required=True)
    merge.set_defaults(run=_merge)

    quantize = sub.add_parser("quantize", help="int8 (CPU, torchao) or 4-bit GPTQ weight quantization")
    quantize.add_argument("--model", type=model_dir, required=True)
    quantize.add_argument("--out", type=Path, required=True)
    quantize.add_argument("--method", choices=("int8", "gptq"), default="int8")
    quantize.add_argument("--calibration", type=Path, help="GPTQ: calibration texts (.txt lines or .jsonl 'text')")
    quantize.add_argument("--bits", type=positive_int, default=4, help="GPTQ bits (default: %(default)s)")
    quantize.add_argument("--sequence-length", type=positive_int, default=4096, help="GPTQ (default: %(default)s)")
    quantize.add_argument("--group-size", type=int, default=128, help="GPTQ group size, -1 for per-column")
    quantize.set_defaults(run=_quantize)

    prune = sub.add_parser("prune", help="unstructured magnitude pruning to a target sparsity")
    prune.add_argument("--model", type=model_dir, required=True)
    prune.add_argument("--out", type=Path, required=True)
    prune.add_argument("--sparsity", type=fraction, default=0.5, help="fraction of weights zeroed (default 0.5)")
    prune.set_defaults(run=_prune)

    distill = sub.add_parser("distill", help="knowledge distillation of a student from a teacher")
    distill.add_argument("--teacher", type=model_dir, required=True)
    distill.add_argument("--student", type=model_dir, required=True)
    distill.add_argument("--dataset", type=Path, required=True, help=".txt (a text per line) or .jsonl with 'text'")
    distill.add_argument("--out", type=Path, required=True)
    distill.add_argument("--temperature", type=positive_float, default=2.0)
    distill.add_argument("--alpha", type=float, default=0.5, help="weight of the soft-target KL loss (0..1)")
    distill.add_argument("--epochs", type=positive_int, default=1)
    distill.add_argument("--batch-size", type=positive_int, default=4)
    distill.add_argument("--learning-rate", type=positive_float, default=5e-4)
    distill.set_defaults(run=_distill)

    compile_ = sub.add_parser("compile", help="compile for Inferentia2 with optimum-neuron (Neuron image only)")
    compile_.add_argument("--model", type=model_dir, required=True)
    compile_.add_argument("--out", type=Path, required=True)
    compile_.add_argument("--instance-type", default="ml.inf2.xlarge")
    # Defaults come from the LmiOptions the endpoint renders, so the graphs match what LMI loads:
    # batch = max_rolling_batch_size, sequence = n_positions, cores = tensor_parallel_degree.
    compile_.add_argument(
        "--batch-size",
        type=positive_int,
        help="default: the endpoint's max_rolling_batch_size "
        f"(LmiOptions default {OPTION_DEFAULTS.max_rolling_batch_size})",
    )
    compile_.add_argument(
        "--sequence-length",
        type=positive_int,
        help="default: n_positions (4096, the book's) - the endpoint must set the same",
    )
    compile_.add_argument(
        "--num-cores",
        type=positive_int,
        help="default: tensor_parallel_degree, i.e. every NeuronCore of --instance-type",
    )
    compile_.add_argument(
        "--auto-cast-type",
        default=OPTION_DEFAULTS.dtype,
        help=f"{', '.join(sorted(NEURON_DTYPES))} (the endpoint's dtype; default: %(default)s)",
    )
    compile_.set_defaults(run=_compile)

    package = sub.add_parser("package", help="lay out a model for LMI and upload it to S3")
    package.add_argument("--model", type=model_dir, required=True)
    package.add_argument("--out", type=Path, required=True, help="new folder for the packaged model")
    package.add_argument("--instance-type", required=True, help="the endpoint's instance type, e.g. ml.inf2.48xlarge")
    package.add_argument("--tensor-parallel-degree", type=positive_int)
    package.add_argument(
        "--rolling-batch",
        default=OPTION_DEFAULTS.rolling_batch,
        help=f"{', '.join(ROLLING_BATCH_CHOICES)}: auto is vLLM async on GPU, tnx on Neuron; disable goes with "
        "--custom-handler (default: %(default)s)",
    )
    package.add_argument(
        "--max-rolling-batch-size",
        type=positive_int,
        default=OPTION_DEFAULTS.max_rolling_batch_size,
        help="default: %(default)s",
    )
    package.add_argument(
        "--dtype", default=OPTION_DEFAULTS.dtype, help=f"{', '.join(DTYPE_CHOICES)} (default: %(default)s)"
    )
    package.add_argument("--n-positions", type=positive_int)
    package.add_argument("--max-model-len", type=positive_int)
    package.add_argument(
        "--compiled",
        type=existing_dir,
        help="Neuron graphs from `genai optimize compile`: copied to compiled/, which becomes "
        "option.compiled_graph_path; their batch/sequence/cores must match the options",
    )
    package.add_argument(
        "--adapters",
        type=existing_dir,
        help="LoRA adapters, one sub-folder per name (served by name with --enable-lora)",
    )
    package.add_argument("--enable-lora", action="store_true", help="serve the --adapters by name (GPU)")
    package.add_argument(
        "--custom-handler",
        action="store_true",
        help="replace LMI's engine with genai's handler (needs --rolling-batch disable; "
        "default: keep LMI's engine and add the formatters)",
    )
    package.add_argument("--s3-uri", help="upload to s3://BUCKET/PREFIX/ (omit to only lay out)")
    package.add_argument(
        "--format",
        choices=("prefix", "tarball"),
        default="prefix",
        help="uncompressed prefix (LMI's recommendation) or model.tar.gz",
    )
    package.add_argument("--kms-key-id", help="encrypt uploads with this KMS key")
    package.set_defaults(run=_package)


def _print(report) -> None:
    print(json.dumps(asdict(cast(Any, report)) if is_dataclass(report) else report, indent=2))


def _merge(args: argparse.Namespace) -> int:
    from ..optimize.merge import merge_adapter

    _print(merge_adapter(args.model, args.adapter, args.out))
    return 0


def _quantize(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..optimize import quantize

    if args.method == "int8":
        report = quantize.quantize_int8(args.model, args.out)
    else:
        if args.calibration is None:
            raise UsageError("--method gptq needs --calibration FILE (the texts GPTQ calibrates on)")
        report = quantize.quantize_gptq(
            args.model,
            args.out,
            args.calibration,
            bits=args.bits,
            sequence_length=args.sequence_length,
            group_size=args.group_size,
        )
    _print({**asdict(report), "size_ratio": round(report.size_ratio, 3)})
    return 0


def _prune(args: argparse.Namespace) -> int:
    from ..optimize.prune import prune_model

    report = prune_model(args.model, args.out, args.sparsity)
    print(
        json.dumps(
            {
                "overall_sparsity": report.overall_sparsity,
                "target_sparsity": report.target_sparsity,
                "perplexity_before": report.perplexity_before,
                "perplexity_after": report.perplexity_after,
                "layers": len(report.per_layer),
            },
            indent=2,
        )
    )
    for name, sparsity in report.per_layer.items():
        print(f"  {name}: {sparsity:.3f}")
    return 0


def _distill(args: argparse.Namespace) -> int:
    from ..optimize.distill import distill

    report = distill(
        args.teacher,
        args.student,
        args.dataset,
        args.out,
        temperature=args.temperature,
        alpha=args.alpha,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
    )
    _print(report)
    return 0


def _compile(args: argparse.Namespace) -> int:
    from ..optimize.compile import CompileSettings, compile_for_neuron

    settings = CompileSettings.for_endpoint(
        args.instance_type,
        batch_size=args.batch_size,
        sequence_length=args.sequence_length,
        num_cores=args.num_cores,
        auto_cast_type=args.auto_cast_type,
    )
    print(f"compiled to {compile_for_neuron(args.model, args.out, settings)}")
    return 0


def _package(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..optimize import package

    try:
        options = LmiOptions(
            tensor_parallel_degree=args.tensor_parallel_degree,
            rolling_batch=args.rolling_batch,
            max_rolling_batch_size=args.max_rolling_batch_size,
            dtype=args.dtype,
            n_positions=args.n_positions,
            max_model_len=args.max_model_len,
            enable_lora=args.enable_lora,
            compiled_graph_path=package.COMPILED_GRAPH_PATH if args.compiled else None,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None
    folder = package.layout(
        args.model,
        args.out,
        options,
        args.instance_type,
        custom_handler=args.custom_handler,
        adapters_dir=args.adapters,
        compiled_dir=args.compiled,
    )
    print(f"laid out {folder} with serving.properties and {package.MANIFEST}")
    if args.s3_uri:
        upload = package.upload_prefix if args.format == "prefix" else package.upload_tarball
        report = upload(folder, args.s3_uri, kms_key_id=args.kms_key_id)
        print(f"{report.uri}: {len(report.uploaded)} uploaded, {len(report.unchanged)} unchanged")
    return 0
