"""``lambdas.claims_action_group`` under fuzzed Bedrock agent events, malformed table items and a failing
table, on moto DynamoDB.

Every answer must be in Bedrock's response shape (Bedrock user guide, "Configure Lambda functions to send
information that an Amazon Bedrock agent elicits from the user"): client garbage a 4xx with an ``error``
message, a table failure a 502 or 503, one malformed item never failing the good ones, and a retried
``sendReminders`` never sending again.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genai_runtime.agents.tools import agent_event
from tests.lambda_events import CONTEXT

from . import tally
from .events import CONNECTION_ERRORS, FAILED_ERRORS, RETRYABLE_ERRORS
from .strategies import anything, huge_text, mutated

SETTINGS = settings(deadline=None, suppress_health_check=list(HealthCheck), database=None)
GROUP = "ClaimManagementActionGroup"
GOOD = [  # claim, holder, status, renews in (days)
    ("claim-006", "A945123", "Open", 5),
    ("claim-857", "A645987", "Open", 40),
    ("claim-334", "A987654", "Closed", 3),
    ("claim-111", "A111222", "Open", 400),
]
EVENT_KEYS = [
    "messageVersion",
    "agent",
    "inputText",
    "sessionId",
    "actionGroup",
    "apiPath",
    "httpMethod",
    "parameters",
    "requestBody",
    "sessionAttributes",
    "promptSessionAttributes",
]


@pytest.fixture
def claims(monkeypatch):
    from moto import mock_aws

    from genai_runtime import aws
    from lambdas import claims_action_group

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("CLAIMS_TABLE", "claims")
    with mock_aws():
        import boto3

        aws.clear_cache()
        table = boto3.resource("dynamodb").create_table(
            TableName="claims",
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "claimId", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "claimId", "AttributeType": "S"}],
        )
        today = dt.date.today()
        for claim, holder, status, days in GOOD:
            table.put_item(
                Item={
                    "claimId": claim,
                    "policyHolderId": holder,
                    "claimStatus": status,
                    "policyRenewalDate": (today + dt.timedelta(days=days)).isoformat(),
                }
            )
        claims_action_group.table.cache_clear()
        yield claims_action_group, table
        claims_action_group.table.cache_clear()
        aws.clear_cache()


def call(module, event) -> dict:
    response = tally.run("claims_action_group", module.handler, event, CONTEXT)
    assert response["messageVersion"] == "1.0"
    inner = response["response"]
    assert all(isinstance(inner[key], str) for key in ("actionGroup", "apiPath", "httpMethod")), response
    status = inner["httpStatusCode"]
    assert isinstance(status, int)
    body = json.loads(inner["responseBody"]["application/json"]["body"])
    if status != 200:
        assert isinstance(body.get("error"), str) and body["error"], response
    return response


def body_of(response: dict):
    return json.loads(response["response"]["responseBody"]["application/json"]["body"])


properties = st.lists(
    st.fixed_dictionaries(
        {
            "name": st.sampled_from(["days", "x", ""]) | st.text(max_size=5),
            "type": st.sampled_from(["integer", "string"]),
        },
        optional={"value": st.integers().map(str) | st.text(max_size=8) | anything | huge_text},
    ),
    max_size=3,
)


@st.composite
def garbage_events(draw):
    path, method = draw(st.sampled_from([("/claims", "GET"), ("/send-reminders", "POST")]))
    event = agent_event(GROUP, path, method, {}, {"days": draw(st.integers(-5, 400))} if method == "POST" else None)
    kind = draw(st.sampled_from(["mutate", "mutate", "properties", "parameters", "content", "foreign"]))
    if kind == "mutate":
        return draw(mutated(event, keys=EVENT_KEYS))
    if kind == "properties":
        return {**event, "requestBody": {"content": {"application/json": {"properties": draw(properties)}}}}
    if kind == "parameters":
        return {**event, "parameters": draw(properties | anything)}
    if kind == "content":
        return {**event, "requestBody": draw(st.dictionaries(st.sampled_from(["content", "x"]), anything, max_size=2))}
    return draw(anything)


@settings(SETTINGS, max_examples=500)
@given(event=garbage_events())
def test_client_garbage_gets_a_4xx_in_bedrocks_shape_never_an_exception(claims, event):
    module, _ = claims
    response = call(module, event)
    assert response["response"]["httpStatusCode"] in (200, 400, 404), response


dynamo_values = st.recursive(
    st.none()
    | st.booleans()
    | st.text(max_size=12)
    | st.integers(-(10**30), 10**30).map(Decimal)
    | st.binary(max_size=4)
    | st.sampled_from(["Open", "Closed", dt.date.today().isoformat(), "2999-01-01"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(min_size=1, max_size=6), inner, max_size=3),
    max_leaves=6,
)
bad_items = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "policyHolderId": dynamo_values,
            "claimStatus": st.sampled_from(["Open"]) | dynamo_values,
            "policyRenewalDate": st.sampled_from([(dt.date.today() + dt.timedelta(days=2)).isoformat()])
            | dynamo_values,
            "extra": dynamo_values,
        },
    ),
    min_size=1,
    max_size=4,
)


@settings(SETTINGS, max_examples=150)
@given(items=bad_items, days=st.integers(1, 365))
def test_malformed_items_never_fail_the_good_ones_and_retries_send_nothing_twice(claims, items, days):
    module, table = claims
    names = [f"fuzz-{n}" for n in range(len(items))]
    for name, item in zip(names, items, strict=True):
        table.put_item(Item={"claimId": name, **item})
    try:
        listed = call(module, agent_event(GROUP, "/claims", "GET", {}, None))
        assert listed["response"]["httpStatusCode"] == 200
        ids = {claim["claimId"] for claim in body_of(listed)}
        assert {"claim-006", "claim-857", "claim-111"} <= ids and "claim-334" not in ids
        event = agent_event(GROUP, "/send-reminders", "POST", {}, {"days": days})
        first, retry = call(module, event), call(module, event)
        assert first["response"]["httpStatusCode"] == retry["response"]["httpStatusCode"] == 200
        due = {holder for _, holder, _, renews in GOOD if renews <= days}
        assert due <= set(body_of(first)["policyHolderIds"])
        assert body_of(retry)["sendReminderStatus"] in ("AlreadySent", "NothingToSend")
        assert body_of(retry)["sendReminderTrackingId"] == body_of(first)["sendReminderTrackingId"]
    finally:
        for name in names:
            table.delete_item(Key={"claimId": name})


table_failures = (
    st.sampled_from([(code, status, 503) for code, status in RETRYABLE_ERRORS])
    | st.sampled_from([(code, status, 502) for code, status in FAILED_ERRORS])
    | st.sampled_from([(error, None, 503) for error in CONNECTION_ERRORS])
)


@settings(SETTINGS, max_examples=120)
@given(failure=table_failures, operation=st.sampled_from(["scan", "update_item"]), days=st.integers(1, 30))
def test_a_failing_table_is_a_502_or_503_with_a_message(claims, failure, operation, days):
    from botocore.exceptions import ClientError

    module, table = claims
    what, http, status = failure

    def fail(**_):
        if isinstance(what, BaseException):
            raise what
        raise ClientError(
            {"Error": {"Code": what, "Message": "fuzzed"}, "ResponseMetadata": {"HTTPStatusCode": http}},
            "Scan" if operation == "scan" else "UpdateItem",
        )

    class Failing:
        def __getattr__(self, name):
            return fail if name == operation else getattr(table, name)

    if operation == "update_item":  # a reminder still to send, so the write happens
        table.put_item(
            Item={
                "claimId": "fuzz-due",
                "policyHolderId": "A000001",
                "policyRenewalDate": dt.date.today().isoformat(),
            }
        )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, "table", lambda: Failing())
        response = call(module, agent_event(GROUP, "/send-reminders", "POST", {}, {"days": days}))
    table.delete_item(Key={"claimId": "fuzz-due"})
    assert response["response"]["httpStatusCode"] == status, (failure, response)
