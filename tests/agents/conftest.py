"""botocore-level stubs for event-stream operations, and a moto DynamoDB claims table."""

from __future__ import annotations

import datetime as dt

import pytest
from botocore.awsrequest import AWSResponse


def stub_operation(client, operation: str, parsed: dict, requests: list) -> None:
    """Answer ``operation`` with ``parsed`` after botocore validated and serialized the request.

    botocore's ``Stubber`` validates responses against their shapes and cannot express event streams
    (InvokeAgent, InvokeModelWithResponseStream); this hooks the same ``before-call`` event it uses.
    """
    service = client.meta.service_model.service_id.hyphenize()
    name = client.meta.service_model.operation_model(operation).name

    def answer(params, **_):
        requests.append(params)
        return AWSResponse("https://stub", 200, {}, None), parsed

    client.meta.events.register(f"before-call.{service}.{name}", answer)


@pytest.fixture
def aws(monkeypatch):
    from moto import mock_aws

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield


@pytest.fixture
def claims_table(aws, monkeypatch):
    import boto3

    from lambdas import claims_action_group

    table = boto3.resource("dynamodb").create_table(
        TableName="claims",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "claimId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "claimId", "AttributeType": "S"}],
    )
    today = dt.date.today()
    for claim, holder, status, renews_in in [
        ("claim-006", "A945123", "Open", 5),
        ("claim-857", "A645987", "Open", 40),
        ("claim-334", "A987654", "Closed", 3),
        ("claim-111", "A111222", "Open", 400),
    ]:
        table.put_item(
            Item={
                "claimId": claim,
                "policyHolderId": holder,
                "claimStatus": status,
                "policyRenewalDate": (today + dt.timedelta(days=renews_in)).isoformat(),
            }
        )
    monkeypatch.setenv("CLAIMS_TABLE", "claims")
    claims_action_group.table.cache_clear()
    yield table
    claims_action_group.table.cache_clear()
