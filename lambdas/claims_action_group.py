"""The book's insurance-claims action group: a Bedrock agent lists open claims and sends reminders.

Written with Powertools' ``BedrockAgentResolver``: the OpenAPI schema the agent reads is generated
from these typed handlers (``python -m lambdas.claims_action_group`` prints it; the construct ships
the generated file). Claims live in the DynamoDB table ``CLAIMS_TABLE``: ``claimId`` (key),
``policyHolderId``, ``claimStatus``, ``policyRenewalDate`` (ISO date).

Bad input (an unknown path, a missing or ill-typed parameter) gets Bedrock's response shape with
an HTTP 4xx status and a message the agent can read; nothing raises out of the handler.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from functools import lru_cache
from typing import Annotated

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import BedrockAgentResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body
from boto3.dynamodb.conditions import Attr
from pydantic import BaseModel, Field

from genai_contracts import names

logger = Logger(service=names.CLAIMS_ACTION_GROUP_SERVICE)
app = BedrockAgentResolver()
ACTION_GROUP = "ClaimManagementActionGroup"


class Claim(BaseModel):
    claimId: str = Field(description="Unique ID of the claim")  # noqa: N815 - the book's wire names
    policyHolderId: str = Field(description="Unique ID of the policy holder who filed the claim")  # noqa: N815
    claimStatus: str = Field(description="Status of the claim: Open or Closed")  # noqa: N815


class ReminderReceipt(BaseModel):
    sendReminderTrackingId: str = Field(description="Tracking ID of the reminders sent")  # noqa: N815
    sendReminderStatus: str = Field(description="Status of sending: Sent or NothingToSend")  # noqa: N815
    policyHolderIds: list[str] = Field(description="Policy holders who were reminded")  # noqa: N815


@lru_cache(maxsize=1)
def table():
    name = os.environ.get(names.CLAIMS_TABLE)
    if not name:
        raise RuntimeError(f"{names.CLAIMS_TABLE} is not set; deploy this function with its BedrockAgent construct")
    return boto3.resource("dynamodb").Table(name)


def _scan(**options) -> list[dict]:
    items, kwargs = [], dict(options)
    while True:
        page = table().scan(**kwargs)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@app.get(
    "/claims",
    operation_id="getAllOpenClaims",
    description="Gets the list of all open insurance claims: claim ID, policy holder ID and claim status.",
)
def get_all_open_claims() -> Annotated[list[Claim], Body(description="The open claims")]:
    claims = _scan(FilterExpression=Attr("claimStatus").eq("Open"))
    return [
        Claim(claimId=c["claimId"], policyHolderId=c["policyHolderId"], claimStatus=c["claimStatus"])
        for c in sorted(claims, key=lambda c: c["claimId"])
    ]


@app.post(
    "/send-reminders",
    operation_id="sendReminders",
    description="Sends a renewal reminder to every policy holder whose policy renews within the given "
    "number of days, and returns a tracking ID.",
)
def send_reminders(
    days: Annotated[
        int, Body(description="Remind policies renewing within this many days (1-365)", ge=1, le=365, embed=True)
    ],
) -> Annotated[ReminderReceipt, Body(description="What was sent")]:
    today = dt.date.today()
    horizon = (today + dt.timedelta(days=days)).isoformat()
    due = _scan(FilterExpression=Attr("policyRenewalDate").between(today.isoformat(), horizon))
    holders = sorted({item["policyHolderId"] for item in due})
    tracking_id = uuid.uuid4().hex
    for item in due:
        table().update_item(
            Key={"claimId": item["claimId"]},
            UpdateExpression="SET lastReminderId = :id, lastReminderAt = :at",
            ExpressionAttributeValues={":id": tracking_id, ":at": dt.datetime.now(dt.UTC).isoformat()},
        )
    return ReminderReceipt(
        sendReminderTrackingId=tracking_id,
        sendReminderStatus="Sent" if holders else "NothingToSend",
        policyHolderIds=holders,
    )


def _error(status: int, message: str) -> Response:
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps({"error": message})
    )


@app.exception_handler(RequestValidationError)
def _invalid(error: RequestValidationError) -> Response:
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in error.errors())
    return _error(400, f"invalid parameters: {problems}")


@app.not_found
def _unknown(error: NotFoundError) -> Response:
    event = app.current_event
    return _error(
        404,
        f"{event.http_method} {event.api_path} is not an operation of {ACTION_GROUP}; "
        "known: GET /claims, POST /send-reminders",
    )


def openapi_schema() -> dict:
    return json.loads(
        app.get_openapi_json_schema(
            title="Insurance claims",
            version="1.0.0",
            description="Lists open insurance claims and sends renewal reminders to policy holders.",
        )
    )


_REQUIRED = ("actionGroup", "apiPath", "httpMethod", "messageVersion")


@logger.inject_lambda_context
def handler(event: dict, context) -> dict:
    missing = [key for key in _REQUIRED if not isinstance(event, dict) or not isinstance(event.get(key), str)]
    if missing:
        # Not a Bedrock action-group event: answer in Bedrock's shape, never raise.
        safe = event if isinstance(event, dict) else {}
        return {
            "messageVersion": "1.0",
            "response": {
                "actionGroup": str(safe.get("actionGroup", ACTION_GROUP)),
                "apiPath": str(safe.get("apiPath", "")),
                "httpMethod": str(safe.get("httpMethod", "")),
                "httpStatusCode": 400,
                "responseBody": {
                    "application/json": {
                        "body": json.dumps(
                            {"error": f"not a Bedrock agent action-group event: missing {', '.join(missing)}"}
                        )
                    }
                },
            },
        }
    try:
        return app.resolve(event, context)
    except Exception:  # noqa: BLE001 - the agent gets a 500 it can report; the details go to the logs
        logger.exception("action group failed")
        return {
            "messageVersion": "1.0",
            "response": {
                "actionGroup": event["actionGroup"],
                "apiPath": event["apiPath"],
                "httpMethod": event["httpMethod"],
                "httpStatusCode": 500,
                "responseBody": {"application/json": {"body": json.dumps({"error": "internal error; see the logs"})}},
            },
        }


if __name__ == "__main__":
    print(json.dumps(openapi_schema(), indent=2))
