"""Events and a context as AWS Lambda hands them to the handlers under test."""

from __future__ import annotations

import json
from types import SimpleNamespace

CONTEXT = SimpleNamespace(
    function_name="fn",
    memory_limit_in_mb=1024,
    aws_request_id="req-1",
    function_version="$LATEST",
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:fn",
    log_group_name="/aws/lambda/fn",
    log_stream_name="stream",
)


def api_gateway_post(path: str, body) -> dict:
    """A REST API (proxy integration) ``POST path`` with ``body`` (a dict is sent as JSON)."""
    return {
        "resource": path,
        "path": path,
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "isBase64Encoded": False,
        "body": body if body is None or isinstance(body, str) else json.dumps(body),
        "requestContext": {
            "resourcePath": path,
            "httpMethod": "POST",
            "stage": "v1",
            "requestId": "id",
            "path": f"/v1{path}",
            "identity": {"sourceIp": "127.0.0.1"},
        },
    }
