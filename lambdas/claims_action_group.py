"""The book's insurance-claims action group: a Bedrock agent lists open claims and sends reminders.

Written with Powertools' ``BedrockAgentResolver``: the OpenAPI schema the agent reads is generated
from these typed handlers (``python -m lambdas.claims_action_group`` prints it; the construct ships
the generated file). Claims live in the DynamoDB table ``CLAIMS_TABLE``: ``claimId`` (key),
``policyHolderId``, ``claimStatus``, ``policyRenewalDate`` (ISO date).

The event is checked against Bedrock's action-group input format (Bedrock user guide, "Configure
Lambda functions to send information that an Amazon Bedrock agent elicits from the user"), as
Powertools' parser model ``BedrockAgentEventModel`` states it, before the resolver sees it. Bad input
(not such an event, an unknown path, a missing or ill-typed parameter) gets Bedrock's response shape
with an HTTP 4xx status and a message the agent can read; a DynamoDB failure a 503 (throttled or
unavailable: try again) or 502; nothing raises out of the handler. A claim item without the attributes
a claim needs is left out of the list (and logged), never failing the whole call.

A reminder is a conditional write: its id comes from the claim and the renewal date it reminds of, and
the write happens only if that claim does not hold that id yet. A retried ``sendReminders`` (Bedrock
retries a Lambda that timed out) sends nothing twice and answers with the same tracking id.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from functools import lru_cache
from typing import Annotated, Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import BedrockAgentResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.utilities.parser.models import BedrockAgentEventModel
from boto3.dynamodb.conditions import Attr
from pydantic import BaseModel, Field, ValidationError

from genai_contracts import names
from genai_runtime import aws
from genai_runtime.errors import DependencyError

logger = Logger(service=names.CLAIMS_ACTION_GROUP_SERVICE)
app = BedrockAgentResolver()
ACTION_GROUP = "ClaimManagementActionGroup"


class Claim(BaseModel):
    claimId: str = Field(description="Unique ID of the claim")  # noqa: N815 - the book's wire names
    policyHolderId: str = Field(description="Unique ID of the policy holder who filed the claim")  # noqa: N815
    claimStatus: str = Field(description="Status of the claim: Open or Closed")  # noqa: N815


class ReminderReceipt(BaseModel):
    sendReminderTrackingId: str = Field(  # noqa: N815
        description="Tracking ID of the reminders: the same for the same reminders, however often asked"
    )
    sendReminderStatus: Literal["Sent", "AlreadySent", "NothingToSend"] = Field(  # noqa: N815
        description="Sent (some reminders went out now), AlreadySent (every one had been sent before) or NothingToSend"
    )
    policyHolderIds: list[str] = Field(  # noqa: N815
        description="Policy holders reminded of these renewals, now or before"
    )


class ConfigurationError(RuntimeError):
    """The function was deployed without its table."""


@lru_cache(maxsize=1)
def table():
    name = os.environ.get(names.CLAIMS_TABLE)
    if not name:
        raise ConfigurationError(
            f"{names.CLAIMS_TABLE} is not set; deploy this function with its BedrockAgent construct"
        )
    return aws.resource("dynamodb").Table(name)


def _claim(item: dict) -> Claim | None:
    """The claim an item holds, or None (logged) when it lacks what a claim needs."""
    try:
        return Claim.model_validate(
            {key: item.get(key) for key in ("claimId", "policyHolderId", "claimStatus")}, strict=True
        )
    except ValidationError as problem:
        logger.warning(
            "skipping a malformed claim item",
            extra={"claimId": str(item.get("claimId"))[:100], "problem": str(problem)[:500]},
        )
        return None


def reminder_id(claim_id: str, renewal_date: str) -> str:
    """The one reminder of ``claim_id``'s renewal on ``renewal_date``."""
    return hashlib.sha256(f"{claim_id}\x00{renewal_date}".encode()).hexdigest()[:32]


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
    claims = [_claim(item) for item in _scan(FilterExpression=Attr("claimStatus").eq("Open"))]
    return sorted((c for c in claims if c is not None), key=lambda c: c.claimId)


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
    from botocore.exceptions import ClientError

    today = dt.date.today()
    horizon = (today + dt.timedelta(days=days)).isoformat()
    renewal = Attr("policyRenewalDate")  # a string date; an item holding anything else is not due
    due = _scan(FilterExpression=renewal.attribute_type("S") & renewal.between(today.isoformat(), horizon))
    reminders, sent, holders = [], 0, set()
    for item in sorted(due, key=lambda i: str(i.get("claimId"))):
        claim, renewal = item.get("claimId"), item.get("policyRenewalDate")
        holder = item.get("policyHolderId")
        if not (isinstance(claim, str) and isinstance(holder, str) and holder and isinstance(renewal, str)):
            logger.warning("skipping a claim item without a policy holder", extra={"claimId": str(claim)[:100]})
            continue
        reminder = reminder_id(claim, renewal)
        try:
            table().update_item(
                Key={"claimId": claim},
                UpdateExpression="SET lastReminderId = :id, lastReminderFor = :renewal, lastReminderAt = :at",
                ConditionExpression="attribute_exists(claimId) AND "
                "(attribute_not_exists(lastReminderId) OR lastReminderId <> :id)",
                ExpressionAttributeValues={
                    ":id": reminder,
                    ":renewal": renewal,
                    ":at": dt.datetime.now(dt.UTC).isoformat(),
                },
            )
            sent += 1
        except ClientError as error:
            if aws.error_code(error) != "ConditionalCheckFailedException":
                raise
            # Sent before (a retry, or an earlier request), or the claim is gone: nothing to send now.
        reminders.append(reminder)
        holders.add(holder)
    tracking_id = hashlib.sha256(" ".join(sorted(reminders)).encode()).hexdigest()[:32] if reminders else "none"
    return ReminderReceipt(
        sendReminderTrackingId=tracking_id,
        sendReminderStatus="Sent" if sent else "AlreadySent" if reminders else "NothingToSend",
        policyHolderIds=sorted(holders),
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


def _bedrock_error(event: object, status: int, message: str) -> dict:
    """An error in Bedrock's response shape, for events the resolver never saw."""
    safe = event if isinstance(event, dict) else {}

    def text(key: str, default: str = "") -> str:
        value = safe.get(key, default)
        return value if isinstance(value, str) else default

    return {
        "messageVersion": "1.0",
        "response": {
            "actionGroup": text("actionGroup", ACTION_GROUP),
            "apiPath": text("apiPath"),
            "httpMethod": text("httpMethod"),
            "httpStatusCode": status,
            "responseBody": {"application/json": {"body": json.dumps({"error": message})}},
        },
    }


def event_problem(event: object) -> str | None:
    """Why ``event`` is not a Bedrock action-group event for an API operation, or None."""
    if not isinstance(event, dict):
        return f"not a Bedrock agent action-group event: the event is a {type(event).__name__}, not an object"
    missing = [key for key in _REQUIRED if not isinstance(event.get(key), str)]
    if missing:
        return f"not a Bedrock agent action-group event: missing {', '.join(missing)}"
    try:
        BedrockAgentEventModel.model_validate(event, strict=True)  # Powertools' model of Bedrock's input event
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        return f"not a Bedrock agent action-group event: {problems}"[:1000]
    return None


@app.exception_handler(ConfigurationError)
def _misconfigured(error: ConfigurationError) -> Response:
    logger.exception("misconfigured")
    return _error(500, f"the claims function is misconfigured: {error}")


@app.exception_handler(DependencyError)
def _dependency(error: DependencyError) -> Response:
    logger.exception("a dependency failed")
    return _error(error.status, str(error)[:1000])


@app.exception_handler(Exception)
def _unexpected(error: Exception) -> Response:
    if aws.is_aws_error(error):  # DynamoDB throttled, unavailable or refusing
        return _dependency(aws.dependency_error(error, "the claims table"))
    logger.exception("action group failed")
    return _error(500, "internal error; see the logs")


@logger.inject_lambda_context
def handler(event: dict, context) -> dict:
    problem = event_problem(event)
    if problem:  # answer in Bedrock's shape, never raise
        return _bedrock_error(event, 400, problem)
    try:
        return app.resolve(event, context)
    except Exception:  # noqa: BLE001 - the agent gets a 500 it can report; the details go to the logs
        logger.exception("action group failed")
        return _bedrock_error(event, 500, "internal error; see the logs")


if __name__ == "__main__":
    print(json.dumps(openapi_schema(), indent=2))
