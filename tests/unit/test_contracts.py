"""The contracts the constructs and the runtime share, each defined once in ``genai_contracts``.

The request models are the handlers' own; what API Gateway enforces is generated from them, so the
tests here check the generator: its schema takes only the draft-4 keywords API Gateway takes, and it
accepts and refuses what the model does (hypothesis), save the two documented gaps the handler answers
with its own 400.
"""

from __future__ import annotations

import ast
import re
from typing import Annotated

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from genai_contracts import evaluation, names
from genai_contracts.api_gateway import DRAFT4, SUPPORTED_KEYWORDS, UnsupportedSchema, request_schema
from genai_contracts.api_requests import (
    FILTER_KEY_PATTERN,
    MAX_INPUT_CHARS,
    MAX_QUESTION_CHARS,
    SESSION_ID_PATTERN,
    InvokeRequest,
    QueryRequest,
)
from genai_contracts.vector_index import BASE_METADATA_FIELDS, BEDROCK_METADATA_FIELD, index_body
from tests.conftest import ROOT

MODELS = (QueryRequest, InvokeRequest)

# ---- the request models and the JSON Schema API Gateway gets


def _walk(schema: dict, path: str = "$"):
    yield path, schema
    for key in ("properties", "patternProperties"):
        for name, child in schema.get(key, {}).items():
            yield from _walk(child, f"{path}.{name}")
    for key in ("additionalProperties", "items"):
        if isinstance(schema.get(key), dict):
            yield from _walk(schema[key], f"{path}[]")


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_the_schema_is_draft_4_in_the_subset_api_gateway_takes(model):
    schema = request_schema(model)
    jsonschema.Draft4Validator.check_schema(schema)
    assert schema["$schema"] == DRAFT4 and schema["title"] == model.__name__
    for path, node in _walk(schema):
        assert set(node) <= SUPPORTED_KEYWORDS, f"{path}: {sorted(set(node) - SUPPORTED_KEYWORDS)}"
        assert path == "$" or "$schema" not in node, path
        kinds = node.get("type", [])
        assert set([kinds] if isinstance(kinds, str) else kinds) <= {
            "object",
            "string",
            "integer",
            "number",
            "boolean",
            "null",
            "array",
        }
    assert "$ref" not in repr(schema) and "$defs" not in repr(schema)  # API Gateway resolves no local refs


def test_the_query_schema_states_the_models_limits():
    schema = request_schema(QueryRequest)
    assert schema["required"] == ["question"] and schema["additionalProperties"] is False
    assert schema["properties"]["question"]["maxLength"] == MAX_QUESTION_CHARS
    assert schema["properties"]["filter"]["patternProperties"].keys() == {FILTER_KEY_PATTERN}
    assert schema["properties"]["filter"]["additionalProperties"] is False
    invoke = request_schema(InvokeRequest)
    assert invoke["properties"]["inputText"]["maxLength"] == MAX_INPUT_CHARS
    assert invoke["properties"]["sessionId"] == {"pattern": SESSION_ID_PATTERN, "type": ["string", "null"]}


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-5, 1100)
    | st.floats(-2.0, 2.0, allow_nan=False)
    | st.text(max_size=8)
    | st.sampled_from(["", " ", "\t\n", "\u3000", "\x1c", "ab\n", "similarity", "mmr", "hybrid", "keyword"])
)
_json = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
)
# Strings where regex dialects part: ASCII and Unicode spaces, separators Python counts as spaces, newlines.
_spaces = st.text(st.sampled_from(" \t\n\r\x0b\x0c\x1c\x1f\x85\xa0\u2028\u3000\u200ba_."), max_size=4)
_texts = _spaces | st.text(max_size=12)
_keys = st.from_regex(FILTER_KEY_PATTERN, fullmatch=True) | _texts | st.text(max_size=70) | st.just("year\n")
_values = {
    "question": _texts | st.integers(3995, 4005).map(lambda n: "x" * n) | _json,
    "k": st.integers(-1, 52) | st.floats(0, 60, allow_nan=False) | _json,
    "fetch_k": st.integers(-1, 1002) | _json,
    "lambda_mult": st.floats(-0.5, 1.5, allow_nan=False) | st.integers(-1, 2) | _json,
    "search_type": _json,
    "filter": st.dictionaries(_keys, _json, max_size=10) | _json,
    "generate": _json,
    "inputText": _texts | st.integers(24_995, 25_005).map(lambda n: "y" * n) | _json,
    "sessionId": st.from_regex(SESSION_ID_PATTERN, fullmatch=True) | _texts | _json,
    "temperature": _json,  # not a field: refused by both
}


def _bodies(fields: tuple[str, ...]):
    keys = (*fields, "temperature")
    return st.fixed_dictionaries({}, optional={key: _values[key] for key in keys}) | _json


def _gap(error: ValidationError, payload: dict) -> bool:
    """Refusals the gateway may let through: the model's own cross-field rules, and ``$`` before a final newline."""
    for item in error.errors():
        if item["type"] == "value_error" and item["loc"] == ():
            continue
        if item["type"] == "string_pattern_mismatch" and str(item["input"]).endswith("\n"):
            continue
        if item["loc"][:1] == ("filter",) and len(item["loc"]) == 3 and str(item["loc"][1]).endswith("\n"):
            continue  # a filter key ending in a newline: its pattern ends in $
        return False
    return True


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_gateway_schema_accepts_and_refuses_what_the_model_does(model, data):
    fields = tuple(model.model_fields)
    payload = data.draw(_bodies(fields))
    gateway = jsonschema.Draft4Validator(request_schema(model)).is_valid(payload)
    try:
        model.model_validate(payload)
    except ValidationError as error:
        assert not gateway or _gap(error, payload), f"the gateway lets through what the handler refuses: {error}"
    else:
        assert gateway, f"the gateway refuses what the handler accepts: {payload!r}"


def test_the_documented_gaps_are_the_handlers_400():
    gateway = jsonschema.Draft4Validator(request_schema(QueryRequest))
    assert gateway.is_valid({"question": "q", "k": 10, "fetch_k": 5})
    with pytest.raises(ValidationError, match=r"fetch_k \(5\) must be at least k \(10\)"):
        QueryRequest.model_validate({"question": "q", "k": 10, "fetch_k": 5})


class _Nested(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: Annotated[str, Field(min_length=1)]


class _Outer(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    inner: _Nested
    items: list[_Nested] = []
    level: Annotated[int, Field(ge=0, le=3)] | None = None


def test_nested_models_are_inlined():
    schema = request_schema(_Outer)
    assert schema["properties"]["inner"] == {
        "additionalProperties": False,
        "properties": {"name": {"minLength": 1, "type": "string"}},
        "required": ["name"],
        "type": "object",
    }
    assert schema["properties"]["items"]["items"] == schema["properties"]["inner"]
    assert schema["properties"]["level"] == {"maximum": 3, "minimum": 0, "type": ["integer", "null"]}
    gateway = jsonschema.Draft4Validator(schema)
    assert gateway.is_valid({"inner": {"name": "a"}, "items": [{"name": "b"}], "level": None})
    assert not gateway.is_valid({"inner": {"name": ""}}) and not gateway.is_valid({"inner": {"name": "a", "x": 1}})


class _Lax(BaseModel):
    model_config = ConfigDict(extra="forbid")
    k: int = 3


class _Open(BaseModel):
    model_config = ConfigDict(strict=True)
    k: int = 3


class _Exclusive(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    rate: Annotated[float, Field(gt=0)]


class _Overlap(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    value: Annotated[str, Field(max_length=3)] | Annotated[str, Field(pattern="^a")]


class _Tree(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    children: list[_Tree] = []


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (_Lax, "strict=True"),
        (_Open, "extra='forbid'"),
        (_Exclusive, "'exclusiveMinimum' has no form API Gateway"),
        (_Overlap, "overlapping types"),
        (_Tree, "recursive"),
    ],
)
def test_what_draft_4_cannot_state_is_refused_not_dropped(model, message):
    with pytest.raises(UnsupportedSchema, match=re.escape(message)):
        request_schema(model)


# ---- the other contracts


def test_environment_variable_names_are_their_own_values_and_all_listed():
    constants = {k: v for k, v in vars(names).items() if k.isupper() and isinstance(v, str)}
    variables = {k: v for k, v in constants.items() if not k.endswith("_SERVICE")}
    assert all(key == value for key, value in variables.items())
    assert set(names.ENVIRONMENT_VARIABLES) == set(variables.values())


@pytest.mark.parametrize("package", ["constructs/genai_cdk", "lambdas", "runtime/genai_runtime"])
def test_no_module_spells_an_environment_variable_name_itself(package):
    # A literal "INDEX_URL" outside genai_contracts is a copy of the contract waiting to drift.
    spelled = set(names.ENVIRONMENT_VARIABLES)
    offenders = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and node.value in spelled
    ]
    assert not offenders, "use genai_contracts.names instead:\n" + "\n".join(offenders)


@pytest.mark.parametrize("value", [0, 0.0, 0.4321, 1.0])
def test_the_metric_definitions_read_back_the_lines_the_evaluation_prints(value):
    for metric in evaluation.ROUGE_METRICS:
        match = re.match(evaluation.metric_regex(metric), evaluation.metric_line(metric, value))
        assert match and float(match.group(1)) == value
    assert not re.match(evaluation.metric_regex("rouge1"), evaluation.metric_line("rouge1x", 0.5))


def test_the_rouge_names_are_rouge_scores_own():
    from rouge_score import rouge_scorer

    scores = rouge_scorer.RougeScorer(list(evaluation.ROUGE_METRICS)).score("the cat sat", "the cat sat")
    assert tuple(scores) == evaluation.ROUGE_METRICS


def test_the_index_mapping():
    body = index_body(384, metadata_fields={"year": "integer"})
    properties = body["mappings"]["properties"]
    assert properties["vector_field"]["dimension"] == 384
    assert properties["vector_field"]["method"]["engine"] == "faiss"
    assert properties["metadata"]["properties"] == {
        name: {"type": kind} for name, kind in sorted({**BASE_METADATA_FIELDS, "year": "integer"}.items())
    }
    assert BEDROCK_METADATA_FIELD not in properties
    assert index_body(8, bedrock_metadata=True)["mappings"]["properties"][BEDROCK_METADATA_FIELD] == {
        "type": "text",
        "index": False,
    }
    assert body["settings"]["index"]["knn"] is True


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dimension": 0}, r"dimension=0 is invalid"),
        ({"dimension": True}, r"dimension=True is invalid"),
        ({"dimension": 8, "space_type": "dot"}, r"space_type='dot' is invalid"),
        ({"dimension": 8, "engine": "nmslib"}, r"engine='nmslib' is invalid"),
        ({"dimension": 8, "metadata_fields": {"year": "int"}}, r"metadata field year='int' is invalid"),
        ({"dimension": 8, "metadata_fields": {"bad key": "keyword"}}, r"metadata field name='bad key' is invalid"),
    ],
)
def test_a_bad_index_argument_is_refused_naming_it(kwargs, message):
    with pytest.raises(ValueError, match=message):
        index_body(**kwargs)


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("lmi_options", "LmiOptions"),
        ("lmi_engine", "accepted_keys"),
        ("instance_types", "instance_spec"),
        ("train_config", "TrainConfig"),
        ("_validation", "invalid"),
    ],
)
def test_the_moved_modules_are_still_importable_from_genai_cdk(module, name):
    import importlib

    import genai_cdk

    moved = importlib.import_module(f"genai_contracts.{module}")
    assert getattr(importlib.import_module(f"genai_cdk.{module}"), name) is getattr(moved, name)
    if name in genai_cdk.__all__:
        assert getattr(genai_cdk, name) is getattr(moved, name)
