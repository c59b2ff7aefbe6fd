"""The claims action group against Bedrock's exact event and response shapes, on moto DynamoDB."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genai_runtime.agents.tools import agent_event
from tests.lambda_events import CONTEXT

SHIPPED_SCHEMA = (
    Path(__file__).resolve().parents[2] / "constructs" / "genai_cdk" / "assets" / "agent_schemas" / "claims.json"
)


def call(event: dict) -> dict:
    from lambdas.claims_action_group import handler

    return handler(event, CONTEXT)


def body_of(response: dict):
    return json.loads(response["response"]["responseBody"]["application/json"]["body"])


def test_get_all_open_claims_answers_in_bedrocks_shape(claims_table):
    event = agent_event("ClaimManagementActionGroup", "/claims", "GET", {}, None, input_text="open claims?")
    response = call(event)
    assert response["messageVersion"] == "1.0"
    assert {k: response["response"][k] for k in ("actionGroup", "apiPath", "httpMethod", "httpStatusCode")} == {
        "actionGroup": "ClaimManagementActionGroup",
        "apiPath": "/claims",
        "httpMethod": "GET",
        "httpStatusCode": 200,
    }
    assert body_of(response) == [
        {"claimId": "claim-006", "policyHolderId": "A945123", "claimStatus": "Open"},
        {"claimId": "claim-111", "policyHolderId": "A111222", "claimStatus": "Open"},
        {"claimId": "claim-857", "policyHolderId": "A645987", "claimStatus": "Open"},
    ]


def test_send_reminders_reaches_policies_renewing_within_n_days(claims_table):
    from lambdas.claims_action_group import reminder_id

    response = call(agent_event("ClaimManagementActionGroup", "/send-reminders", "POST", {}, {"days": 30}))
    receipt = body_of(response)
    assert response["response"]["httpStatusCode"] == 200
    assert receipt["sendReminderStatus"] == "Sent"
    assert receipt["policyHolderIds"] == ["A945123", "A987654"]
    item = claims_table.get_item(Key={"claimId": "claim-006"})["Item"]
    assert item["lastReminderId"] == reminder_id("claim-006", item["policyRenewalDate"])
    assert item["lastReminderFor"] == item["policyRenewalDate"]
    assert "lastReminderId" not in claims_table.get_item(Key={"claimId": "claim-857"})["Item"]


def test_a_retried_send_reminders_sends_nothing_twice_and_answers_the_same_tracking_id(claims_table):
    from lambdas import claims_action_group

    writes = []
    real = claims_action_group.table

    class Counting:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def update_item(self, **request):
            writes.append(request["Key"]["claimId"])
            assert "attribute_not_exists(lastReminderId)" in request["ConditionExpression"]
            return self.inner.update_item(**request)

    table = Counting(real())
    event = agent_event("ClaimManagementActionGroup", "/send-reminders", "POST", {}, {"days": 30})
    with pytest.MonkeyPatch.context() as patch:  # undone before the fixture clears the real table()'s cache
        patch.setattr(claims_action_group, "table", lambda: table)
        first, retry = body_of(call(event)), body_of(call(event))
    assert first["sendReminderStatus"] == "Sent" and retry["sendReminderStatus"] == "AlreadySent"
    assert retry["sendReminderTrackingId"] == first["sendReminderTrackingId"]
    assert retry["policyHolderIds"] == first["policyHolderIds"] == ["A945123", "A987654"]
    reminded = claims_table.get_item(Key={"claimId": "claim-006"})["Item"]
    assert sorted(writes) == ["claim-006", "claim-006", "claim-334", "claim-334"]  # the retry's writes refused
    assert reminded["lastReminderAt"] <= dt.datetime.now(dt.UTC).isoformat()
    # A wider window reminds only the claims not reminded yet.
    wider = body_of(call(agent_event("ClaimManagementActionGroup", "/send-reminders", "POST", {}, {"days": 60})))
    assert wider["sendReminderStatus"] == "Sent"
    assert wider["sendReminderTrackingId"] != first["sendReminderTrackingId"]


def test_one_malformed_claim_item_never_fails_the_others(claims_table):
    claims_table.put_item(Item={"claimId": "claim-900", "claimStatus": "Open"})  # no policyHolderId
    claims_table.put_item(Item={"claimId": "claim-901", "claimStatus": "Open", "policyHolderId": 42})
    claims_table.put_item(
        Item={
            "claimId": "claim-902",
            "claimStatus": "Open",
            "policyRenewalDate": (dt.date.today() + dt.timedelta(days=2)).isoformat(),
        }
    )
    listed = call(agent_event("ClaimManagementActionGroup", "/claims", "GET", {}, None))
    assert listed["response"]["httpStatusCode"] == 200
    assert [c["claimId"] for c in body_of(listed)] == ["claim-006", "claim-111", "claim-857"]
    sent = call(agent_event("ClaimManagementActionGroup", "/send-reminders", "POST", {}, {"days": 30}))
    assert sent["response"]["httpStatusCode"] == 200
    assert body_of(sent)["policyHolderIds"] == ["A945123", "A987654"]


@pytest.mark.parametrize(
    ("code", "status"),
    [("ProvisionedThroughputExceededException", 503), ("AccessDeniedException", 502)],
)
def test_a_failing_table_is_a_502_or_503_with_a_message(claims_table, code, status):
    from botocore.exceptions import ClientError

    from lambdas import claims_action_group

    class Failing:
        def scan(self, **_):
            raise ClientError({"Error": {"Code": code, "Message": "no"}, "ResponseMetadata": {}}, "Scan")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(claims_action_group, "table", lambda: Failing())
        response = call(agent_event("ClaimManagementActionGroup", "/claims", "GET", {}, None))
    assert response["response"]["httpStatusCode"] == status
    assert code in body_of(response)["error"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"parameters": "days=3"}, "parameters: Input should be a valid list"),
        ({"parameters": [{"name": "days"}]}, "parameters.0.type: Field required"),
        ({"requestBody": {"content": {"application/json": {}}}}, "properties: Field required"),
        ({"requestBody": {"content": {"application/json": {"properties": [{"name": "days", "value": 3}]}}}}, "value"),
        ({"requestBody": {"content": []}}, "requestBody.content: Input should be a valid dictionary"),
        ({"sessionAttributes": {"a": 1}}, "sessionAttributes.a"),
        ({"agent": "bot"}, "agent: Input should be a valid dictionary"),
    ],
)
def test_malformed_events_get_a_400_naming_the_field(claims_table, change, message):
    event = {**agent_event("ClaimManagementActionGroup", "/send-reminders", "POST", {}, {"days": 30}), **change}
    response = call(event)
    assert response["response"]["httpStatusCode"] == 400
    assert message in body_of(response)["error"]


@pytest.mark.parametrize(
    ("path", "method", "body", "status", "message"),
    [
        ("/send-reminders", "POST", {}, 400, "days: Field required"),
        ("/send-reminders", "POST", {"days": "soon"}, 400, "days: Input should be a valid integer"),
        ("/send-reminders", "POST", {"days": 0}, 400, "days: Input should be greater than or equal to 1"),
        ("/claims/42", "GET", None, 404, "GET /claims/42 is not an operation"),
        ("/claims", "DELETE", None, 404, "DELETE /claims is not an operation"),
    ],
)
def test_bad_requests_get_a_bedrock_error_response_with_a_message(claims_table, path, method, body, status, message):
    response = call(agent_event("ClaimManagementActionGroup", path, method, {}, body))
    assert response["response"]["httpStatusCode"] == status
    assert message in body_of(response)["error"]


events = st.fixed_dictionaries(
    {},
    optional={
        "messageVersion": st.one_of(st.just("1.0"), st.integers(), st.none()),
        "actionGroup": st.one_of(st.just("ClaimManagementActionGroup"), st.text(max_size=20), st.integers()),
        "apiPath": st.one_of(st.sampled_from(["/claims", "/send-reminders", "/", ""]), st.text(max_size=30)),
        "httpMethod": st.one_of(st.sampled_from(["GET", "POST", "PUT"]), st.text(max_size=5), st.none()),
        "parameters": st.one_of(
            st.none(),
            st.lists(
                st.fixed_dictionaries(
                    {"name": st.text(max_size=8), "type": st.just("string"), "value": st.text(max_size=8)}
                ),
                max_size=3,
            ),
        ),
        "requestBody": st.one_of(
            st.none(),
            st.just({}),
            st.fixed_dictionaries(
                {
                    "content": st.fixed_dictionaries(
                        {
                            "application/json": st.fixed_dictionaries(
                                {
                                    "properties": st.lists(
                                        st.fixed_dictionaries(
                                            {
                                                "name": st.sampled_from(["days", "x"]),
                                                "type": st.sampled_from(["integer", "string"]),
                                                "value": st.one_of(st.text(max_size=6), st.integers().map(str)),
                                            }
                                        ),
                                        max_size=3,
                                    )
                                }
                            )
                        }
                    )
                }
            ),
        ),
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=st.one_of(events, st.none(), st.lists(st.integers()), st.text()))
def test_fuzzed_events_never_raise_and_answer_in_bedrocks_shape(claims_table, event):
    response = call(event)
    assert response["messageVersion"] == "1.0"
    assert isinstance(response["response"]["httpStatusCode"], int)
    assert json.loads(next(iter(response["response"]["responseBody"].values()))["body"]) is not None


def test_the_schema_is_generated_openapi_3_and_the_shipped_copy_is_current():
    from openapi_spec_validator import validate

    from lambdas.claims_action_group import openapi_schema

    schema = openapi_schema()
    validate(schema)
    assert schema["openapi"].startswith("3.0")
    operations = {op["operationId"] for path in schema["paths"].values() for op in path.values()}
    assert operations == {"getAllOpenClaims", "sendReminders"}
    assert json.loads(SHIPPED_SCHEMA.read_text()) == schema, "regenerate: python -m lambdas.claims_action_group"
