"""Custom resource: Bedrock model invocation logging, one setting per account and Region.

CloudFormation has no resource for it, so ``BedrockGovernance`` (with ``owns_invocation_logging=True``)
deploys this handler (run by the CDK Provider framework, on the plain Python Lambda runtime: boto3
only). Properties: ``LoggingConfig`` (the ``loggingConfig`` of ``PutModelInvocationLoggingConfiguration``,
as a JSON string so its booleans stay booleans) and ``RemoveOnDelete`` (``"true"``/``"false"``).

- Create: reads the current setting, then puts this stack's. The physical id records whether logging
  was off before (``.../enabled-here``) or already on (``.../replaced``): only in the first case did this
  stack turn it on.
- Update: puts the new configuration and keeps the physical id (so CloudFormation never replaces, and
  so never deletes, the resource on an update, and the record of who turned logging on survives).
- Delete: a no-op (logging stays on, as it is), unless ``RemoveOnDelete`` is ``"true"`` *and* this stack
  turned logging on *and* the current setting is still this stack's (same bucket and log group); only
  then ``DeleteModelInvocationLoggingConfiguration``.
"""

from __future__ import annotations

import json
import logging

logger = logging.getLogger()
logger.setLevel(logging.INFO)

ENABLED_HERE = "enabled-here"
REPLACED = "replaced"


def _client():
    import boto3

    return boto3.client("bedrock")


def _destinations(config: dict | None) -> tuple:
    """What identifies a logging configuration as someone's: its bucket and its log group."""
    config = config or {}
    return (
        (config.get("s3Config") or {}).get("bucketName"),
        (config.get("cloudWatchConfig") or {}).get("logGroupName"),
    )


def _flag(value) -> bool:
    return str(value).strip().lower() == "true"


def on_event(event: dict, context=None, client=None) -> dict:
    client = client or _client()
    kind = event["RequestType"]
    props = event.get("ResourceProperties") or {}
    region = client.meta.region_name
    if kind == "Create":
        before = client.get_model_invocation_logging_configuration().get("loggingConfig")
        client.put_model_invocation_logging_configuration(loggingConfig=json.loads(props["LoggingConfig"]))
        state = REPLACED if before else ENABLED_HERE
        logger.info("invocation logging in %s set (%s): was %s", region, state, _destinations(before))
        return {"PhysicalResourceId": f"bedrock-invocation-logging/{region}/{state}", "Data": {"State": state}}
    physical_id = event["PhysicalResourceId"]
    if kind == "Update":
        client.put_model_invocation_logging_configuration(loggingConfig=json.loads(props["LoggingConfig"]))
        return {"PhysicalResourceId": physical_id}
    if kind != "Delete":
        raise ValueError(f"RequestType={kind!r} is invalid: expected Create, Update or Delete")
    if not _flag(props.get("RemoveOnDelete")):
        logger.info("invocation logging in %s kept: RemoveOnDelete is not true", region)
        return {"PhysicalResourceId": physical_id}
    if not physical_id.endswith(f"/{ENABLED_HERE}"):
        logger.info("invocation logging in %s kept: it was on before this stack set it", region)
        return {"PhysicalResourceId": physical_id}
    current = client.get_model_invocation_logging_configuration().get("loggingConfig")
    ours = _destinations(json.loads(props["LoggingConfig"]))
    if _destinations(current) != ours:
        logger.info("invocation logging in %s kept: it now logs to %s, not %s", region, _destinations(current), ours)
        return {"PhysicalResourceId": physical_id}
    client.delete_model_invocation_logging_configuration()
    logger.info("invocation logging in %s switched off (this stack turned it on)", region)
    return {"PhysicalResourceId": physical_id}
