"""Argument types that fail with a one-line reason (argparse prints it and exits 2)."""

from __future__ import annotations

import argparse
from pathlib import Path


def _integer(text: str, minimum: int, bound: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{value} must be {bound}")
    return value


def positive_int(text: str) -> int:
    return _integer(text, 1, "at least 1")


def port(text: str) -> int:
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (1-65535)")
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def fraction(text: str) -> float:
    value = _number(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{value} must lie strictly between 0 and 1")
    return value


def positive_float(text: str) -> float:
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} must be above 0")
    return value


def model_dir(text: str) -> Path:
    path = Path(text)
    if not (path / "config.json").is_file():
        raise argparse.ArgumentTypeError(f"{text} is not a model folder (no config.json in it)")
    return path


def existing_dir(text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a folder")
    return path


def non_negative_int(text: str) -> int:
    return _integer(text, 0, "0 or more")


def fraction_or_bound(text: str) -> float:
    value = _number(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} must lie between 0 and 1")
    return value


def records_failure(group: str):
    """Inside a SageMaker job, a failure's reason goes to /opt/ml/output/failure (the job's FailureReason):
    ``set_defaults(run=records_failure("train")(_sft))``."""
    import functools

    def decorate(run):
        @functools.wraps(run)
        def wrapped(args: argparse.Namespace) -> int:
            from ..train.platform import record_failure

            try:
                code = run(args)
            except Exception as error:
                record_failure(error)
                raise
            if code:
                record_failure(RuntimeError(f"genai {group} {args.command} exited with status {code}"))
            return code

        return wrapped

    return decorate
