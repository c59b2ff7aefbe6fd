"""The invocation-logging custom resource at the botocore level: what it calls on create, update and delete.

Model invocation logging is one setting per account and Region, so a delete must leave it on unless the
stack asked for its removal, turned it on itself, and still owns it.
"""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber

from lambdas import bedrock_invocation_logging as handler

CONFIG = {
    "cloudWatchConfig": {
        "logGroupName": "genai-prod-agents-GovernanceInvocationLogs",
        "roleArn": "arn:aws:iam::123456789012:role/genai-prod-agents-GovernanceLoggingRole",
        "largeDataDeliveryS3Config": {"bucketName": "genai-prod-invocation-logs", "keyPrefix": "large-data"},
    },
    "s3Config": {"bucketName": "genai-prod-invocation-logs", "keyPrefix": "invocations"},
    "textDataDeliveryEnabled": True,
    "imageDataDeliveryEnabled": True,
    "embeddingDataDeliveryEnabled": True,
}
SOMEONE_ELSES = {
    "s3Config": {"bucketName": "security-team-central-logs", "keyPrefix": "bedrock"},
    "textDataDeliveryEnabled": True,
}
ENABLED_HERE = "bedrock-invocation-logging/us-east-1/enabled-here"
REPLACED = "bedrock-invocation-logging/us-east-1/replaced"


@pytest.fixture
def bedrock():
    client = boto3.client("bedrock", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()  # every expected call was made, and (Stubber) no other


def event(kind: str, physical_id: str | None = None, remove: str = "false") -> dict:
    body = {
        "RequestType": kind,
        "ResourceProperties": {
            "ServiceToken": "arn:...",
            "LoggingConfig": json.dumps(CONFIG),
            "RemoveOnDelete": remove,
        },
    }
    if physical_id:
        body["PhysicalResourceId"] = physical_id
    return body


def test_create_where_logging_was_off_puts_the_config_and_records_that_this_stack_turned_it_on(bedrock):
    client, stub = bedrock
    stub.add_response("get_model_invocation_logging_configuration", {}, {})
    stub.add_response("put_model_invocation_logging_configuration", {}, {"loggingConfig": CONFIG})
    result = handler.on_event(event("Create"), client=client)
    assert result["PhysicalResourceId"] == ENABLED_HERE


def test_create_where_logging_was_on_records_that_it_replaced_someone_elses(bedrock):
    client, stub = bedrock
    stub.add_response("get_model_invocation_logging_configuration", {"loggingConfig": SOMEONE_ELSES}, {})
    stub.add_response("put_model_invocation_logging_configuration", {}, {"loggingConfig": CONFIG})
    assert handler.on_event(event("Create"), client=client)["PhysicalResourceId"] == REPLACED


@pytest.mark.parametrize("physical_id", [ENABLED_HERE, REPLACED])
def test_update_puts_the_new_config_and_keeps_the_physical_id(bedrock, physical_id):
    client, stub = bedrock
    stub.add_response("put_model_invocation_logging_configuration", {}, {"loggingConfig": CONFIG})
    assert handler.on_event(event("Update", physical_id), client=client)["PhysicalResourceId"] == physical_id


@pytest.mark.parametrize("physical_id", [ENABLED_HERE, REPLACED])
def test_delete_by_default_calls_nothing_and_leaves_logging_on(bedrock, physical_id):
    client, _ = bedrock  # no response queued: any Bedrock call would fail the test
    assert handler.on_event(event("Delete", physical_id), client=client)["PhysicalResourceId"] == physical_id


def test_delete_asked_for_switches_logging_off_when_this_stack_turned_it_on_and_still_owns_it(bedrock):
    client, stub = bedrock
    stub.add_response("get_model_invocation_logging_configuration", {"loggingConfig": CONFIG}, {})
    stub.add_response("delete_model_invocation_logging_configuration", {}, {})
    handler.on_event(event("Delete", ENABLED_HERE, remove="true"), client=client)


def test_delete_asked_for_keeps_logging_that_was_on_before_this_stack(bedrock):
    client, _ = bedrock
    handler.on_event(event("Delete", REPLACED, remove="true"), client=client)


def test_delete_asked_for_keeps_logging_someone_else_has_set_since(bedrock):
    client, stub = bedrock
    stub.add_response("get_model_invocation_logging_configuration", {"loggingConfig": SOMEONE_ELSES}, {})
    handler.on_event(event("Delete", ENABLED_HERE, remove="true"), client=client)


def test_delete_after_a_failed_create_calls_nothing(bedrock):
    client, _ = bedrock  # the Provider framework's physical id for a create that failed is no state of ours
    handler.on_event(event("Delete", "2f7c2f0e-request-id", remove="true"), client=client)


def test_an_unknown_request_type_is_an_error(bedrock):
    client, _ = bedrock
    with pytest.raises(ValueError, match="RequestType='Replace' is invalid"):
        handler.on_event(event("Replace", ENABLED_HERE), client=client)
