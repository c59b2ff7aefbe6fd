"""The JSON Schema API Gateway enforces on a request body, generated from its pydantic model.

API Gateway's REST API models are JSON Schema draft 4, and its validator is not pydantic's: pydantic
writes draft 2020-12 (``$defs``/``$ref``, ``anyOf`` for unions and optionals, ``const``, numeric
``exclusiveMinimum``). ``request_schema`` rewrites that into the plain draft-4 subset API Gateway
takes, with every reference inlined (a model may ``$ref`` only other models of the same API, by URL),
and refuses what has no faithful draft-4 form rather than dropping it, so the schema never accepts
less than the model. ``SUPPORTED_KEYWORDS`` is what it may emit; ``aws_apigateway.JsonSchema`` takes
each of them.

Only a strict model that forbids unknown fields gets a schema: then the gateway refuses exactly what
the handler refuses, save the model's own ``model_validator`` rules, which JSON Schema cannot state
(the handler still answers those with a 400 naming the field).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

DRAFT4 = "http://json-schema.org/draft-04/schema#"
SUPPORTED_KEYWORDS = frozenset(
    {
        "$schema",
        "title",
        "description",
        "type",
        "enum",
        "properties",
        "required",
        "additionalProperties",
        "patternProperties",
        "minProperties",
        "maxProperties",
        "items",
        "minItems",
        "maxItems",
        "uniqueItems",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "multipleOf",
    }
)
"""The draft-4 keywords a generated schema may hold."""
_DROPPED = frozenset({"title", "default", "examples"})
"""Annotations only: they validate nothing (``title`` is set once, at the root, to the model's name)."""
_BY_TYPE = {
    "string": frozenset({"minLength", "maxLength", "pattern"}),
    "number": frozenset({"minimum", "maximum", "multipleOf"}),
    "integer": frozenset({"minimum", "maximum", "multipleOf"}),
    "object": frozenset(
        {"properties", "required", "additionalProperties", "patternProperties", "minProperties", "maxProperties"}
    ),
    "array": frozenset({"items", "minItems", "maxItems", "uniqueItems"}),
    "boolean": frozenset(),
    "null": frozenset(),
}
_NUMERIC = frozenset({"number", "integer"})


class UnsupportedSchema(ValueError):
    """The model uses a constraint API Gateway's draft-4 validator cannot state."""


def request_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The draft-4 JSON Schema of ``model``'s body, for ``aws_apigateway.JsonSchema`` (``rest_api.json_schema``)."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"request_schema takes a pydantic model class, not {model!r}")
    config = model.model_config
    if config.get("extra") != "forbid" or not config.get("strict"):
        raise UnsupportedSchema(
            f"{model.__name__}: give it model_config = ConfigDict(extra='forbid', strict=True), or the gateway "
            "would refuse bodies the handler accepts (lax coercion) or accept fields the handler ignores"
        )
    raw = model.model_json_schema(mode="validation")
    definitions = raw.pop("$defs", {})
    body = _draft4(raw, definitions, model.__name__, ())
    return {"$schema": DRAFT4, "title": model.__name__, **body}


def _draft4(node: dict[str, Any], definitions: dict[str, Any], path: str, seen: tuple[str, ...]) -> dict[str, Any]:
    if "$ref" in node:
        name = node["$ref"].removeprefix("#/$defs/")
        if name not in definitions or name in seen:
            raise UnsupportedSchema(f"{path}: {node['$ref']} is recursive or not local; API Gateway needs it inlined")
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return _draft4({**definitions[name], **rest}, definitions, path, (*seen, name))
    if "anyOf" in node:
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        branches = [_draft4(branch, definitions, path, seen) for branch in node["anyOf"]]
        return _draft4({**_union(branches, path), **rest}, definitions, path, seen)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key == "const":
            out["enum"] = [value]
        elif key in ("properties", "patternProperties"):
            out[key] = {name: _draft4(child, definitions, f"{path}.{name}", seen) for name, child in value.items()}
        elif key in ("additionalProperties", "items") and isinstance(value, dict):
            out[key] = _draft4(value, definitions, f"{path}[]", seen)
        elif key in SUPPORTED_KEYWORDS:
            out[key] = value
        else:
            raise UnsupportedSchema(
                f"{path}: {key!r} has no form API Gateway's draft-4 validator takes; "
                "express the constraint with type, enum, pattern, lengths, minimum/maximum or properties"
            )
    if "patternProperties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False  # a dict whose keys have a pattern: every key must match it
    return out


def _union(branches: list[dict[str, Any]], path: str) -> dict[str, Any]:
    """``anyOf`` of differently typed branches as one schema with a list of types (draft 4's form of it).

    Faithful only when each branch's constraints apply to its own types alone (``pattern`` to a string,
    ``minimum`` to a number...) and branches that share a type constrain it alike (``integer`` and
    ``number`` overlap: an integer bounded like a float, ``StrictInt | StrictFloat`` with the same
    ``ge``/``le``); anything else is refused.
    """
    merged: dict[str, Any] = {}
    types: list[str] = []
    all_enums = all("enum" in branch for branch in branches)
    for branch in branches:
        kinds = branch.get("type")
        kinds = [kinds] if isinstance(kinds, str) else list(kinds or [])
        if not kinds:
            raise UnsupportedSchema(f"{path}: a union branch without a type cannot be written in draft 4")
        constrained = set(branch) - {"type", "description", "enum"}
        shared = set(kinds) & set(types)
        if _NUMERIC & set(kinds) and _NUMERIC & set(types):
            shared |= _NUMERIC
        if shared:
            relevant = frozenset().union(*(_BY_TYPE[kind] for kind in shared))
            mine = {key: branch[key] for key in constrained if key in relevant}
            theirs = {key: value for key, value in merged.items() if key in relevant}
            if "enum" in branch or "enum" in merged or mine != theirs:
                raise UnsupportedSchema(f"{path}: union branches of overlapping types cannot be written in draft 4")
        for key in sorted(constrained):
            if not any(key in _BY_TYPE[kind] for kind in kinds):
                raise UnsupportedSchema(f"{path}: {key!r} in a union branch would constrain its other types too")
            if key in merged and merged[key] != branch[key]:
                raise UnsupportedSchema(f"{path}: union branches disagree on {key!r}")
            merged[key] = branch[key]
        if "enum" in branch:
            if not all_enums:
                raise UnsupportedSchema(f"{path}: a union of an enum and other values cannot be written in draft 4")
            merged["enum"] = [*merged.get("enum", []), *(v for v in branch["enum"] if v not in merged.get("enum", []))]
        if "description" in branch:
            merged.setdefault("description", branch["description"])
        types += [kind for kind in kinds if kind not in types]
    merged["type"] = types[0] if len(types) == 1 else types
    return merged
