"""``genai train submit``: start the deployed fine-tuning pipeline (Step Functions) for a dataset."""

from __future__ import annotations

import json
import re
import time

from ..errors import UsageError

OUTPUT_KEY = "FineTuningPipelineArn"


def pipeline_arn(env: str, cloudformation=None) -> str:
    """The state machine ARN from the ``genai-<env>-training`` stack's outputs."""
    from botocore.exceptions import ClientError

    stack = f"genai-{env}-training"
    client = cloudformation or _client("cloudformation")
    try:
        outputs = client.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
    except ClientError as error:
        raise UsageError(
            f"-c env={env}: stack {stack} not found ({error.response['Error']['Message']}); "
            "deploy it with `npx cdk deploy -c env=... --all` first"
        ) from None
    for output in outputs:
        if output["OutputKey"] == OUTPUT_KEY:
            return output["OutputValue"]
    raise UsageError(f"stack {stack} has no {OUTPUT_KEY} output; is it the training stack of this toolkit?")


def submit(
    env: str, dataset_uri: str, *, hyperparameters: dict | None = None, stepfunctions=None, cloudformation=None
) -> dict:
    if not re.match(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+", dataset_uri):
        raise UsageError(f"--dataset={dataset_uri}: give the S3 URI of the training data, s3://BUCKET/KEY")
    hyperparameters = job_hyperparameters(hyperparameters or {})
    arn = pipeline_arn(env, cloudformation)
    client = stepfunctions or _client("stepfunctions")
    name = f"sft-{time.strftime('%Y%m%d-%H%M%S')}"
    response = client.start_execution(
        stateMachineArn=arn,
        name=name,
        # The state machine merges these over the pipeline's own into the job's HyperParameters.
        input=json.dumps({"dataset": dataset_uri, "hyperparameters": hyperparameters}),
    )
    return {"executionArn": response["executionArn"], "stateMachineArn": arn, "name": name}


def job_hyperparameters(overrides: dict) -> dict[str, str]:
    """``--set`` overrides as SageMaker hyperparameters (string values, ``__`` nesting), checked against
    ``TrainConfig`` here, so a typo is refused before an execution starts rather than inside the job."""
    from genai_contracts.train_config import hyperparameter_problems

    converted = {
        str(key).replace(".", "__"): value if isinstance(value, str) else json.dumps(value)
        for key, value in overrides.items()
    }
    problems = hyperparameter_problems(converted)
    if problems:
        raise UsageError(f"--set: {'; '.join(problems)}")
    return converted


def _client(service: str):
    import boto3

    return boto3.client(service)
