"""The agent API: ``POST /invoke`` -> ``InvokeAgent`` -> the assembled completion with its trace ids.

API Gateway validates the body against the JSON Schema generated from
``genai_contracts.api_requests.InvokeRequest``; this handler validates again with the model itself and
answers 400 naming the field, 502 when the agent fails.
"""

from __future__ import annotations

import json
from functools import lru_cache

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from botocore.exceptions import BotoCoreError, ClientError

from genai_contracts import names
from genai_contracts.api_requests import InvokeRequest
from genai_runtime.agents.deployed import invoke_agent
from genai_runtime.errors import UsageError

from ._config import setting
from ._requests import parse_json_body

logger = Logger(service=names.AGENT_API_SERVICE)
app = APIGatewayRestResolver()
MAX_BODY_BYTES = 64 * 1024


@lru_cache(maxsize=1)
def agent_runtime():
    import boto3

    return boto3.client("bedrock-agent-runtime")


def _reply(status: int, payload: dict) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(payload))


def parse(body: str | None) -> InvokeRequest:
    return parse_json_body(body, InvokeRequest, MAX_BODY_BYTES, '{"inputText": "..."}')


@app.post("/invoke")
def invoke() -> Response:
    try:
        request = parse(app.current_event.body)
        reply = invoke_agent(
            request.inputText,
            setting(names.AGENT_ID),
            setting(names.AGENT_ALIAS_ID),
            request.sessionId,
            client=agent_runtime(),
        )
    except UsageError as error:
        return _reply(400, {"message": str(error)})
    except (ClientError, BotoCoreError) as error:
        logger.exception("InvokeAgent failed")
        return _reply(502, {"message": f"the agent failed: {error}"})
    return _reply(200, reply.to_json())


@logger.inject_lambda_context
def handler(event: dict, context) -> dict:
    return app.resolve(event, context)
