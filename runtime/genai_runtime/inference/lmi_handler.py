"""The custom handler LMI's Python engine loads (``option.entryPoint`` or a ``model.py`` shim).

It wires DJL Serving's ``Input``/``Output`` to the same ``InferenceEngine`` as ``genai serve``,
so the container and the local server share one request contract and one set of errors.
Outside the LMI container (no ``djl_python``), a minimal ``Output`` with the same methods is
used, which is how the project's own tests exercise this module.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .schema import RequestError, decode_body, parse_request

log = logging.getLogger(__name__)

try:  # present inside the LMI container
    from djl_python import Output
except ImportError:  # pragma: no cover - exercised where djl_python is absent

    class Output:  # type: ignore[no-redef]  # the subset of djl_python.Output this handler uses
        properties: dict[str, str]

        def __init__(self) -> None:
            self.code, self.message, self.content, self.properties = 200, "OK", None, {}

        def add_property(self, key: str, value: str) -> Output:
            self.properties[key] = value
            return self

        def error(self, error: str, code: int = 424, message: str = "invoke handler failure") -> Output:
            self.code, self.message = code, message
            self.add_property("content-type", "application/json")
            return self.add_as_json({"code": code, "message": message, "error": error})

        def set_code(self, code: int) -> Output:
            self.code = code
            return self

        def set_message(self, message: str) -> Output:
            self.message = message
            return self

        def add_as_json(self, value: Any) -> Output:
            self.content = value
            return self


_engine = None


def _load(properties: dict[str, str]):
    from .engine import InferenceEngine

    model_dir = Path(properties.get("model_dir") or "/opt/ml/model")
    adapters = properties.get("adapters_dir") or (model_dir / "adapters")
    adapters_dir = Path(adapters) if Path(adapters).is_dir() else None
    batch = int(properties.get("max_rolling_batch_size") or 8)
    return InferenceEngine(model_dir, adapters_dir, max_batch_size=batch)


def _error(status: int, message: str) -> Output:
    # djl_python's own error shape: {"code", "message", "error"} with content-type set (Output.error).
    return Output().error(message, code=status, message=message)


def handle(inputs) -> Output | None:
    """DJL Serving entry point: ``inputs`` is a ``djl_python.Input``."""
    global _engine
    if _engine is None:
        _engine = _load(inputs.get_properties())
    if inputs.is_empty():  # DJL's warm-up call after loading
        return None
    try:
        request = parse_request(decode_body(inputs.get_as_bytes() or b""))
        if request.stream:
            raise RequestError(400, "stream: use InvokeEndpointWithResponseStream against LMI's rolling batch")
        return Output().add_property("content-type", "application/json").add_as_json(_engine.generate(request))
    except RequestError as error:
        return _error(error.status, error.message)
    except Exception:
        log.exception("inference failed")
        return _error(500, "inference failed; see the endpoint's CloudWatch log")
