"""The OpenSearch index custom resource, at the HTTP level: what it creates on a managed domain."""

from __future__ import annotations

import json

import pytest
from opensearchpy import Connection

from genai_runtime.rag.opensearch import index_body


class Domain(Connection):
    """Records requests; ``mapping`` is the index as it exists (None: no index)."""

    sent: list = []
    mapping: dict | None = None

    def perform_request(self, method, url, params=None, body=None, timeout=None, ignore=(), headers=None):
        body = json.loads(body) if body else None
        Domain.sent.append((method, url.split("?")[0], body))
        status, reply = 200, {"acknowledged": True}
        if method == "HEAD":
            status = 200 if Domain.mapping else 404
        elif url.endswith("/_mapping") and method == "GET":
            reply = {"documents": {"mappings": Domain.mapping["mappings"]}}
        if status == 404 and method != "HEAD":
            self._raise_error(status, "{}")
        return status, {}, json.dumps(reply)


@pytest.fixture
def handler(monkeypatch):
    from lambdas import opensearch_index

    real = opensearch_index.OpenSearchIndex.from_url
    monkeypatch.setattr(
        opensearch_index.OpenSearchIndex,
        "from_url",
        lambda url, model: real(url, model, http_auth=("u", "p"), connection_class=Domain),
    )
    Domain.sent, Domain.mapping = [], None
    return opensearch_index


def event(request="Create", **props) -> dict:
    properties = {
        "Endpoint": "vpc-docs.us-east-1.es.amazonaws.com",
        "IndexName": "documents",
        "Dimension": "384",
        "SpaceType": "innerproduct",
        "Engine": "faiss",
        "MetadataFields": {"year": "integer"},
        "Replicas": "1",
        "ReaderRoleArns": ["arn:aws:iam::123456789012:role/query"],
        "WriterRoleArns": ["arn:aws:iam::123456789012:role/ingest"],
        **props,
    }
    return {"RequestType": request, "ResourceProperties": properties}


def test_create_makes_the_index_the_hybrid_pipeline_and_index_scoped_roles(handler):
    result = handler.on_event(event())
    assert result["PhysicalResourceId"] == "https://vpc-docs.us-east-1.es.amazonaws.com/documents"
    calls = {(m, u): b for m, u, b in Domain.sent}
    assert calls[("PUT", "/documents")] == index_body(384, metadata_fields={"year": "integer"})
    assert "score-ranker-processor" in json.dumps(calls[("PUT", "/_search/pipeline/genai-hybrid")])
    reader = calls[("PUT", "/_plugins/_security/api/roles/documents-reader")]
    assert reader["index_permissions"][0]["index_patterns"] == ["documents"]
    assert "crud" not in reader["index_permissions"][0]["allowed_actions"]
    writer = calls[("PUT", "/_plugins/_security/api/roles/documents-writer")]
    assert "crud" in writer["index_permissions"][0]["allowed_actions"]
    assert calls[("PUT", "/_plugins/_security/api/rolesmapping/documents-reader")] == {
        "backend_roles": ["arn:aws:iam::123456789012:role/query"]
    }
    assert calls[("PUT", "/_plugins/_security/api/rolesmapping/documents-writer")] == {
        "backend_roles": ["arn:aws:iam::123456789012:role/ingest"]
    }


def test_update_keeps_the_index_and_adds_metadata_fields(handler):
    Domain.mapping = index_body(384)
    handler.on_event(event("Update", MetadataFields={"year": "integer", "team": "keyword"}))
    assert not [c for c in Domain.sent if c[:2] == ("PUT", "/documents")]
    (put_mapping,) = [b for m, u, b in Domain.sent if (m, u) == ("PUT", "/documents/_mapping")]
    assert put_mapping["properties"]["metadata"]["properties"]["team"] == {"type": "keyword"}


def test_a_different_dimension_on_an_existing_index_fails_clearly(handler):
    Domain.mapping = index_body(1024)
    with pytest.raises(handler.IndexConflict, match="holds 1024-dimension vectors, not 384"):
        handler.on_event(event("Update"))


def test_delete_keeps_the_data_unless_asked(handler):
    handler.on_event(event("Delete"))
    assert not [c for c in Domain.sent if c[0] == "DELETE"]
    handler.on_event(event("Delete", RemoveIndex="true"))
    assert [c[:2] for c in Domain.sent if c[0] == "DELETE"] == [("DELETE", "/documents")]


def test_an_unknown_request_type_is_a_failure_naming_it(handler):
    with pytest.raises(handler.InvalidRequest, match="RequestType='Upsert' is not a CloudFormation request type"):
        handler.on_event(event("Upsert"))
    assert Domain.sent == []


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"Dimension": "many"}, "Dimension='many' is invalid: give the embedding model's vector size"),
        ({"IndexName": "My Docs"}, "IndexName='My Docs' is invalid"),
        ({"MetadataFields": {"year": "text"}}, "MetadataFields"),
        ({"Shards": "0"}, "Shards='0' is invalid: give an integer from 1 to 1024"),
        ({"Dimensions": "384"}, "Dimensions is not a property of this resource"),
    ],
)
def test_bad_properties_fail_naming_the_property_and_the_fix_before_any_request(handler, props, message):
    with pytest.raises(handler.InvalidRequest) as raised:
        handler.on_event(event("Create", **props))
    assert message in str(raised.value)
    assert Domain.sent == []


def test_a_delete_with_unreadable_properties_deletes_nothing_and_succeeds(handler):
    broken = {**event("Delete", Dimension="many", RemoveIndex="true"), "PhysicalResourceId": "https://x/documents"}
    assert handler.on_event(broken) == {"PhysicalResourceId": "https://x/documents"}
    assert Domain.sent == []


def test_an_opensearch_failure_names_the_request(handler, monkeypatch):
    def refuse(self, method, url, params=None, body=None, timeout=None, ignore=(), headers=None):
        Domain.sent.append((method, url, None))
        if method == "PUT" and url.startswith("/_plugins/_security"):
            self._raise_error(403, '{"error": "no permissions"}')
        return 404 if method == "HEAD" else 200, {}, '{"acknowledged": true}'

    monkeypatch.setattr(Domain, "perform_request", refuse)
    with pytest.raises(handler.IndexRequestFailed, match="PUT /_plugins/_security/api/roles/documents-reader failed"):
        handler.on_event(event())
