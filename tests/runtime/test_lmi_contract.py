"""A model packaged by ``genai optimize package`` for a GPU endpoint, served through DJL Serving's
real vLLM async service (``djl_python.lmi_vllm.vllm_async_service``, the LMI v17+ default): our
``model.py`` hooks, the book's request shape, LoRA adapters by name, 4xx errors in DJL's envelope.

vLLM itself is the CPU stand-in of ``djl_harness`` (a real tiny model behind vLLM's interfaces);
everything between the request bytes and vLLM is DJL's own released code.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys

import pytest

from tests.runtime import djl_harness

pytestmark = pytest.mark.skipif(
    not djl_harness.available(), reason=f"DJL Serving harness not found at {djl_harness.HARNESS}"
)

SERVICE = "djl_python.lmi_vllm.vllm_async_service"


@pytest.fixture(scope="module")
def packaged(tiny_model, tiny_adapters, tmp_path_factory):
    from genai_cdk import LmiOptions
    from genai_runtime.optimize import package

    options = LmiOptions(enable_lora=True, max_model_len=256, max_rolling_batch_size=8)
    return package.layout(
        tiny_model, tmp_path_factory.mktemp("lmi") / "model", options, "ml.g5.2xlarge", adapters_dir=tiny_adapters
    )


class Lmi:
    """DJL's engine loop in miniature: what ``PythonAsyncEngine.invoke_handler`` does per request."""

    def __init__(self, model_dir) -> None:
        djl_harness.put_on_path()
        self.stand_in = djl_harness.install_cpu_vllm()
        for name in [name for name in sys.modules if name.startswith(("djl_python.lmi_vllm", "genai_lmi"))]:
            del sys.modules[name]
        from djl_python.test_model import TestHandler

        cwd = os.getcwd()
        try:  # TestHandler chdirs into the model folder and reads its serving.properties, as DJL does
            self.handler = TestHandler(SERVICE, str(model_dir))
        finally:
            os.chdir(cwd)
        self.module = importlib.import_module(SERVICE)
        self.model_dir = str(model_dir)
        self.loop = asyncio.new_event_loop()

    def call(self, inputs):
        inputs.properties.update(self.handler.serving_properties)
        result = self.loop.run_until_complete(self.handler.service.invoke_handler_async("handle", inputs))
        return result

    def start(self) -> None:
        from djl_python import Input

        assert self.call(Input()) is None  # DJL's initialisation call
        for adapter in sorted(os.listdir(os.path.join(self.model_dir, "adapters"))):
            registration = Input()  # what the frontend sends for each folder of adapters/
            registration.properties.update(name=adapter, src=os.path.join(self.model_dir, "adapters", adapter))
            self.loop.run_until_complete(self.module.register_adapter(registration))

    def invoke(self, body: bytes, content_type: str = "application/json", headers: dict | None = None):
        from djl_python import Input

        request = Input()
        request.properties.update({"Content-Type": content_type, **(headers or {})})
        request.content.add(key="data", value=body)
        return self.call(request)

    def stream(self, body: bytes) -> list[dict]:
        output = self.invoke(body)
        assert hasattr(output, "__aiter__"), f"expected a stream, got {output}"

        async def collect():
            return [item async for item in output]

        return [envelope(item) for item in self.loop.run_until_complete(collect())]

    @property
    def completions(self):
        return self.module.service.completion_service


def envelope(output) -> dict:
    """The async engine's per-response envelope ({"data", "last", "code", "error"}), decoded."""
    from djl_python.test_model import decode_encoded_output_binary

    assert output.content.size() == 1
    return decode_encoded_output_binary(output.content.value_at(0))


@pytest.fixture(scope="module")
def lmi(packaged):
    region = os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # DJL's session manager builds a client
    server = Lmi(packaged)
    server.start()
    yield server
    if region == "us-east-1":
        os.environ.pop("AWS_DEFAULT_REGION", None)
    server.loop.close()
    for name in [name for name in sys.modules if name.startswith(("vllm", "djl_python.lmi_vllm", "genai_lmi"))]:
        del sys.modules[name]


def _body(payload) -> bytes:
    return json.dumps(payload).encode()


def test_package_writes_the_hooks_and_keeps_lmi_engine(packaged):
    properties = (packaged / "serving.properties").read_text()
    assert "option.entryPoint=djl_python.lmi_vllm.vllm_async_service" in properties  # LMI keeps its engine
    assert "option.async_mode=true" in properties
    assert "option.enable_lora=true" in properties
    source = packaged.parent.parent  # the vendored copies are byte-identical to the runtime's modules
    from genai_runtime.inference import lmi_formatter, schema

    assert (packaged / "genai_lmi" / "schema.py").read_bytes() == open(schema.__file__, "rb").read()
    assert (packaged / "genai_lmi" / "lmi_formatter.py").read_bytes() == open(lmi_formatter.__file__, "rb").read()
    assert sorted(os.listdir(packaged / "adapters")) == ["tenant-a", "tenant-b"]
    assert source.exists()


def test_djl_finds_our_formatters_in_model_py(lmi):
    service = lmi.module.service
    assert service.input_formatter.__name__ == "format_input"
    assert service.output_formatter.__name__ == "format_output"
    assert lmi.module.custom_service.initialized  # model.py's handle is DJL's pre-validation hook


def test_book_request_shape_through_vllm(lmi):
    output = lmi.invoke(_body({"inputs": "Summarize the dialogue", "parameters": {"max_new_tokens": 6}}))
    data = envelope(output)
    assert output.properties["Content-Type"] == "application/json"
    assert "code" not in data
    body = json.loads(data["data"])
    assert isinstance(body, list) and len(body) == 1 and body[0]["generated_text"]
    sent = lmi.completions.requests[-1]
    assert sent.prompt == "Summarize the dialogue" and sent.max_tokens == 6
    assert sent.temperature == 0.0  # do_sample false -> greedy, as genai serve decodes


def test_batch_of_inputs_keeps_order_and_matches_single_requests(lmi):
    texts = ["The quick brown fox", "Fine-tuning with LoRA", "#Person1#: Hi"]
    together = json.loads(envelope(lmi.invoke(_body({"inputs": texts, "parameters": {"max_new_tokens": 5}})))["data"])
    alone = [
        json.loads(envelope(lmi.invoke(_body({"inputs": t, "parameters": {"max_new_tokens": 5}})))["data"])[0]
        for t in texts
    ]
    assert together == alone


def test_sampling_parameters_reach_vllm_by_their_vllm_names(lmi):
    parameters = {
        "max_new_tokens": 4,
        "do_sample": True,
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 20,
        "repetition_penalty": 1.2,
        "stop": ["\n"],
        "seed": 7,
    }
    envelope(lmi.invoke(_body({"inputs": "Hello", "parameters": parameters})))
    sent = lmi.completions.requests[-1].model_dump(exclude_unset=True)
    assert set(sent) <= set(djl_harness.COMPLETION_REQUEST_FIELDS)
    assert (
        sent["temperature"],
        sent["top_p"],
        sent["top_k"],
        sent["repetition_penalty"],
        sent["stop"],
        sent["seed"],
    ) == (0.7, 0.9, 20, 1.2, ["\n"], 7)


def test_adapter_by_name_changes_the_output_and_unknown_adapter_is_a_400(lmi):
    def generate(adapter):
        payload = {"inputs": "The quick brown fox", "parameters": {"max_new_tokens": 8}}
        if adapter:
            payload["adapter"] = adapter
        return json.loads(envelope(lmi.invoke(_body(payload)))["data"])[0]["generated_text"]

    base, a, b = generate(None), generate("tenant-a"), generate("tenant-b")
    assert len({base, a, b}) == 3
    assert lmi.completions.requests[-1].model == "tenant-b"
    data = envelope(lmi.invoke(_body({"inputs": "Hi", "adapter": "tenant-z"})))
    assert data["code"] == "400" and "adapter" in data["error"] and "tenant-a" in data["error"]


def test_adapter_from_sagemaker_header(lmi):
    payload = {"inputs": "The quick brown fox", "parameters": {"max_new_tokens": 8}}
    by_header = envelope(lmi.invoke(_body(payload), headers={"X-Amzn-SageMaker-Adapter-Identifier": "tenant-a"}))
    by_body = envelope(lmi.invoke(_body({**payload, "adapter": "tenant-a"})))
    assert json.loads(by_header["data"]) == json.loads(by_body["data"])


def test_streaming_sends_token_lines_then_the_whole_text(lmi):
    chunks = lmi.stream(_body({"inputs": "The quick brown fox", "parameters": {"max_new_tokens": 8}, "stream": True}))
    lines = [json.loads(line) for chunk in chunks for line in chunk["data"].splitlines() if line.strip()]
    assert chunks[-1]["last"].lower() == "true"
    tokens = [line["token"]["text"] for line in lines if "token" in line]
    assert len(tokens) > 1 and lines[-1]["generated_text"] == "".join(tokens)
    unary = json.loads(
        envelope(lmi.invoke(_body({"inputs": "The quick brown fox", "parameters": {"max_new_tokens": 8}})))["data"]
    )
    assert lines[-1]["generated_text"] == unary[0]["generated_text"]


HOSTILE = [
    (b'{"inputs": "\\ud800"}', "400", "inputs"),
    (b"\xff\xfe{", "400", "UTF-8"),
    (b"[" * 5000 + b"]" * 5000, "400", "nested"),
    (b'{"inputs": "Hi", "parameters": {"temperature": NaN}}', "400", "parameters.temperature"),
    (b'{"inputs": "Hi", "parameters": {"seed": ' + b"9" * 5000 + b"}}", "400", "4300"),
    (b'{"inputs": "Hi", "parameters": {"temperature": 1e999}}', "400", "parameters.temperature"),
    (b'{"inputs": "Hi", "parameters": {"max_new_tokens": 100000000}}', "400", "parameters.max_new_tokens"),
    (b'{"inputs": "Hi", "parameters": {"max_new_tokens": 256}}', "400", "parameters.max_new_tokens"),
    (b'{"inputs": "Hi", "parameters": {"mdoe": 1}}', "400", "parameters.mdoe"),
    (b'{"inputs": ""}', "400", "inputs"),
    (b'"just a string"', "400", "JSON object"),
    (b"{bad", "400", "not valid JSON"),
    (json.dumps({"inputs": "word " * 400}).encode(), "413", "context of 256 tokens"),
]


@pytest.mark.parametrize(("body", "code", "field"), HOSTILE, ids=[h[2] + str(i) for i, h in enumerate(HOSTILE)])
def test_hostile_bodies_get_a_4xx_naming_the_problem(lmi, body, code, field):
    before = len(lmi.completions.requests)
    output = lmi.invoke(body)
    data = envelope(output)
    assert data["code"] == code and field in data["error"], data
    assert json.loads(data["data"])["code"] == int(code)
    assert output.properties["Content-Type"] == "application/json"
    assert len(lmi.completions.requests) == before  # refused before vLLM saw it


def test_error_text_is_one_ascii_line_for_the_http_reason_phrase(lmi):
    data = envelope(lmi.invoke(_body({"inputs": "Hi", "parameters": {"bad\r\nX-Injected: 1\u00e9": 1}})))
    assert data["code"] == "400" and "parameters.bad" in data["error"]
    assert all(" " <= ch <= "~" for ch in data["error"])


def test_non_json_content_type_is_a_415(lmi):
    data = envelope(lmi.invoke(b"hello", content_type="text/plain"))
    assert data["code"] == "415" and "application/json" in data["error"]


# ---- the other backends' signature (the Neuron image's rolling batch), through DJL's own parser ----


@pytest.fixture(scope="module")
def djl_parser(tiny_model):
    djl_harness.put_on_path()
    from djl_python.input_parser import parse_input_with_formatter
    from djl_python.properties_manager.hf_properties import HuggingFaceProperties
    from transformers import AutoTokenizer

    from genai_runtime.inference.lmi_formatter import format_input

    configs = HuggingFaceProperties(model_id=str(tiny_model), rolling_batch="disable")
    configs.input_formatter = format_input  # what DJL sets from model.py's @input_formatter
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)

    def parse(*bodies: bytes):
        from djl_python import Input

        batch = Input()
        batch.properties["batch_size"] = str(len(bodies))
        for index, body in enumerate(bodies):
            batch.properties[f"batch_{index:03d}_Content-Type"] = "application/json"
            batch.content.add(key=f"batch_{index:03d}_data", value=body)
        return parse_input_with_formatter(batch, configs=configs, tokenizer=tokenizer, adapter_registry={})

    return parse


def test_other_backends_get_a_text_input_and_per_request_errors_name_the_field(djl_parser):
    parsed = djl_parser(
        _body({"inputs": "Hi", "parameters": {"max_new_tokens": 5, "stop": ["\n"], "seed": 3}}),
        b'{"inputs": "\\ud800"}',
        _body({"inputs": "Hi", "parameters": {"top_q": 1}}),
    )
    (request,) = parsed.requests
    assert request.request_input.input_text == "Hi"
    assert request.request_input.parameters == {
        "max_new_tokens": 5,
        "do_sample": False,
        "stop_sequences": ["\n"],
        "seed": 3,
    }
    assert "Input Parsing failed" in parsed.errors[1] and "inputs: contains a lone surrogate" in parsed.errors[1]
    assert "parameters.top_q: unknown field" in parsed.errors[2]


def test_other_backends_output_formatter_builds_the_book_shape_from_djl_tokens():
    djl_harness.put_on_path()
    from djl_python.request_io import TextGenerationOutput, TextInput, Token

    from genai_runtime.inference.lmi_formatter import format_output

    for stream in (False, True):
        request = TextInput()
        request.parameters = {"stream": stream}
        output = TextGenerationOutput(request_id=0, input=request)
        pieces = []
        for index, text in enumerate(["Hel", "lo", "!"]):
            output.set_next_token(Token(index, text), is_last_token=index == 2)
            pieces.append(format_output(output))
        if stream:
            lines = [json.loads(line) for piece in pieces for line in piece.splitlines()]
            assert lines == [
                {"token": {"text": "Hel"}},
                {"token": {"text": "lo"}},
                {"token": {"text": "!"}},
                {"generated_text": "Hello!"},
            ]
        else:
            assert pieces[:2] == ["", ""] and json.loads(pieces[2]) == [{"generated_text": "Hello!"}]
