"""An in-memory OpenSearch behind an opensearch-py ``Connection``, with each service's documented rules.

``FakeOpenSearch(serverless=True)`` is an OpenSearch Serverless *vector search* collection (Classic), as
the OpenSearch Service developer guide describes it:

- no custom document id: "For time series and vector search collections, you can't index by custom
  document ID or update by upsert requests. This operation is reserved for search use cases. You can
  update by document ID instead." ("Choosing a collection type"): an ``index``/``create`` with ``_id``
  and an ``update`` with ``upsert``/``doc_as_upsert`` are refused (HTTP 400); delete and update by the
  generated id work;
- no refresh: "The refresh interval for indexes on vector search collections is 60 seconds" (Classic;
  NextGen: 10 s) and there is no ``_refresh`` (the ``refresh`` parameter is refused here, so a client
  that needs one fails loudly): writes become searchable only at ``refresh()``, which a test calls
  where the interval has passed;
- point in time and ``search_after`` work ("Point in Time (PIT) with search_after is recommended
  pagination method in Amazon OpenSearch Serverless", "Using Pit with Amazon OpenSearch Serverless");
- no search pipelines, so no ``hybrid`` query (refused);
- ``_delete_by_query``: refused. The guide's list of ``aoss:WriteDocument`` operations in the copies
  read for this names ``DELETE <index>/_doc/<id>`` and ``POST <index>/_bulk``; the adapter relies on
  those alone, and the fake proves it.

``FakeOpenSearch(serverless=False)`` is a managed domain (OpenSearch 2.19): custom ids, ``refresh``
(``true`` / ``wait_for`` / ``_refresh``), PIT, ``_delete_by_query``, hybrid through a search pipeline.
Without a refresh a write stays invisible to searches here too (a real domain refreshes every second).

Both: a search returns at most ``index.max_result_window`` = 10,000 hits (``from + size``; HTTP 400
past it), as does a ``terms`` aggregation's ``size``; ``search_after`` needs a ``sort``, whose values
must all be present. Documents are validated against the mapping (integers, keywords, the vector's
dimension): a mismatch is the item's 400, as OpenSearch's ``mapper_parsing_exception``.

Faults: ``crash_after_bulk`` (bulk ordinals, 1-based) applies that bulk and then raises ``Crash`` (the
process died after OpenSearch acknowledged, before the client heard: not retried by the transport);
``lose_ack_after_bulk`` applies it and raises opensearch-py's ``ConnectionError``, which the transport
retries, so the bulk is applied twice. ``lose_pits()`` drops every point in time (a node restart).
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from opensearchpy import Connection
from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError

MAX_RESULT_WINDOW = 10_000


class Crash(RuntimeError):
    """The process died right after a request reached OpenSearch (injected)."""


class _Refused(Exception):
    def __init__(self, status: int, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.kind, self.reason = status, kind, reason

    def body(self) -> dict:
        return {"error": {"type": self.kind, "reason": self.reason}, "status": self.status}


def _get(document: dict, path: str) -> Any:
    """A field of ``document`` by dotted path (``metadata.source`` as an object path or a dotted key)."""
    if path in document:
        return document[path]
    node: Any = document
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _values(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


class _Index:
    def __init__(self, name: str, body: dict) -> None:
        self.name = name
        self.body = copy.deepcopy(body)
        self.live: dict[str, dict] = {}
        self.visible: dict[str, dict] = {}
        self.order: list[str] = []  # insertion order, for stable default ordering

    @property
    def properties(self) -> dict:
        return self.body.get("mappings", {}).get("properties", {})

    def field_type(self, path: str) -> str | None:
        properties = self.properties
        if path in properties:  # a Serverless index's dotted mapping
            return properties[path].get("type")
        node: Any = {"properties": properties}
        for part in path.split("."):
            node = node.get("properties", {}).get(part)
            if node is None:
                return None
        return node.get("type")

    def validate(self, document: dict) -> None:
        vector_fields = [name for name, spec in self.properties.items() if spec.get("type") == "knn_vector"]
        for name in vector_fields:
            vector = document.get(name)
            if vector is None:
                continue
            dimension = self.properties[name]["dimension"]
            if not isinstance(vector, list) or len(vector) != dimension:
                raise _Refused(400, "mapper_parsing_exception", f"Vector dimension mismatch. Expected: {dimension}")
        self._check_types(document, "")

    def _check_types(self, node: dict, prefix: str) -> None:
        for key, value in node.items():
            path = f"{prefix}{key}"
            if isinstance(value, dict):
                self._check_types(value, f"{path}.")
                continue
            kind = self.field_type(path)
            for item in _values(value):
                if kind in ("integer", "long") and not (isinstance(item, int) and not isinstance(item, bool)):
                    if not (isinstance(item, str) and re.fullmatch(r"-?\d+", item)):
                        raise _Refused(
                            400, "mapper_parsing_exception", f"failed to parse field [{path}] of type [{kind}]"
                        )
                if kind == "integer" and isinstance(item, int) and not -(2**31) <= item < 2**31:
                    raise _Refused(400, "mapper_parsing_exception", f"Numeric value ({item}) out of range of int")


class FakeOpenSearch:
    """One OpenSearch service (a domain or a collection) with its indexes, in memory."""

    def __init__(self, *, serverless: bool) -> None:
        self.serverless = serverless
        self.indexes: dict[str, _Index] = {}
        self.requests: list[tuple[str, str, dict, Any]] = []
        self.pits: dict[str, dict[str, dict]] = {}
        self.bulks = 0
        self.crash_after_bulk: set[int] = set()
        self.lose_ack_after_bulk: set[int] = set()
        self._ids = itertools.count(1)

    # ---- for tests
    def connection_class(self) -> type[Connection]:
        fake = self

        class FakeConnection(Connection):
            def perform_request(self, method, url, params=None, body=None, timeout=None, ignore=(), headers=None):
                status, reply = fake.handle(method, url, params or {}, body)
                raw = json.dumps(reply)
                if status >= 300 and status not in ignore and method != "HEAD":
                    self._raise_error(status, raw)
                return status, {}, raw

        return FakeConnection

    def create_index(self, name: str, body: dict) -> None:
        """What CloudFormation or the custom resource does before the functions run."""
        self.indexes[name] = _Index(name, body)

    def refresh(self) -> None:
        """The refresh interval passed: every write so far becomes searchable."""
        for index in self.indexes.values():
            index.visible = copy.deepcopy(index.live)

    def lose_pits(self) -> None:
        self.pits.clear()

    def documents(self, index: str) -> list[dict]:
        """Every document (searchable or not yet), without its generated id."""
        return [copy.deepcopy(doc) for doc in self.indexes[index].live.values()]

    def count(self, kind: str | None = None, path: str | None = None) -> int:
        return sum(
            1
            for method, url, _, _ in self.requests
            if (kind is None or method == kind) and (path is None or urlparse(url).path.endswith(path))
        )

    # ---- the HTTP surface
    def handle(self, method: str, url: str, params: dict, body: Any) -> tuple[int, Any]:
        parsed = urlparse(url)
        path = unquote(parsed.path)
        params = {**{k: v[-1] for k, v in parse_qs(parsed.query).items()}, **params}
        params = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in params.items()}
        body = self._decode(body)
        self.requests.append((method, path, params, body))
        try:
            if "refresh" in params and self.serverless:
                raise _Refused(400, "illegal_argument_exception", "refresh is not supported in this collection")
            status, reply = self._route(method, path, params, body)
        except _Refused as refused:
            return refused.status, refused.body()
        return status, reply

    @staticmethod
    def _decode(body: Any) -> Any:
        if isinstance(body, bytes):
            body = body.decode()
        if isinstance(body, str):
            lines = [line for line in body.splitlines() if line.strip()]
            if len(lines) > 1 or (lines and body.endswith("\n")):
                return [json.loads(line) for line in lines]
            return json.loads(body) if body.strip() else None
        return body

    def _route(self, method: str, path: str, params: dict, body: Any) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        if parts == ["_bulk"] or (len(parts) == 2 and parts[1] == "_bulk"):
            return self._bulk(body, params, parts[0] if len(parts) == 2 else None)
        if parts == ["_search"]:
            return self._search(None, body or {}, params)
        if parts == ["_search", "point_in_time"] and method == "DELETE":
            for pit_id in (body or {}).get("pit_id", []):
                self.pits.pop(pit_id, None)
            return 200, {"pits": []}
        if not parts:
            return 200, {"version": {"distribution": "opensearch", "number": "2.19.0"}}
        name = parts[0]
        if len(parts) == 1:
            if method == "HEAD":
                return (200 if name in self.indexes else 404), {}
            if method == "PUT":
                if name in self.indexes:
                    raise _Refused(400, "resource_already_exists_exception", f"index [{name}] already exists")
                self.create_index(name, body or {})
                return 200, {"acknowledged": True, "index": name}
            if method == "DELETE":
                self.indexes.pop(name, None)
                return 200, {"acknowledged": True}
            return 200, {name: self._index(name).body}
        index = self._index(name)
        action = parts[1]
        if action == "_mapping":
            return 200, {name: {"mappings": index.body.get("mappings", {})}}
        if action == "_refresh":
            if self.serverless:
                raise _Refused(400, "illegal_argument_exception", "refresh is not supported in this collection")
            self.refresh()
            return 200, {"_shards": {"failed": 0}}
        if action == "_search" and len(parts) == 3 and parts[2] == "point_in_time":
            pit_id = f"pit-{next(self._ids)}"
            self.pits[pit_id] = copy.deepcopy(index.visible)
            return 200, {"pit_id": pit_id, "creation_time": 0}
        if action == "_search":
            return self._search(index, body or {}, params)
        if action == "_delete_by_query":
            if self.serverless:
                raise _Refused(400, "illegal_argument_exception", "_delete_by_query is not relied on for Serverless")
            doomed = [
                doc_id for doc_id, doc in index.visible.items() if self._matches(index, doc_id, doc, body["query"])
            ]
            for doc_id in doomed:
                index.live.pop(doc_id, None)
            self._maybe_refresh(params)
            return 200, {"deleted": len(doomed)}
        if action in ("_doc", "_create") and len(parts) == 3:
            if method in ("PUT", "POST") and self.serverless:
                raise _Refused(400, "illegal_argument_exception", "Document ID is not supported in this collection")
            if method == "DELETE":
                found = index.live.pop(parts[2], None)
                return (200 if found else 404), {"result": "deleted" if found else "not_found"}
        if action == "_doc" and len(parts) == 2 and method == "POST":
            doc_id = self._new_id()
            index.validate(body)
            index.live[doc_id] = copy.deepcopy(body)
            self._maybe_refresh(params)
            return 201, {"_id": doc_id, "result": "created"}
        raise _Refused(400, "illegal_argument_exception", f"{method} {path} is not implemented by the fake")

    def _index(self, name: str) -> _Index:
        if name not in self.indexes:
            raise _Refused(404, "index_not_found_exception", f"no such index [{name}]")
        return self.indexes[name]

    def _new_id(self) -> str:
        return f"gen{next(self._ids):08d}"

    def _maybe_refresh(self, params: dict) -> None:
        if params.get("refresh") in ("true", "wait_for", ""):
            self.refresh()

    # ---- bulk
    def _bulk(self, lines: list[dict], params: dict, default_index: str | None) -> tuple[int, Any]:
        self.bulks += 1
        ordinal = self.bulks
        items, errors = [], False
        pairs = iter(lines or [])
        for action in pairs:
            (operation, meta), *_ = action.items()
            source = next(pairs) if operation in ("index", "create", "update") else None
            name = meta.get("_index", default_index)
            try:
                index = self._index(name)
                status, result = self._bulk_item(index, operation, meta, source)
                items.append({operation: {"_index": name, "status": status, **result}})
                errors = errors or (status >= 300 and not (operation == "delete" and status == 404))
            except _Refused as refused:
                errors = True
                items.append({operation: {"_index": name, "status": refused.status, "error": refused.body()["error"]}})
        self._maybe_refresh(params)
        if ordinal in self.crash_after_bulk:
            raise Crash(f"killed after bulk #{ordinal}")
        if ordinal in self.lose_ack_after_bulk:
            raise OpenSearchConnectionError("N/A", f"connection lost after bulk #{ordinal}", None)
        return 200, {"took": 1, "errors": errors, "items": items}

    def _bulk_item(self, index: _Index, operation: str, meta: dict, source: dict | None) -> tuple[int, dict]:
        if operation in ("index", "create"):
            if "_id" in meta and self.serverless:
                raise _Refused(
                    400, "illegal_argument_exception", "Document ID is not supported in create/index operation request"
                )
            doc_id = meta.get("_id") or self._new_id()
            if operation == "create" and doc_id in index.live:
                raise _Refused(409, "version_conflict_engine_exception", f"[{doc_id}]: document already exists")
            index.validate(source or {})
            created = doc_id not in index.live
            index.live[doc_id] = copy.deepcopy(source or {})
            return (201 if created else 200), {"_id": doc_id, "result": "created" if created else "updated"}
        if operation == "delete":
            found = index.live.pop(meta["_id"], None)
            return (
                (200, {"_id": meta["_id"], "result": "deleted"})
                if found
                else (404, {"_id": meta["_id"], "result": "not_found"})
            )
        if operation == "update":
            wants_upsert = (source or {}).get("upsert") is not None or bool((source or {}).get("doc_as_upsert"))
            if self.serverless and wants_upsert:
                raise _Refused(400, "illegal_argument_exception", "upsert is not supported in this collection")
            doc_id = meta["_id"]
            if doc_id not in index.live:
                raise _Refused(404, "document_missing_exception", f"[{doc_id}]: document missing")
            merged = _merge(index.live[doc_id], (source or {}).get("doc", {}))
            index.validate(merged)
            index.live[doc_id] = merged
            return 200, {"_id": doc_id, "result": "updated"}
        raise _Refused(400, "illegal_argument_exception", f"unknown bulk operation {operation}")

    # ---- search
    def _search(self, index: _Index | None, body: dict, params: dict) -> tuple[int, Any]:
        pit = body.get("pit")
        if pit is not None:
            if index is not None:
                raise _Refused(400, "illegal_argument_exception", "[indices] cannot be used with point in time")
            if pit["id"] not in self.pits:
                raise _Refused(404, "search_context_missing_exception", f"No search context found for id [{pit['id']}]")
            documents = self.pits[pit["id"]]
            mapping_index = next(iter(self.indexes.values()))
        elif index is None:
            raise _Refused(400, "illegal_argument_exception", "the fake searches one index")
        else:
            documents, mapping_index = index.visible, index
        size = int(body.get("size", params.get("size", 10)))
        start = int(body.get("from", 0))
        if start + size > MAX_RESULT_WINDOW:
            raise _Refused(
                400,
                "illegal_argument_exception",
                f"Result window is too large, from + size must be less than or equal to: [{MAX_RESULT_WINDOW}] "
                f"but was [{start + size}]. See the scroll api for a more efficient way to request large data sets.",
            )
        query = body.get("query", {"match_all": {}})
        if "hybrid" in query:
            if self.serverless:
                raise _Refused(400, "illegal_argument_exception", "search pipelines are not supported")
            if params.get("search_pipeline") is None:
                raise _Refused(400, "illegal_argument_exception", "hybrid query needs a search pipeline")
        scored = []
        for doc_id, doc in documents.items():
            score = self._score(mapping_index, doc_id, doc, query)
            if score is not None:
                scored.append((doc_id, doc, score))
        if "knn" in query:
            (spec,) = query["knn"].values()
            scored = sorted(scored, key=lambda item: -item[2])[: spec["k"]]
        sort = body.get("sort")
        hits = []
        if sort:
            keys = [self._sort_spec(s) for s in sort]
            rows = [(doc_id, doc, score, [_get(doc, f) for f, _ in keys]) for doc_id, doc, score in scored]
            if any(value is None for *_, values in rows for value in values):
                raise _Refused(400, "illegal_argument_exception", "the fake sorts only on fields every hit has")
            for position, (_, order) in reversed(list(enumerate(keys))):
                rows.sort(key=lambda row, p=position: row[3][p], reverse=order == "desc")
            after = body.get("search_after")
            if after is not None:
                if len(after) != len(keys) or any(value is None for value in after):
                    raise _Refused(400, "illegal_argument_exception", "search_after must match the sort values")
                rows = [row for row in rows if _after(row[3], after, keys)]
            page = rows[start : start + size]
            hits = [self._hit(doc_id, doc, score, body, values) for doc_id, doc, score, values in page]
        else:
            if body.get("search_after") is not None:
                raise _Refused(400, "illegal_argument_exception", "search_after needs a sort")
            ranked = (
                sorted(scored, key=lambda item: -item[2])
                if ("knn" in query or "match" in json.dumps(query))
                else scored
            )
            hits = [self._hit(doc_id, doc, score, body, None) for doc_id, doc, score in ranked[start : start + size]]
        reply: dict = {"took": 1, "timed_out": False, "hits": {"hits": hits}}
        if body.get("track_total_hits", True) is not False:
            reply["hits"]["total"] = {"value": len(scored), "relation": "eq"}
        if pit is not None:
            reply["pit_id"] = pit["id"]
        if "aggs" in body or "aggregations" in body:
            matching = [doc for _, doc, _ in scored]
            reply["aggregations"] = {
                name: self._aggregate(spec, matching)
                for name, spec in (body.get("aggs") or body["aggregations"]).items()
            }
        return 200, reply

    @staticmethod
    def _sort_spec(spec: Any) -> tuple[str, str]:
        if isinstance(spec, str):
            return spec, "asc"
        (name, order), *_ = spec.items()
        return name, order if isinstance(order, str) else order.get("order", "asc")

    def _hit(self, doc_id: str, doc: dict, score: float, body: dict, sort_values: list | None) -> dict:
        hit: dict = {"_index": "x", "_id": doc_id, "_score": score}
        source = _filter_source(doc, body.get("_source", True))
        if source is not None:
            hit["_source"] = source
        if sort_values is not None:
            hit["sort"] = sort_values
        return hit

    def _aggregate(self, spec: dict, documents: list[dict]) -> dict:
        if "composite" in spec:
            composite = spec["composite"]
            size = composite.get("size", 10)
            (name, source_spec), *_ = composite["sources"][0].items()
            field = source_spec["terms"]["field"]
            counts: dict = {}
            for doc in documents:
                for value in _values(_get(doc, field)):
                    counts[value] = counts.get(value, 0) + 1
            keys = sorted(counts)
            after = (composite.get("after") or {}).get(name)
            if after is not None:
                keys = [k for k in keys if k > after]
            page = keys[:size]
            result: dict = {"buckets": [{"key": {name: k}, "doc_count": counts[k]} for k in page]}
            if page:
                result["after_key"] = {name: page[-1]}
            return result
        if "terms" in spec:
            size = spec["terms"].get("size", 10)
            if size > MAX_RESULT_WINDOW:
                raise _Refused(400, "illegal_argument_exception", "terms aggregation size over the fake's limit")
            counts = {}
            for doc in documents:
                for value in _values(_get(doc, spec["terms"]["field"])):
                    counts[value] = counts.get(value, 0) + 1
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:size]
            return {"buckets": [{"key": k, "doc_count": c} for k, c in ranked]}
        raise _Refused(400, "illegal_argument_exception", f"aggregation {list(spec)} not implemented by the fake")

    # ---- queries
    def _matches(self, index: _Index, doc_id: str, doc: dict, query: dict) -> bool:
        return self._score(index, doc_id, doc, query) is not None

    def _score(self, index: _Index, doc_id: str, doc: dict, query: dict) -> float | None:
        (kind, spec), *_ = query.items()
        if kind == "match_all":
            return 1.0
        if kind == "term":
            (field, value), *_ = spec.items()
            value = value["value"] if isinstance(value, dict) else value
            return 1.0 if value in _values(_get(doc, field)) else None
        if kind == "terms":
            (field, values), *_ = spec.items()
            return 1.0 if set(map(_hashable, values)) & set(map(_hashable, _values(_get(doc, field)))) else None
        if kind == "exists":
            return 1.0 if _get(doc, spec["field"]) not in (None, [], {}) else None
        if kind == "ids":
            return 1.0 if doc_id in spec["values"] else None
        if kind == "match":
            (field, value), *_ = spec.items()
            words = set(re.findall(r"\w+", str(value["query"] if isinstance(value, dict) else value).lower()))
            text = set(re.findall(r"\w+", str(_get(doc, field) or "").lower()))
            overlap = len(words & text)
            return float(overlap) if overlap else None
        if kind == "knn":
            (field, knn), *_ = spec.items()
            vector = _get(doc, field)
            if not vector:
                return None
            if knn.get("filter") and not self._matches(index, doc_id, doc, knn["filter"]):
                return None
            return float(sum(a * b for a, b in zip(vector, knn["vector"], strict=True)))
        if kind == "hybrid":
            scores = [self._score(index, doc_id, doc, q) for q in spec["queries"]]
            found = [s for s in scores if s is not None]
            return max(found) if found else None
        if kind == "bool":
            total = 0.0
            for clause in _as_list(spec.get("filter")) + _as_list(spec.get("must")):
                score = self._score(index, doc_id, doc, clause)
                if score is None:
                    return None
                total += score
            for clause in _as_list(spec.get("must_not")):
                if self._matches(index, doc_id, doc, clause):
                    return None
            should = _as_list(spec.get("should"))
            if should:
                hits = [s for s in (self._score(index, doc_id, doc, c) for c in should) if s is not None]
                if not hits and not (spec.get("filter") or spec.get("must")):
                    return None
                total += sum(hits)
            return total or 1.0
        raise _Refused(400, "parsing_exception", f"unknown query [{kind}] (not implemented by the fake)")


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value


def _after(values: list, after: list, keys: list[tuple[str, str]]) -> bool:
    for value, mark, (_, order) in zip(values, after, keys, strict=True):
        if value == mark:
            continue
        return value > mark if order == "asc" else value < mark
    return False


def _merge(base: dict, update: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in update.items():
        merged[key] = (
            _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        )
    return merged


def _filter_source(doc: dict, spec: Any) -> dict | None:
    if spec is False:
        return None
    if spec is True or spec is None:
        return copy.deepcopy(doc)
    if isinstance(spec, str):
        spec = [spec]
    includes = spec if isinstance(spec, list) else spec.get("includes", [])
    excludes = [] if isinstance(spec, list) else spec.get("excludes", [])
    result: dict = {}
    if includes:
        for path in includes:
            value = _get(doc, path)
            if value is None:
                continue
            node = result
            *parents, last = path.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = copy.deepcopy(value)
    else:
        result = copy.deepcopy(doc)
    for path in excludes:
        node = result
        *parents, last = path.split(".")
        for part in parents:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(last, None)
    return result


def normalized(documents: Iterable[dict]) -> list[str]:
    """Documents as a sorted list of JSON strings, without what differs between equal runs (row keys)."""
    out = []
    for doc in documents:
        doc = copy.deepcopy(doc)
        doc.get("metadata", {}).pop("row_id", None)
        out.append(json.dumps(doc, sort_keys=True))
    return sorted(out)


def is_finite(vector: list[float]) -> bool:
    return all(math.isfinite(x) for x in vector)
