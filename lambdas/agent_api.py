"""The agent API: ``POST /invoke`` -> ``InvokeAgent`` -> the assembled completion with its trace ids.

API Gateway validates the body against the JSON Schema generated from
``genai_contracts.api_requests.InvokeRequest``; this handler validates again with the model itself and
answers 400 naming the field (413 over ``InvokeRequest.MAX_BODY_BYTES``), 502 when the agent fails,
503 with ``Retry-After`` when it is throttled or unavailable (after botocore's own retries), 500 when the
function is misconfigured. Every answer is JSON; errors carry a ``message``.
"""

from __future__ import annotations

import json
from functools import lru_cache

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types

from genai_contracts import names
from genai_contracts.api_requests import InvokeRequest
from genai_runtime import aws
from genai_runtime.agents.deployed import invoke_agent, validate
from genai_runtime.errors import DependencyError, UsageError

from ._config import ConfigurationError, setting
from ._requests import (
    body_text,
    dependency_response,
    error_response,
    install_fallbacks,
    parse_json_body,
    proxy_error,
    proxy_event_problem,
    usage_response,
)

logger = Logger(service=names.AGENT_API_SERVICE)
app = APIGatewayRestResolver()
MAX_BODY_BYTES = InvokeRequest.MAX_BODY_BYTES


@lru_cache(maxsize=1)
def agent_runtime():
    return aws.client("bedrock-agent-runtime")


def _reply(status: int, payload: dict) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(payload))


def parse(body: str | None) -> InvokeRequest:
    return parse_json_body(body, InvokeRequest, MAX_BODY_BYTES, '{"inputText": "..."}')


def _agent() -> tuple[str, str]:
    """The agent and alias this function calls, checked (a bad one is the deployment's fault, not the caller's)."""
    try:
        agent_id, alias_id = setting(names.AGENT_ID), setting(names.AGENT_ALIAS_ID)
        validate(agent_id, alias_id, "session", "text")
    except (ConfigurationError, UsageError) as problem:
        raise ConfigurationError(f"the agent function is misconfigured: {problem}") from None
    return agent_id, alias_id


@app.post("/invoke")
def invoke() -> Response:
    try:
        request = parse(body_text(app.current_event.raw_event))
        agent_id, alias_id = _agent()
        reply = invoke_agent(request.inputText, agent_id, alias_id, request.sessionId, client=agent_runtime())
    except ConfigurationError as error:
        logger.exception("misconfigured")
        return error_response(500, str(error))
    except UsageError as error:
        return usage_response(error)
    except DependencyError as error:
        logger.exception("InvokeAgent failed")
        return dependency_response(error)
    except Exception as error:
        if not aws.is_aws_error(error):
            raise
        logger.exception("InvokeAgent failed")
        return dependency_response(aws.dependency_error(error, "the agent"))
    return _reply(200, reply.to_json())


install_fallbacks(app, logger, "POST /invoke")


@logger.inject_lambda_context
def handler(event: dict, context) -> dict:
    problem = proxy_event_problem(event)
    if problem:
        return proxy_error(400, problem)
    try:
        return app.resolve(event, context)
    except Exception:  # noqa: BLE001 - outside a route (the resolver itself): a 500 with a message, never a raise
        logger.exception("the resolver failed")
        return proxy_error(500, "internal error; see the function's logs")
