"""Bedrock custom models: validate a prompt/completion dataset, upload it, run the job to its end.

The book's loop polls ``get_model_customization_job`` without sleeping and never stops on failure;
``wait_for_job`` sleeps between polls, gives up after a timeout, and raises on Failed or Stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError

MAX_EXAMPLES = 100_000
MAX_ERRORS_SHOWN = 5
TERMINAL = ("Completed", "Failed", "Stopped")


class CustomizationFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class DatasetReport:
    examples: int
    max_prompt_chars: int
    max_completion_chars: int


def validate_dataset(path: Path) -> DatasetReport:
    """Every line a JSON object with non-empty string ``prompt`` and ``completion``; errors name the line."""
    if not path.is_file():
        raise UsageError(f"{path}: no such dataset file")
    errors, examples, longest_prompt, longest_completion = [], 0, 0, 0
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                errors.append(f"line {number}: not JSON ({error.msg})")
                continue
            if not isinstance(row, dict):
                errors.append(f"line {number}: expected an object with prompt and completion")
                continue
            extra = set(row) - {"prompt", "completion"}
            if extra:
                errors.append(f"line {number}: unexpected key(s) {', '.join(sorted(extra))}")
            for key in ("prompt", "completion"):
                if not isinstance(row.get(key), str) or not row[key].strip():
                    errors.append(f"line {number}: {key} must be a non-empty string")
            examples += 1
            longest_prompt = max(longest_prompt, len(str(row.get("prompt", ""))))
            longest_completion = max(longest_completion, len(str(row.get("completion", ""))))
    if errors:
        shown = "; ".join(errors[:MAX_ERRORS_SHOWN])
        more = f" (and {len(errors) - MAX_ERRORS_SHOWN} more)" if len(errors) > MAX_ERRORS_SHOWN else ""
        raise UsageError(f"{path}: {shown}{more}")
    if not examples:
        raise UsageError(f"{path}: no examples; write one JSON object per line")
    if examples > MAX_EXAMPLES:
        raise UsageError(f"{path}: {examples} examples; Bedrock customization takes at most {MAX_EXAMPLES}")
    return DatasetReport(examples, longest_prompt, longest_completion)


def upload_dataset(path: Path, s3_uri: str, s3_client=None, kms_key_id: str | None = None) -> str:
    validate_dataset(path)
    if not s3_uri.startswith("s3://") or "/" not in s3_uri[5:]:
        raise UsageError(f"s3_uri={s3_uri!r} is invalid: use s3://BUCKET/KEY.jsonl")
    bucket, key = s3_uri[5:].split("/", 1)
    if s3_client is None:
        import boto3

        s3_client = boto3.client("s3")
    extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id} if kms_key_id else {}
    s3_client.upload_file(str(path), bucket, key, ExtraArgs=extra or None)
    return s3_uri


def start_job(
    bedrock_client,
    *,
    job_name: str,
    model_name: str,
    role_arn: str,
    base_model_id: str,
    training_s3_uri: str,
    output_s3_uri: str,
    hyperparameters: dict[str, str],
    customization_type: str = "FINE_TUNING",
    kms_key_id: str | None = None,
) -> str:
    if customization_type not in ("FINE_TUNING", "CONTINUED_PRE_TRAINING"):
        raise UsageError(f"customization_type={customization_type!r} is invalid: FINE_TUNING or CONTINUED_PRE_TRAINING")
    if not all(isinstance(v, str) for v in hyperparameters.values()):
        raise UsageError("hyperparameters must be strings, e.g. {'epochCount': '2'} (Bedrock's own format)")
    request = {
        "jobName": job_name,
        "customModelName": model_name,
        "roleArn": role_arn,
        "baseModelIdentifier": base_model_id,
        "customizationType": customization_type,
        "hyperParameters": hyperparameters,
        "trainingDataConfig": {"s3Uri": training_s3_uri},
        "outputDataConfig": {"s3Uri": output_s3_uri},
    }
    if kms_key_id:
        request["customModelKmsKeyId"] = kms_key_id
    return bedrock_client.create_model_customization_job(**request)["jobArn"]


def wait_for_job(
    bedrock_client,
    job_arn: str,
    *,
    timeout_s: float = 6 * 3600,
    poll_s: float = 60,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    on_status: Callable[[str], None] | None = None,
) -> dict:
    """Poll until Completed (returns the job) or raise on Failed/Stopped or after ``timeout_s``."""
    deadline = clock() + timeout_s
    while True:
        job = bedrock_client.get_model_customization_job(jobIdentifier=job_arn)
        status = job["status"]
        if on_status:
            on_status(status)
        if status == "Completed":
            return job
        if status in TERMINAL:
            raise CustomizationFailed(f"{job_arn} ended {status}: {job.get('failureMessage', 'no reason given')}")
        if clock() + poll_s > deadline:
            raise TimeoutError(
                f"{job_arn} still {status} after {timeout_s:.0f} s; it keeps running: check it later "
                "or stop it with stop_model_customization_job"
            )
        sleep(poll_s)
