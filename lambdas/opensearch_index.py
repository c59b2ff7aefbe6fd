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

Every property is checked first (``IndexProperties``; CloudFormation hands numbers and booleans over
as strings, so ``"384"`` and ``"true"`` are read as such), and an unknown ``RequestType`` is refused:
either raises ``InvalidRequest`` naming the property (or the request type) and the fix, which the
Provider framework reports to CloudFormation as the FAILED response's reason. A Delete whose properties
cannot be read deletes nothing and succeeds (a stack must never get stuck on its rollback). An
OpenSearch failure raises ``IndexRequestFailed`` with its status and reason.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from aws_lambda_powertools import Logger
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from genai_contracts import names
from genai_contracts.vector_index import (
    ENGINES,
    FIELD_NAME,
    MAX_DIMENSION,
    METADATA_FIELD,
    METADATA_TYPES,
    SPACE_TYPES,
    VECTOR_FIELD,
    index_body,
)
from genai_runtime.rag.opensearch import HYBRID_PIPELINE, OpenSearchIndex, hybrid_pipeline_body

logger = Logger(service=names.OPENSEARCH_INDEX_SERVICE)
SECURITY_API = "/_plugins/_security/api"
REQUEST_TYPES = ("Create", "Update", "Delete")


class InvalidRequest(ValueError):
    """The custom resource's request cannot be carried out as given; the message names what and how to fix it."""


class IndexConflict(InvalidRequest):
    """The index exists with another vector dimension."""


class IndexRequestFailed(RuntimeError):
    """OpenSearch refused or failed a request (its status and reason in the message)."""


def _integer(value: Any) -> Any:
    """CloudFormation sends numbers as strings: ``"384"`` is 384; anything but digits stays for the error."""
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,9}", value.strip()):
        return int(value.strip())
    return value


def _boolean(value: Any) -> Any:
    """CloudFormation sends booleans as strings: ``"true"`` / ``"false"`` (any case)."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


Integer = Annotated[int, BeforeValidator(_integer)]
Boolean = Annotated[bool, BeforeValidator(_boolean)]
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = rf"^{_LABEL}(\.{_LABEL})*(:[0-9]{{1,5}})?$"
_INDEX = r'^[a-z0-9][^A-Z\\/*?"<>|\s,#:\x00-\x1f]{0,254}$'
_ARN = r"^arn:aws[a-z-]*:[a-z0-9-]+::[0-9]{12}:\S{1,1900}$"
_FIXES = {
    "Endpoint": "the domain's endpoint host, without https:// (Domain.domain_endpoint)",
    "IndexName": 'a lowercase OpenSearch index name (no spaces or \\/*?"<>|,#:), at most 255 characters',
    "Dimension": f"the embedding model's vector size, an integer from 1 to {MAX_DIMENSION}",
    "SpaceType": f"one of {', '.join(SPACE_TYPES)}",
    "Engine": f"one of {', '.join(ENGINES)}",
    "MetadataFields": f"an object of field name (an identifier) -> one of {', '.join(METADATA_TYPES)}",
    "Shards": "an integer from 1 to 1024",
    "Replicas": "an integer from 0 to 15",
    "ReaderRoleArns": "a list of IAM role ARNs",
    "WriterRoleArns": "a list of IAM role ARNs",
    "RemoveIndex": "true or false",
}


class IndexProperties(BaseModel):
    """The custom resource's properties (what ``VectorStore`` sets), as CloudFormation delivers them."""

    model_config = ConfigDict(extra="forbid", strict=True)

    ServiceToken: str | None = None  # noqa: N815 - CloudFormation's own names
    Endpoint: Annotated[str, Field(pattern=_HOST, max_length=253)]
    IndexName: Annotated[str, Field(pattern=_INDEX)]  # noqa: N815
    Dimension: Annotated[Integer, Field(ge=1, le=MAX_DIMENSION)]
    SpaceType: str = "innerproduct"  # noqa: N815
    Engine: str = "faiss"
    MetadataFields: dict[str, str] | None = None  # noqa: N815
    Shards: Annotated[Integer, Field(ge=1, le=1024)] = 2
    Replicas: Annotated[Integer, Field(ge=0, le=15)] = 1
    ReaderRoleArns: list[Annotated[str, Field(pattern=_ARN)]] | None = None  # noqa: N815
    WriterRoleArns: list[Annotated[str, Field(pattern=_ARN)]] | None = None  # noqa: N815
    RemoveIndex: Boolean = False  # noqa: N815

    @field_validator("IndexName")
    @classmethod
    def _lowercase(cls, value: str) -> str:
        if value != value.lower():
            raise ValueError("OpenSearch index names are lowercase")
        return value

    @field_validator("SpaceType")
    @classmethod
    def _space_type(cls, value: str) -> str:
        if value not in SPACE_TYPES:
            raise ValueError(f"not one of {', '.join(SPACE_TYPES)}")
        return value

    @field_validator("Engine")
    @classmethod
    def _engine(cls, value: str) -> str:
        if value not in ENGINES:
            raise ValueError(f"not one of {', '.join(ENGINES)}")
        return value

    @field_validator("MetadataFields")
    @classmethod
    def _fields(cls, fields: dict[str, str] | None) -> dict[str, str] | None:
        for name, kind in (fields or {}).items():
            if not FIELD_NAME.match(name):
                raise ValueError(f"field name {name[:80]!r} is not an identifier (letters, digits, _; at most 64)")
            if kind not in METADATA_TYPES:
                raise ValueError(f"field {name}: {kind[:80]!r} is not one of {', '.join(METADATA_TYPES)}")
        return fields

    @property
    def url(self) -> str:
        return f"https://{self.Endpoint}/{self.IndexName}"


def read_properties(raw: object) -> IndexProperties:
    """``raw`` as ``IndexProperties``; ``InvalidRequest`` naming each bad property and its fix otherwise."""
    if not isinstance(raw, dict):
        raise InvalidRequest(f"ResourceProperties must be an object, not {type(raw).__name__}")
    try:
        return IndexProperties.model_validate(raw)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            name = str(item["loc"][0]) if item["loc"] else "ResourceProperties"
            where = ".".join(map(str, item["loc"])) or name
            if item["type"] == "extra_forbidden":
                known = ", ".join(k for k in IndexProperties.model_fields if k != "ServiceToken")
                problems.append(f"{where[:80]} is not a property of this resource (known: {known})")
            elif item["type"] == "missing":
                problems.append(f"{where} is required: give {_FIXES.get(name, 'it')}")
            else:
                shown = repr(item.get("input"))[:80]
                problems.append(f"{where[:120]}={shown} is invalid: give {_FIXES.get(name, 'a valid value')}")
        raise InvalidRequest("; ".join(dict.fromkeys(problems))[:2000]) from None


def _opensearch(call, what: str):
    """Run ``call``; an opensearch-py failure as ``IndexRequestFailed`` naming ``what``."""
    from opensearchpy.exceptions import OpenSearchException

    try:
        return call()
    except OpenSearchException as error:
        status = getattr(error, "status_code", "?")
        raise IndexRequestFailed(f"{what} failed: HTTP {status}: {str(error)[:500]}") from None


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


def apply(client, props: IndexProperties) -> None:
    name, dimension = props.IndexName, props.Dimension
    try:
        body = index_body(
            dimension,
            metadata_fields=props.MetadataFields or {},
            engine=props.Engine,
            space_type=props.SpaceType,
            shards=props.Shards,
            replicas=props.Replicas,
        )
    except ValueError as error:
        raise InvalidRequest(str(error)) from None
    if _opensearch(lambda: client.indices.exists(index=name), f"HEAD /{name}"):
        mapping = _opensearch(lambda: client.indices.get_mapping(index=name), f"GET /{name}/_mapping")
        try:
            existing = (mapping.get(name) or next(iter(mapping.values())))["mappings"]["properties"]
        except (AttributeError, KeyError, StopIteration, TypeError):
            raise IndexRequestFailed(f"GET /{name}/_mapping answered without mappings.properties") from None
        held = (existing.get(VECTOR_FIELD) or {}).get("dimension")
        if held != dimension:
            raise IndexConflict(
                f"index {name} holds {held}-dimension vectors, not {dimension}: "
                "create a new index (a new IndexName) and re-ingest"
            )
        metadata = {"properties": {METADATA_FIELD: body["mappings"]["properties"][METADATA_FIELD]}}
        _opensearch(lambda: client.indices.put_mapping(index=name, body=metadata), f"PUT /{name}/_mapping")
    else:
        _opensearch(lambda: client.indices.create(index=name, body=body), f"PUT /{name}")
    pipeline = f"/_search/pipeline/{HYBRID_PIPELINE}"
    _opensearch(
        lambda: client.transport.perform_request("PUT", pipeline, body=hybrid_pipeline_body()), f"PUT {pipeline}"
    )
    grants = {"reader": props.ReaderRoleArns or [], "writer": props.WriterRoleArns or []}
    for role, role_body in role_bodies(name).items():
        arns = sorted(set(grants[role.rsplit("-", 1)[1]]))
        for url, payload in (
            (f"{SECURITY_API}/roles/{role}", role_body),
            (f"{SECURITY_API}/rolesmapping/{role}", {"backend_roles": arns}),
        ):
            _opensearch(
                lambda url=url, payload=payload: client.transport.perform_request("PUT", url, body=payload),
                f"PUT {url}",
            )


def on_event(event: dict, context=None) -> dict:
    """The Provider framework's onEvent: the response's PhysicalResourceId and Data, or an error naming the fix."""
    if not isinstance(event, dict):
        raise InvalidRequest(f"the event must be a CloudFormation custom resource request, not {type(event).__name__}")
    request = event.get("RequestType")
    if request not in REQUEST_TYPES:
        raise InvalidRequest(
            f"RequestType={str(request)[:80]!r} is not a CloudFormation request type: expected one of "
            f"{', '.join(REQUEST_TYPES)}"
        )
    if request == "Delete":
        try:
            props = read_properties(event.get("ResourceProperties"))
        except InvalidRequest as problem:  # nothing this function could have made: nothing to delete
            logger.warning("delete with unreadable properties: nothing deleted", extra={"problem": str(problem)})
            previous = event.get("PhysicalResourceId")
            return {"PhysicalResourceId": previous if isinstance(previous, str) and previous else "none"}
        logger.info("index request", extra={"request": request, "index": props.url})
        if props.RemoveIndex:
            client = OpenSearchIndex.from_url(props.url, "unused").client
            _opensearch(
                lambda: client.indices.delete(index=props.IndexName, ignore_unavailable=True),
                f"DELETE /{props.IndexName}",
            )
        return {"PhysicalResourceId": props.url, "Data": {"IndexName": props.IndexName}}
    props = read_properties(event.get("ResourceProperties"))
    logger.info("index request", extra={"request": request, "index": props.url})
    apply(OpenSearchIndex.from_url(props.url, "unused").client, props)
    return {"PhysicalResourceId": props.url, "Data": {"IndexName": props.IndexName}}
