"""``lambdas.opensearch_index`` (the CDK Provider framework's onEvent) under fuzzed CloudFormation events.

The Provider framework turns an exception into CloudFormation's FAILED response with the exception's
message as the reason, so the contract is: a result with a PhysicalResourceId, or an ``InvalidRequest``
naming the property (or the RequestType) to fix, or an ``IndexRequestFailed`` naming the OpenSearch
request that failed; never a KeyError, TypeError or any other exception. A Delete never fails on its
properties (a stack must not get stuck rolling back).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opensearchpy import Connection
from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError

from . import tally
from .events import PROPERTY_KEYS, cloudformation_event, index_properties
from .strategies import anything, huge_text, mutated

SETTINGS = settings(deadline=None, suppress_health_check=list(HealthCheck), database=None)


class Domain(Connection):
    """A managed domain at the HTTP level: an index exists or not; ``failure`` answers one request badly."""

    mapping: dict | None = None
    failure: tuple[str, object] | None = None  # (method + path prefix, HTTP status or "connection")
    sent: list = []

    def perform_request(self, method, url, params=None, body=None, timeout=None, ignore=(), headers=None):
        path = url.split("?")[0]
        Domain.sent.append((method, path))
        if Domain.failure and f"{method} {path}".startswith(Domain.failure[0]):
            status = Domain.failure[1]
            if status == "connection":
                raise OpenSearchConnectionError("N/A", "connection refused", OSError("refused"))
            self._raise_error(status, json.dumps({"error": {"type": "fuzzed", "reason": "fuzzed"}}))
        if method == "HEAD":
            return (200 if Domain.mapping else 404), {}, ""
        if method == "GET" and path.endswith("/_mapping"):
            return 200, {}, json.dumps({path.split("/")[1]: Domain.mapping})
        return 200, {}, json.dumps({"acknowledged": True})


@pytest.fixture
def index(monkeypatch):
    from lambdas import opensearch_index

    real = opensearch_index.OpenSearchIndex.from_url
    monkeypatch.setattr(
        opensearch_index.OpenSearchIndex,
        "from_url",
        lambda url, model: real(url, model, http_auth=("u", "p"), connection_class=Domain, max_retries=0),
    )
    Domain.mapping, Domain.failure, Domain.sent = None, None, []
    return opensearch_index


NAMED = [*PROPERTY_KEYS, "RequestType", "ResourceProperties", "event", "index"]


def outcome_of(module, event):
    return tally.run(
        "opensearch_index", module.on_event, event, None, designed=(module.InvalidRequest, module.IndexRequestFailed)
    )


def outcome(module, event) -> str:
    """Run the handler; the class of what it did (``SUCCESS``, ``InvalidRequest``, ``IndexRequestFailed``)."""
    try:
        result = outcome_of(module, event)
    except module.InvalidRequest as error:
        assert any(name in str(error) for name in NAMED), error
        return "InvalidRequest"
    except module.IndexRequestFailed as error:
        assert "failed" in str(error) or "answered" in str(error), error
        return "IndexRequestFailed"
    assert isinstance(result, dict) and isinstance(result["PhysicalResourceId"], str) and result["PhysicalResourceId"]
    return "SUCCESS"


property_values = (
    anything
    | huge_text
    | st.sampled_from(["384", "0", "-1", "16001", "3.5", " 384", "true", "yes", "Docs", "https://x", "a b", "_x"])
    | st.sampled_from([384, 0, True, None, [], {}, {"year": "text"}, {"a-b": "integer"}, ["not-an-arn"]])
)


@st.composite
def garbage_events(draw):
    request = draw(st.sampled_from(["Create", "Update", "Delete"]) | anything)
    base = index_properties()
    kind = draw(st.sampled_from(["mutate", "mutate", "values", "foreign-properties", "foreign-event"]))
    if kind == "mutate":
        properties = draw(mutated(base, keys=PROPERTY_KEYS))
    elif kind == "values":
        properties = {**base, **draw(st.dictionaries(st.sampled_from(PROPERTY_KEYS), property_values, max_size=3))}
    elif kind == "foreign-properties":
        properties = draw(anything)
    else:
        return draw(anything)
    event = cloudformation_event(request, properties)
    if draw(st.booleans()):
        event["PhysicalResourceId"] = draw(st.sampled_from(["https://vpc-docs/documents"]) | anything)
    return event


@settings(SETTINGS, max_examples=800)
@given(event=garbage_events(), exists=st.booleans())
def test_bad_events_fail_with_a_message_naming_the_fix_never_another_exception(index, event, exists):
    from genai_contracts.vector_index import index_body

    Domain.mapping = index_body(384) if exists else None
    result = outcome(index, event)
    assert result in ("SUCCESS", "InvalidRequest"), result
    if isinstance(event, dict) and event.get("RequestType") == "Delete":
        assert result == "SUCCESS"  # a Delete never fails on its properties
    if isinstance(event, dict) and event.get("RequestType") not in ("Create", "Update", "Delete"):
        assert result == "InvalidRequest"


@settings(SETTINGS, max_examples=300)
@given(
    request=st.sampled_from(["Create", "Update", "Delete"]),
    exists=st.booleans(),
    where=st.sampled_from(
        ["HEAD /documents", "GET /documents", "PUT /documents", "PUT /_search", "PUT /_plugins", "DELETE /documents"]
    ),
    status=st.sampled_from([400, 401, 403, 404, 409, 429, 500, 502, 503, "connection"]),
)
def test_opensearch_failures_are_reported_with_the_request_that_failed(index, request, exists, where, status):
    from genai_contracts.vector_index import index_body

    Domain.mapping, Domain.failure, Domain.sent = (index_body(384) if exists else None), (where, status), []
    event = cloudformation_event(request, index_properties(RemoveIndex="true"))
    result = outcome(index, event)
    touched = any(f"{m} {p}".startswith(where) for m, p in Domain.sent)
    if touched and not (status == 404 and where == "HEAD /documents"):  # HEAD 404: "no index", not a failure
        assert result == "IndexRequestFailed", (where, status, Domain.sent)
    else:
        assert result == "SUCCESS", (where, status, Domain.sent)


def test_an_unknown_request_type_is_refused_by_name(index):
    with pytest.raises(index.InvalidRequest, match="RequestType='Upsert' is not a CloudFormation request type"):
        outcome_of(index, cloudformation_event("Upsert", index_properties()))
    assert Domain.sent == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"Dimension": "lots"}, "Dimension='lots' is invalid: give the embedding model's vector size"),
        ({"Dimension": None}, "Dimension=None is invalid"),
        ({"IndexName": "Docs"}, "IndexName='Docs' is invalid: give a lowercase OpenSearch index name"),
        ({"Endpoint": "https://vpc-docs.es.amazonaws.com"}, "Endpoint='https://vpc-docs.es.amazonaws.com' is invalid"),
        ({"MetadataFields": {"year": "text"}}, "MetadataFields"),
        ({"Replicas": "two"}, "Replicas='two' is invalid: give an integer from 0 to 15"),
        ({"RemoveIndex": "yes"}, "RemoveIndex='yes' is invalid: give true or false"),
        ({"ReaderRoleArns": "arn:aws:iam::123456789012:role/query"}, "ReaderRoleArns="),
        ({"Dimensions": "384"}, "Dimensions is not a property of this resource"),
    ],
)
def test_each_bad_property_is_named_with_its_fix(index, changes, message):
    with pytest.raises(index.InvalidRequest) as raised:
        outcome_of(index, cloudformation_event("Create", index_properties(**changes)))
    assert message in str(raised.value)
    assert Domain.sent == []


def test_a_missing_property_is_named(index):
    properties = index_properties()
    del properties["Endpoint"]
    with pytest.raises(index.InvalidRequest, match="Endpoint is required: give the domain's endpoint host"):
        index.on_event(cloudformation_event("Update", properties))
