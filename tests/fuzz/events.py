"""Real event shapes to start from (API Gateway REST proxy, Bedrock action group, CloudFormation custom
resource), and botocore-level stubs of the dependencies: client errors, connection failures, streams."""

from __future__ import annotations

import json
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError
from hypothesis import strategies as st

from genai_runtime.agents.tools import agent_event
from tests.lambda_events import api_gateway_post

from .strategies import anything, mutated

PROXY_KEYS = [
    "resource",
    "path",
    "httpMethod",
    "headers",
    "multiValueHeaders",
    "queryStringParameters",
    "multiValueQueryStringParameters",
    "pathParameters",
    "stageVariables",
    "requestContext",
    "body",
    "isBase64Encoded",
]

# (code, HTTP status) pairs the services answer with, and the class of answer each must get.
RETRYABLE_ERRORS = [
    ("ThrottlingException", 400),
    ("ThrottlingException", 429),
    ("TooManyRequestsException", 429),
    ("ServiceUnavailable", 503),
    ("ServiceUnavailableException", 503),
    ("ModelNotReadyException", 429),
    ("ModelTimeoutException", 408),
    ("ServiceQuotaExceededException", 400),
    ("ProvisionedThroughputExceededException", 400),
    ("SomethingNew", 504),
]
FAILED_ERRORS = [
    ("ModelError", 424),
    ("ValidationError", 400),
    ("ValidationException", 400),
    ("AccessDeniedException", 403),
    ("ResourceNotFoundException", 404),
    ("InternalFailure", 500),
    ("InternalServerException", 500),
    ("ModelErrorException", 424),
    ("UnrecognizedClientException", 403),
]
CONNECTION_ERRORS = [
    EndpointConnectionError(endpoint_url="https://runtime.sagemaker.us-east-1.amazonaws.com"),
    ConnectTimeoutError(endpoint_url="https://bedrock-runtime.us-east-1.amazonaws.com"),
    ReadTimeoutError(endpoint_url="https://bedrock-runtime.us-east-1.amazonaws.com"),
]
client_failures = st.sampled_from([(code, http, 503) for code, http in RETRYABLE_ERRORS]) | st.sampled_from(
    [(code, http, 502) for code, http in FAILED_ERRORS]
)


def aws_client(service: str):
    return boto3.client(service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def answer_with(client, operation: str, answer) -> list:
    """Answer ``operation`` (its API name) after botocore validated and serialized the request: ``answer``
    is ``(status, parsed)``, a function making one per call, or an exception to raise; returns the list the
    requests are appended to."""
    requests: list = []
    service = client.meta.service_model.service_id.hyphenize()

    def reply(params, **_):
        requests.append(params)
        if isinstance(answer, BaseException):
            raise answer
        status, parsed = answer() if callable(answer) else answer
        return AWSResponse("https://stub", status, {}, None), parsed

    client.meta.events.register(f"before-call.{service}.{operation}", reply, unique_id=f"fuzz-{operation}")
    return requests


def stop_answering(client, operation: str) -> None:
    service = client.meta.service_model.service_id.hyphenize()
    client.meta.events.unregister(f"before-call.{service}.{operation}", unique_id=f"fuzz-{operation}")


def client_error(code: str, status: int) -> tuple[int, dict]:
    return status, {
        "Error": {"Code": code, "Message": f"{code} (fuzzed)"},
        "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": 0},
    }


@st.composite
def proxy_events(draw, path: str, body: Any) -> Any:
    """An API Gateway REST proxy event for ``POST path``, mutated, or something else entirely."""
    event = api_gateway_post(path, body)
    kind = draw(st.sampled_from(["mutated", "mutated", "method", "base64", "foreign"]))
    if kind == "mutated":
        return draw(mutated(event, keys=PROXY_KEYS))
    if kind == "method":
        return {**event, "httpMethod": draw(st.sampled_from(["GET", "PUT", "DELETE", "OPTIONS", "post", ""]))}
    if kind == "base64":
        import base64

        raw = draw(st.binary(max_size=64)) if draw(st.booleans()) else json.dumps(body).encode()
        encoded = base64.b64encode(raw).decode() if draw(st.booleans()) else draw(st.text(max_size=20))
        return {**event, "body": encoded, "isBase64Encoded": True}
    return draw(anything)


PROPERTY_KEYS = [
    "Endpoint",
    "IndexName",
    "Dimension",
    "SpaceType",
    "Engine",
    "MetadataFields",
    "Shards",
    "Replicas",
    "ReaderRoleArns",
    "WriterRoleArns",
    "RemoveIndex",
    "ServiceToken",
]


def index_properties(**changes) -> dict:
    """The properties ``VectorStore`` gives the index custom resource, as CloudFormation delivers them."""
    return {
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:framework-onEvent",
        "Endpoint": "vpc-docs-abc.us-east-1.es.amazonaws.com",
        "IndexName": "documents",
        "Dimension": "384",
        "SpaceType": "innerproduct",
        "Engine": "faiss",
        "MetadataFields": {"year": "integer"},
        "Replicas": "1",
        "ReaderRoleArns": ["arn:aws:iam::123456789012:role/query"],
        "WriterRoleArns": ["arn:aws:iam::123456789012:role/ingest"],
        **changes,
    }


def cloudformation_event(request: Any, properties: Any) -> dict:
    return {
        "RequestType": request,
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:framework-onEvent",
        "ResponseURL": "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/x",
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/rag/guid",
        "RequestId": "request-1",
        "LogicalResourceId": "Index",
        "ResourceType": "Custom::OpenSearchVectorIndex",
        "ResourceProperties": properties,
    }


__all__ = ["agent_event"]
