"""Custom resource: the k-NN index, the hybrid search pipeline and fine-grained access roles.

CloudFormation has no resource for an index inside a managed OpenSearch domain, so this handler
(run by the CDK Provider framework as the domain's master IAM role) creates:

- the index, with the mapping ``genai_contracts.vector_index.index_body`` defines (the one the
  runtime writes to and queries);
- the ``genai-hybrid`` search pipeline (reciprocal rank fusion of BM25 and k-NN);
- two fine-grained-access roles, reader and writer, limited to this index, mapped to the IAM
  roles the construct's ``grant_read`` / ``grant_write`` name.

Create and Update are idempotent. An existing index whose vector dimension differs is an error
(re-embedding is a migration, not an update). Delete keeps the index and its data unless the
resource says ``RemoveIndex: "true"``.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger

from genai_contracts import names
from genai_contracts.vector_index import METADATA_FIELD, VECTOR_FIELD, index_body
from genai_runtime.rag.opensearch import HYBRID_PIPELINE, OpenSearchIndex, hybrid_pipeline_body

logger = Logger(service=names.OPENSEARCH_INDEX_SERVICE)
SECURITY_API = "/_plugins/_security/api"


class IndexConflict(RuntimeError):
    pass


def role_bodies(index_name: str) -> dict[str, dict]:
    return {
        f"{index_name}-reader": {
            "index_permissions": [
                {"index_patterns": [index_name], "allowed_actions": ["read", "indices:admin/mappings/get"]}
            ],
        },
        f"{index_name}-writer": {
            "cluster_permissions": ["indices:data/write/bulk"],
            "index_permissions": [
                {
                    "index_patterns": [index_name],
                    "allowed_actions": [
                        "crud",
                        "indices:admin/get",
                        "indices:admin/refresh*",
                        "indices:admin/mappings/get",
                    ],
                }
            ],
        },
    }


def apply(client, props: dict) -> None:
    name = props["IndexName"]
    dimension = int(props["Dimension"])
    body = index_body(
        dimension,
        metadata_fields=props.get("MetadataFields") or {},
        engine=props.get("Engine", "faiss"),
        space_type=props.get("SpaceType", "innerproduct"),
        shards=int(props.get("Shards", 2)),
        replicas=int(props.get("Replicas", 1)),
    )
    if client.indices.exists(index=name):
        existing = client.indices.get_mapping(index=name)[name]["mappings"]["properties"]
        held = existing.get(VECTOR_FIELD, {}).get("dimension")
        if held != dimension:
            raise IndexConflict(
                f"index {name} holds {held}-dimension vectors, not {dimension}: "
                "create a new index (a new IndexName) and re-ingest"
            )
        client.indices.put_mapping(
            index=name, body={"properties": {METADATA_FIELD: body["mappings"]["properties"][METADATA_FIELD]}}
        )
    else:
        client.indices.create(index=name, body=body)
    client.transport.perform_request("PUT", f"/_search/pipeline/{HYBRID_PIPELINE}", body=hybrid_pipeline_body())
    grants = {"reader": props.get("ReaderRoleArns") or [], "writer": props.get("WriterRoleArns") or []}
    for role, role_body in role_bodies(name).items():
        client.transport.perform_request("PUT", f"{SECURITY_API}/roles/{role}", body=role_body)
        arns = sorted(set(grants[role.rsplit("-", 1)[1]]))
        client.transport.perform_request("PUT", f"{SECURITY_API}/rolesmapping/{role}", body={"backend_roles": arns})


def on_event(event: dict, context=None) -> dict:
    props = event["ResourceProperties"]
    url = f"https://{props['Endpoint']}/{props['IndexName']}"
    physical_id = url
    index = OpenSearchIndex.from_url(url, "unused")
    request = event["RequestType"]
    logger.info("index request", extra={"request": request, "index": url})
    if request in ("Create", "Update"):
        apply(index.client, props)
    elif request == "Delete" and str(props.get("RemoveIndex", "false")).lower() == "true":
        index.client.indices.delete(index=props["IndexName"], ignore_unavailable=True)
    return {"PhysicalResourceId": physical_id, "Data": {"IndexName": props["IndexName"]}}
