"""The book's request shape on LMI's own engine: a pre-validation hook and custom formatters.

LMI (DJL Serving 0.36, vLLM async mode, the default since LMI v17) keeps its engine and its
continuous batching; this module only changes the shape of a request and its response. DJL finds
the three hooks in the model folder's ``model.py`` (written by ``genai optimize package``):

- ``handle`` runs first for every request. DJL's vLLM service calls a ``model.py`` ``handle`` and
  falls through to vLLM when it returns ``None`` (``djl_python/lmi_vllm/vllm_async_service.py``:
  ``result = await custom_service.handle(inputs); if result is not None: return result``). It
  validates with ``schema.py``, the same contract ``genai serve`` uses, and answers a bad request
  itself with a 4xx naming the field: an exception in an input formatter would reach the client
  only as a 424 "Custom input formatter execution failed" (``custom_formatter_handling.py``).
- ``format_input`` (``@input_formatter``) turns a valid request into LMI's own schema
  (``{"inputs", "parameters", "stream"}``, the adapter as vLLM's ``model``), which DJL converts with
  ``convert_lmi_schema_to_completion_request`` and hands to vLLM's scheduler.
- ``format_output`` (``@output_formatter``) turns vLLM's ``CompletionResponse`` into
  ``[{"generated_text": ...}]``, one per input, and each streamed chunk into ``{"token": {"text"}}``
  lines ending with ``{"generated_text": ...}``, as ``genai serve`` streams.

Only pydantic and the standard library are imported: the module and ``schema.py`` are copied into
the model folder (``genai_lmi/``), so a model runs on the plain LMI image, whose Python has both.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from pathlib import Path
from typing import Any

from .schema import MAX_BATCH, InferenceRequest, RequestError, decode_body, parse_request, too_long

log = logging.getLogger(__name__)

ADAPTER_HEADER = "X-Amzn-SageMaker-Adapter-Identifier"
"""SageMaker's inference-component adapter header; DJL reads it before any formatter runs."""
VLLM_SERVICE_MODULE = "djl_python.lmi_vllm.vllm_async_service"
JSON_TYPES = ("application/json", "")

try:  # inside the LMI container
    from djl_python.async_utils import create_non_stream_output
    from djl_python.input_parser import input_formatter
    from djl_python.output_formatter import output_formatter
except ImportError:  # pragma: no cover - outside LMI; DJL looks for exactly these attributes

    def input_formatter(function):
        function.is_input_formatter = True
        return function

    def output_formatter(function):
        function.is_output_formatter = True
        return function

    create_non_stream_output = None


# ---- validation (the ``handle`` hook) -------------------------------------------------------


class _ModelFacts:
    """What validation needs from the model folder, loaded once per worker."""

    def __init__(self, model_dir: Path, properties: dict[str, str]) -> None:
        self.model_dir = model_dir
        config = _read_json(model_dir / "config.json")
        configured = properties.get("max_model_len") or properties.get("n_positions")
        self.context_length = int(
            configured or config.get("max_position_embeddings") or config.get("n_positions") or 2048
        )
        self._tokenizer: Any = None  # a transformers tokenizer, loaded on first use
        self._lock = threading.Lock()

    def adapters_on_disk(self) -> list[str]:
        # LMI registers each folder of <model>/adapters/ under the folder's name at start-up.
        root = self.model_dir / "adapters"
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if (p / "adapter_config.json").is_file())

    def token_count(self, text: str) -> int:
        with self._lock:
            if self._tokenizer is None:
                from transformers import AutoTokenizer  # in every LMI image (vLLM depends on it)

                self._tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir))
        return len(self._tokenizer(text)["input_ids"])


_facts: _ModelFacts | None = None


def _model_facts(properties: dict[str, str]) -> _ModelFacts:
    global _facts
    model_dir = Path(properties.get("model_id") or properties.get("model_dir") or "/opt/ml/model")
    if not model_dir.is_dir():  # option.model_id names a hub id or s3:// URI: LMI downloads to model_dir
        model_dir = Path(properties.get("model_dir") or "/opt/ml/model")
    if _facts is None or _facts.model_dir != model_dir:
        _facts = _ModelFacts(model_dir, properties)
    return _facts


def registered_adapters(facts: _ModelFacts) -> list[str]:
    """Adapters vLLM can serve: those LMI loaded from ``adapters/`` plus any registered since."""
    names = set(facts.adapters_on_disk())
    service = getattr(sys.modules.get(VLLM_SERVICE_MODULE), "service", None)
    names.update(getattr(service, "lora_requests", None) or {})
    return sorted(names)


def validate(
    body: bytes | bytearray, content_type: str | None, properties: dict[str, str], adapter_header: str | None = None
) -> InferenceRequest:
    """The request, or a ``RequestError`` with the 4xx status and a message naming the field."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type not in JSON_TYPES:
        raise RequestError(415, f"content-type {media_type!r}: send application/json")
    request = parse_request(decode_body(body))
    facts = _model_facts(properties)
    adapter = request.adapter or adapter_header
    if request.adapter and adapter_header and request.adapter != adapter_header:
        raise RequestError(
            400, f"adapter: {request.adapter!r} differs from the {ADAPTER_HEADER} header {adapter_header!r}; give one"
        )
    if adapter is not None:
        available = registered_adapters(facts)
        if adapter not in available:
            raise RequestError(400, f"adapter: {adapter!r} is not loaded; available: {available or 'none'}")
    budget = facts.context_length - request.parameters.max_new_tokens
    if budget < 1:
        raise RequestError(
            400,
            f"parameters.max_new_tokens: {request.parameters.max_new_tokens} leaves no room "
            f"for the input in the model's context of {facts.context_length} tokens",
        )
    for index, text in enumerate(request.texts):
        # A token is at least one UTF-8 byte for byte-level tokenizers; tokenize only when that bound
        # cannot settle it, so short requests cost no tokenizer call here.
        if len(text.encode("utf-8")) <= budget:
            continue
        length = facts.token_count(text)
        if length > budget:
            raise too_long(request, index, length, facts.context_length)
    return request


def error_body(status: int, message: str) -> dict[str, Any]:
    """The JSON a refused request gets: ``djl_python.Output.error``'s fields (code, message, error)."""
    return {"code": status, "message": message, "error": message}


async def handle(inputs) -> Any:
    """DJL's custom-handler hook: ``None`` lets LMI's engine serve the request; a bad one gets a 4xx."""
    if inputs.is_empty():  # DJL's initialisation call: let the engine load
        return None
    batch = inputs.get_batches()
    if len(batch) != 1:  # async mode sends one request per call; anything else is not ours to judge
        return None
    item = batch[0]
    try:
        validate(
            item.get_as_bytes(),
            item.get_property("Content-Type"),
            inputs.get_properties(),
            item.get_property(ADAPTER_HEADER),
        )
    except RequestError as error:
        log.info("refused request: %s %s", error.status, error.message)
        return _error_output(error.status, error.message)
    return None


def _error_output(status: int, message: str):
    # DJL's frontend makes `error` the HTTP reason phrase, where Netty refuses CR/LF (and an exception there
    # becomes a 500): one printable ASCII line, whatever a client put into a field name.
    message = message.encode("ascii", "backslashreplace").decode("ascii")
    message = "".join(ch if " " <= ch <= "~" else " " for ch in message)
    body = error_body(status, message)
    if create_non_stream_output is None:  # pragma: no cover - outside LMI
        return body
    # The async engine's response envelope ({"data", "last", "code", "error"}, async_utils.py).
    return create_non_stream_output(body, error=message, code=status)


# ---- input formatter ------------------------------------------------------------------------


def _generation_parameters(request: InferenceRequest, *, stop_key: str) -> dict[str, Any]:
    """Our parameters under LMI's names; ``stop_key`` is ``stop`` for vLLM, ``stop_sequences`` for tnx."""
    p = request.parameters
    parameters: dict[str, Any] = {"max_new_tokens": p.max_new_tokens, "do_sample": p.do_sample}
    if p.do_sample:  # with do_sample false LMI decodes greedily (vLLM: temperature 0), as genai serve does
        parameters.update(temperature=p.temperature, top_p=p.top_p)
        if p.top_k > 0:  # 0 means "no top-k" in transformers; both engines' default already is
            parameters["top_k"] = p.top_k
    if p.repetition_penalty != 1.0:
        parameters["repetition_penalty"] = p.repetition_penalty
    if p.stop:
        parameters[stop_key] = list(p.stop)
    if p.seed is not None:
        parameters["seed"] = p.seed
    return parameters


def to_lmi_payload(request: InferenceRequest, adapter: str | None = None) -> dict[str, Any]:
    """LMI's own request schema for ``convert_lmi_schema_to_completion_request`` (vLLM async mode)."""
    parameters = _generation_parameters(request, stop_key="stop")
    payload: dict[str, Any] = {
        "inputs": request.inputs if isinstance(request.inputs, str) else list(request.inputs),
        "parameters": parameters,
        "stream": request.stream,
    }
    adapter = adapter or request.adapter
    if adapter:  # vLLM picks a LoRA by the request's model name (OpenAIServingModels.lora_requests)
        payload["model"] = adapter
    return payload


@input_formatter
def format_input(decoded_payload: Any, tokenizer: Any = None, **kwargs: Any) -> Any:
    """Both of DJL's formatter signatures (``input_formatter_schema.md``).

    vLLM async (GPU): the decoded body in, LMI's schema out; ``handle`` has refused every bad request
    already, and a direct call still validates. Other backends (the Neuron image's transformers-neuronx
    rolling batch): a ``djl_python.Input`` in, a ``TextInput`` out; a bad request raises, which DJL
    answers per request as "Input Parsing failed. ... <our message naming the field>"
    (``input_parser.parse_input_with_formatter``).
    """
    if hasattr(decoded_payload, "get_as_bytes"):
        return _text_input(decoded_payload, tokenizer, kwargs.get("configs"))
    if not isinstance(decoded_payload, dict):
        raise RequestError(
            400, f'the body must be a JSON object like {{"inputs": "..."}}; got a {type(decoded_payload).__name__}'
        )
    request = parse_request(decoded_payload)
    return to_lmi_payload(request, kwargs.get("adapter_name"))


def _text_input(item: Any, tokenizer: Any, configs: Any) -> Any:
    from djl_python.request_io import TextInput

    media_type = (item.get_property("Content-Type") or "").split(";")[0].strip().lower()
    if media_type not in JSON_TYPES:
        raise RequestError(415, f"content-type {media_type!r}: send application/json")
    request = parse_request(decode_body(item.get_as_bytes() or b""))
    rolling = str(getattr(getattr(configs, "rolling_batch", None), "value", "disable")) != "disable"
    if rolling and len(request.texts) > 1:
        raise RequestError(400, "inputs: send one text per request here; the engine batches concurrent requests")
    if request.adapter is not None:
        raise RequestError(400, "adapter: this endpoint serves no LoRA adapters (Neuron); merge the adapter first")
    context = getattr(configs, "n_positions", None)
    if context and tokenizer is not None:
        budget = int(context) - request.parameters.max_new_tokens
        for index, text in enumerate(request.texts):
            length = len(tokenizer(text)["input_ids"])
            if length > budget:
                where = "inputs" if isinstance(request.inputs, str) else f"inputs[{index}]"
                raise RequestError(
                    413,
                    f"{where}: {length} tokens plus max_new_tokens="
                    f"{request.parameters.max_new_tokens} exceed n_positions={context}",
                )
    parameters = _generation_parameters(request, stop_key="stop_sequences")
    if rolling:
        parameters["stream"] = request.stream
    text_input = TextInput()
    text_input.input_text = request.inputs if isinstance(request.inputs, str) else list(request.inputs)
    text_input.parameters = parameters
    return text_input


# ---- output formatter -----------------------------------------------------------------------

_streams: dict[str, list[str]] = {}
_streams_lock = threading.Lock()


@output_formatter
def format_output(response: Any) -> Any:
    """vLLM's ``CompletionResponse`` -> ``[{"generated_text"}]``; a streamed chunk -> JSON lines."""
    if isinstance(response, str):
        return _format_chunk(response)
    if hasattr(response, "sequences"):  # other backends: a TextGenerationOutput, called once per step
        return _format_generation(response)
    data = _as_dict(response)
    if "choices" in data:
        choices = sorted(data["choices"], key=lambda choice: choice.get("index", 0))
        # A string, not the list: DJL's envelope takes a dict or text (async_utils._create_output).
        return json.dumps(
            [{"generated_text": choice.get("text") or ""} for choice in choices[:MAX_BATCH]], ensure_ascii=False
        )
    if "error" in data or "message" in data:  # vLLM's ErrorResponse (validated requests rarely get one)
        error = data.get("error", data)
        message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
        code = error.get("code", 500) if isinstance(error, dict) else 500
        return error_body(int(code) if str(code).isdigit() else 500, message)
    return data


def _format_chunk(chunk: str) -> str:
    """One server-sent event of vLLM's completion stream (``data: {...}``) -> our JSON lines."""
    text = chunk.strip()
    if text.startswith("data:"):
        text = text[len("data:") :].strip()
    if not text or text == "[DONE]":
        return ""
    data = json.loads(text)
    stream_id = str(data.get("id", ""))
    lines = []
    for choice in data.get("choices") or []:
        piece = choice.get("text") or ""
        with _streams_lock:
            pieces = _streams.setdefault(stream_id, [])
            if piece:
                pieces.append(piece)
            finished = choice.get("finish_reason") is not None
            generated = "".join(_streams.pop(stream_id, [])) if finished else None
        if piece:
            lines.append(json.dumps({"token": {"text": piece}}, ensure_ascii=False))
        if generated is not None:
            lines.append(json.dumps({"generated_text": generated}, ensure_ascii=False))
    return "\n".join(lines)


def _format_generation(output: Any) -> str:
    """Per step: a token line when streaming; ``[{"generated_text"}]`` once, at the last token, otherwise."""
    sequence = output.sequences[output.best_sequence_index]
    parameters = getattr(output.input, "parameters", None) or {}
    stream = bool(parameters.get("stream"))
    lines = []
    while sequence.has_next_token():
        step = sequence.get_next_token()  # (token, index, first, last) in DJL 0.36; (token, first, last) before
        token, last = step[0], step[-1]
        if stream and token is not None and token.text and not token.special_token:
            lines.append(json.dumps({"token": {"text": token.text}}, ensure_ascii=False))
        if last:
            text = "".join(t.text for t in sequence.tokens if t.text and not t.special_token)
            final = {"generated_text": text} if stream else [{"generated_text": text}]
            lines.append(json.dumps(final, ensure_ascii=False))
    return "\n".join(lines) + ("\n" if lines and stream else "")


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if hasattr(value, "model_dump"):
        return value.model_dump()
    return {"generated_text": str(value)}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


MODEL_PY = """\
# Written by `genai optimize package`. LMI (DJL Serving) loads this file's `handle`,
# @input_formatter and @output_formatter; the engine (vLLM, continuous batching) stays LMI's own.
# genai_lmi/ is a copy of genai_runtime.inference.{schema,lmi_formatter}: the plain LMI image runs it.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from genai_lmi.lmi_formatter import format_input, format_output, handle  # noqa: E402,F401
"""
VENDORED_PACKAGE = "genai_lmi"
VENDORED_MODULES = ("schema.py", "lmi_formatter.py")


def write_formatter(folder: str | Path) -> list[Path]:
    """Put ``model.py`` and the vendored ``genai_lmi/`` package into an LMI model folder."""
    folder = Path(folder)
    package = folder / VENDORED_PACKAGE
    package.mkdir(parents=True, exist_ok=True)
    here = Path(__file__).parent
    written = [folder / "model.py", package / "__init__.py"]
    written[0].write_text(MODEL_PY)
    written[1].write_text("")
    for name in VENDORED_MODULES:
        target = package / name
        target.write_bytes((here / name).read_bytes())
        written.append(target)
    return written


__all__ = ["format_input", "format_output", "handle", "to_lmi_payload", "validate", "write_formatter"]
