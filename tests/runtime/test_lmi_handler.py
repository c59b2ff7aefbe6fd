"""The LMI handler answers through the same core, with DJL's Input/Output shapes."""

from __future__ import annotations

import json

import pytest

from genai_cdk import LmiOptions
from genai_runtime.inference import lmi_handler
from genai_runtime.inference.serving_properties import HANDLER_ENTRY_POINT, render_serving_properties


class DjlInput:
    """The part of ``djl_python.Input`` the handler reads."""

    def __init__(self, properties: dict[str, str], body: bytes | None) -> None:
        self._properties, self._body = properties, body

    def get_properties(self) -> dict[str, str]:
        return self._properties

    def is_empty(self) -> bool:
        return self._body is None

    def get_as_json(self):
        return json.loads(self._body)

    def get_as_bytes(self):
        return self._body


@pytest.fixture
def handler(tiny_model, tiny_adapters, monkeypatch):
    monkeypatch.setattr(lmi_handler, "_engine", None)
    properties = {"model_dir": str(tiny_model), "adapters_dir": str(tiny_adapters), "max_rolling_batch_size": "4"}
    yield lambda body: lmi_handler.handle(DjlInput(properties, body))
    if lmi_handler._engine is not None:
        lmi_handler._engine.close()


def test_warm_up_loads_the_model_and_returns_nothing(handler):
    assert handler(None) is None
    assert lmi_handler._engine.adapters == ["tenant-a", "tenant-b"]
    assert lmi_handler._engine.max_batch_size == 4


def test_answers_a_request(handler):
    output = handler(json.dumps({"inputs": "Hi", "parameters": {"max_new_tokens": 4}, "adapter": "tenant-b"}).encode())
    assert output.code == 200
    assert len(output.content) == 1 and output.content[0]["generated_text"]


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (b"{bad", 400, "not valid JSON"),
        (json.dumps({"inputs": "Hi", "parameters": {"seed": -1}}).encode(), 400, "parameters.seed"),
        (json.dumps({"inputs": "Hi", "stream": True}).encode(), 400, "InvokeEndpointWithResponseStream"),
        (json.dumps({"inputs": "word " * 400}).encode(), 413, "context of 256 tokens"),
        (b'{"inputs": "\\ud800"}', 400, "lone surrogate"),
        (b"[" * 10000 + b"]" * 10000, 400, "nested deeper"),
        (b'{"inputs": "Hi", "parameters": {"seed": ' + b"9" * 5000 + b"}}", 400, "4300 digits"),
        (b'{"inputs": "Hi", "parameters": {"max_new_tokens": 99999999}}', 400, "parameters.max_new_tokens"),
    ],
)
def test_bad_requests(handler, body, code, message):
    output = handler(body)
    assert output.code == code
    assert message in output.message and output.content["error"] == output.message
    assert output.content["code"] == code and output.content["message"] == output.message
    assert output.properties["content-type"] == "application/json"


def test_serving_properties_match_the_endpoint_environment():
    options = LmiOptions(
        tensor_parallel_degree=24,
        n_positions=4096,
        max_rolling_batch_size=8,
        rolling_batch="disable",
        entry_point=HANDLER_ENTRY_POINT,
    )
    text = render_serving_properties(options, "ml.inf2.48xlarge", custom_handler=True)
    lines = text.splitlines()
    assert lines[0] == "engine=Python"
    assert f"option.entryPoint={HANDLER_ENTRY_POINT}" in lines
    from genai_cdk import instance_spec

    rendered = {f"OPTION_{k.removeprefix('option.').upper()}": v for k, v in (line.split("=", 1) for line in lines[1:])}
    assert rendered == options.to_environment(instance_spec("ml.inf2.48xlarge"))


def test_custom_handler_is_refused_beside_a_rolling_batch_engine():
    # Under rolling batch DJL sends its per-request protocol; the whole-request handler breaks there.
    for rolling_batch in ("auto", "vllm"):
        with pytest.raises(ValueError, match="works only with rolling_batch='disable'"):
            render_serving_properties(LmiOptions(rolling_batch=rolling_batch), "ml.g5.2xlarge", custom_handler=True)


def test_serving_properties_validate_against_the_instance():
    with pytest.raises(ValueError, match="ml.inf2.xlarge has 2 NeuronCores"):
        render_serving_properties(LmiOptions(tensor_parallel_degree=8), "ml.inf2.xlarge")
