"""Custom-model fine-tuning: dataset checks, upload (moto S3), job start and wait (botocore Stubber)."""

from __future__ import annotations

import datetime as dt
import json

import boto3
import pytest
from botocore.stub import Stubber

from genai_runtime.bedrock.customization import (
    CustomizationFailed,
    start_job,
    upload_dataset,
    validate_dataset,
    wait_for_job,
)
from genai_runtime.errors import UsageError

JOB = "arn:aws:bedrock:us-east-1:123456789012:model-customization-job/titan/abc123"


def write(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_a_valid_dataset_is_counted_and_bad_lines_are_named(tmp_path):
    good = write(tmp_path / "good.jsonl", [{"prompt": "Summarize: hi", "completion": "A greeting."}] * 3)
    assert validate_dataset(good).examples == 3
    bad = write(
        tmp_path / "bad.jsonl",
        [
            {"prompt": "p", "completion": "c"},
            "not json",
            {"prompt": "p"},
            {"prompt": "p", "completion": "c", "label": 1},
            [1],
        ],
    )
    with pytest.raises(UsageError) as error:
        validate_dataset(bad)
    text = str(error.value)
    assert "line 2: not JSON" in text and "line 3: completion must be a non-empty string" in text
    assert "line 4: unexpected key(s) label" in text and "line 5: expected an object" in text
    with pytest.raises(UsageError, match="no examples"):
        validate_dataset(write(tmp_path / "empty.jsonl", [""]))


def test_upload_goes_to_s3(tmp_path, aws):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="tuning")
    data = write(tmp_path / "train.jsonl", [{"prompt": "p", "completion": "c"}])
    assert upload_dataset(data, "s3://tuning/titan/train.jsonl", s3) == "s3://tuning/titan/train.jsonl"
    assert s3.get_object(Bucket="tuning", Key="titan/train.jsonl")["Body"].read() == data.read_bytes()
    with pytest.raises(UsageError, match="use s3://BUCKET/KEY.jsonl"):
        upload_dataset(data, "tuning/train.jsonl", s3)


def bedrock():
    return boto3.client("bedrock", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def job(status: str, **extra) -> dict:
    now = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    return {
        "jobArn": JOB,
        "jobName": "j",
        "outputModelName": "m",
        "roleArn": "arn:aws:iam::123456789012:role/r",
        "status": status,
        "creationTime": now,
        "baseModelArn": "arn:aws:bedrock:us-east-1::foundation-model/t",
        "hyperParameters": {},
        "trainingDataConfig": {"s3Uri": "s3://tuning/train.jsonl"},
        "validationDataConfig": {"validators": []},
        "outputDataConfig": {"s3Uri": "s3://tuning/out/"},
        **extra,
    }


def test_start_and_wait_until_completed_sleeping_between_polls():
    client, sleeps, statuses = bedrock(), [], []
    with Stubber(client) as stub:
        stub.add_response(
            "create_model_customization_job",
            {"jobArn": JOB},
            {
                "jobName": "j",
                "customModelName": "m",
                "roleArn": "arn:aws:iam::123456789012:role/r",
                "baseModelIdentifier": "amazon.titan-text-express-v1",
                "customizationType": "FINE_TUNING",
                "hyperParameters": {"epochCount": "1"},
                "trainingDataConfig": {"s3Uri": "s3://tuning/train.jsonl"},
                "outputDataConfig": {"s3Uri": "s3://tuning/out/"},
            },
        )
        for status in ("InProgress", "InProgress", "Completed"):
            stub.add_response("get_model_customization_job", job(status), {"jobIdentifier": JOB})
        arn = start_job(
            client,
            job_name="j",
            model_name="m",
            role_arn="arn:aws:iam::123456789012:role/r",
            base_model_id="amazon.titan-text-express-v1",
            training_s3_uri="s3://tuning/train.jsonl",
            output_s3_uri="s3://tuning/out/",
            hyperparameters={"epochCount": "1"},
        )
        done = wait_for_job(client, arn, poll_s=30, sleep=sleeps.append, on_status=statuses.append)
    assert done["status"] == "Completed" and statuses == ["InProgress", "InProgress", "Completed"]
    assert sleeps == [30, 30]


def test_a_failed_job_raises_with_its_reason_and_a_slow_one_times_out():
    client = bedrock()
    with Stubber(client) as stub:
        stub.add_response("get_model_customization_job", job("Failed", failureMessage="Insufficient data"))
        with pytest.raises(CustomizationFailed, match="ended Failed: Insufficient data"):
            wait_for_job(client, JOB, sleep=lambda s: None)
    now = [0.0]
    with Stubber(client) as stub:
        for _ in range(3):
            stub.add_response("get_model_customization_job", job("InProgress"))

        def sleep(seconds):
            now[0] += seconds

        with pytest.raises(TimeoutError, match="still InProgress after 100 s"):
            wait_for_job(client, JOB, timeout_s=100, poll_s=40, sleep=sleep, clock=lambda: now[0])


def test_bad_job_arguments_are_refused():
    with pytest.raises(UsageError, match="hyperparameters must be strings"):
        start_job(
            bedrock(),
            job_name="j",
            model_name="m",
            role_arn="r",
            base_model_id="b",
            training_s3_uri="s3://a/b",
            output_s3_uri="s3://a/c",
            hyperparameters={"epochCount": 2},
        )
