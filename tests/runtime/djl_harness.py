"""DJL Serving's real Python engine (``../shared/harness``), and the least of vLLM it needs on a CPU.

The harness is DJL Serving 0.36.0 (branch 0.36.0-lmi27-dlc) as released, imported from where it
lies, never copied. vLLM itself needs a GPU, so ``install_cpu_vllm`` puts a small ``vllm`` package
into ``sys.modules`` that provides exactly the names DJL's ``lmi_vllm`` modules import, backed by a
real tiny transformers model: DJL's own code (the custom-handler hook, formatter loading, adapter
extraction, ``convert_lmi_schema_to_completion_request``, its output envelopes) runs unmodified
around it. What the stand-in cannot show is vLLM's scheduler and kernels; the closing note says so.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import time
import types
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

ROOT = Path(__file__).resolve().parents[2]
HARNESS = Path(os.environ.get("GENAI_DJL_HARNESS", ROOT.parent / "shared" / "harness" / "djl-serving-0.36.0-lmi27-dlc"))
ENGINE = HARNESS / "engines" / "python" / "setup"
DOCS = HARNESS / "serving" / "docs" / "lmi"

# vLLM's CompletionRequest fields (vllm-project/vllm, vllm/entrypoints/openai/completion/protocol.py,
# commit 002032ee2b18e1f7bd924ec47b62504ba3866063). vLLM's OpenAIBaseModel ignores unknown fields with
# a log line, so a misspelt parameter would be dropped silently there; here it fails the test.
COMPLETION_REQUEST_FIELDS = (
    "model",
    "prompt",
    "echo",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "max_tokens",
    "n",
    "presence_penalty",
    "seed",
    "stop",
    "stream",
    "stream_options",
    "suffix",
    "temperature",
    "top_p",
    "user",
    "use_beam_search",
    "top_k",
    "min_p",
    "repetition_penalty",
    "watermarking",
    "length_penalty",
    "stop_token_ids",
    "include_stop_str_in_output",
    "ignore_eos",
    "min_tokens",
    "skip_special_tokens",
    "spaces_between_special_tokens",
    "truncate_prompt_tokens",
    "truncation_side",
    "allowed_token_ids",
    "prompt_logprobs",
    "logprob_token_ids",
    "bad_words",
    "prompt_embeds",
    "add_special_tokens",
    "response_format",
    "structured_outputs",
    "priority",
    "request_id",
    "session_id",
    "return_tokens_as_token_ids",
    "return_token_ids",
    "routed_experts_prompt_start",
    "return_token_offsets",
    "return_mm_kwargs",
    "cache_salt",
    "kv_transfer_params",
    "ec_transfer_params",
    "vllm_xargs",
    "repetition_detection",
    "thinking_token_budget",
    "stream_interval",
)


def available() -> bool:
    return (ENGINE / "djl_python" / "__init__.py").is_file()


def put_on_path() -> None:
    if str(ENGINE) not in sys.path:
        sys.path.insert(0, str(ENGINE))


# ---- the stand-in for vLLM ------------------------------------------------------------------


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    prompt: str | list[str] | None = None
    echo: bool | None = False
    max_tokens: int | None = 16
    n: int = 1
    seed: int | None = None
    stop: str | list[str] | None = []
    stream: bool | None = False
    stream_options: dict | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    ignore_eos: bool = False
    truncate_prompt_tokens: int | None = None
    logprobs: int | None = None
    return_tokens_as_token_ids: bool | None = None
    prompt_logprobs: int | None = None


class CompletionChoice(BaseModel):
    index: int
    text: str
    finish_reason: str | None = None
    stop_reason: str | None = None
    logprobs: Any = None
    prompt_logprobs: Any = None


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class CompletionResponse(BaseModel):
    id: str
    object: str = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage


class ErrorInfo(BaseModel):
    message: str
    type: str
    code: int


class ErrorResponse(BaseModel):
    error: ErrorInfo


class _Model:
    """The tiny transformers model (and its LoRA adapters) behind the stand-in engine."""

    def __init__(self, path: str) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        self.max_model_len = int(self.model.config.max_position_embeddings)
        self.adapters: dict[str, str] = {}

    def add_adapter(self, name: str, path: str) -> None:
        from peft import PeftModel

        if not self.adapters:
            self.model = PeftModel.from_pretrained(self.model, path, adapter_name=name)
        else:
            self.model.load_adapter(path, adapter_name=name)
        self.adapters[name] = path

    def generate(self, prompt: str, request: CompletionRequest, adapter: str | None) -> tuple[list[int], str]:
        torch = self.torch
        ids = self.tokenizer(prompt, return_tensors="pt")
        kwargs: dict[str, Any] = {"max_new_tokens": request.max_tokens, "pad_token_id": self.tokenizer.pad_token_id}
        if request.temperature == 0.0 or request.temperature is None and request.top_p is None:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(
                do_sample=True,
                temperature=request.temperature or 1.0,
                top_p=request.top_p or 1.0,
                top_k=request.top_k or 0,
            )
        if request.repetition_penalty:
            kwargs["repetition_penalty"] = request.repetition_penalty
        if request.seed is not None:
            torch.manual_seed(request.seed)
        context = self.model.disable_adapter() if self.adapters and adapter is None else _null()
        if adapter is not None:
            self.model.set_adapter(adapter)
        with torch.inference_mode(), context:
            output = self.model.generate(**ids, **kwargs)
        new = output[0, ids["input_ids"].shape[1] :].tolist()
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        for marker in [request.stop] if isinstance(request.stop, str) else request.stop or []:
            if marker in text:
                text = text[: text.index(marker)]
        return new, text


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *_):
        return False


class AsyncLLMEngine:
    def __init__(self, args) -> None:
        self.args = args
        self.model = _Model(args.model)
        self.model_config = self.renderer = None  # read by DJL only to hand to vLLM's render service

    @classmethod
    def from_engine_args(cls, args):
        return cls(args)

    def get_tokenizer(self):
        return self.model.tokenizer

    async def check_health(self) -> None:
        return None

    async def add_lora(self, lora_request) -> bool:
        self.model.add_adapter(lora_request.lora_name, lora_request.lora_path)
        return True


@dataclasses.dataclass
class BaseModelPath:
    name: str
    model_path: str


class OpenAIServingModels:
    def __init__(self, engine, base_model_paths, **_) -> None:
        self.engine = engine
        self.base_model_paths = base_model_paths
        self.lora_requests: dict[str, Any] = {}
        self.registry = None


class OpenAIServingCompletion:
    """vLLM's /v1/completions: one choice per prompt, an SSE stream when ``stream``."""

    def __init__(self, engine, models, **_) -> None:
        self.engine, self.models = engine, models
        self.requests: list[CompletionRequest] = []

    async def create_completion(self, request: CompletionRequest):
        self.requests.append(request)
        model = self.engine.model
        names = [path.name for path in self.models.base_model_paths]
        if request.model not in names and request.model not in self.models.lora_requests:
            return ErrorResponse(
                error=ErrorInfo(message=f"The model `{request.model}` does not exist.", type="NotFoundError", code=404)
            )
        adapter = request.model if request.model in self.models.lora_requests else None
        prompts = [request.prompt] if isinstance(request.prompt, str) else list(request.prompt)
        for prompt in prompts:
            length = len(model.tokenizer(prompt)["input_ids"])
            if length + (request.max_tokens or 0) > model.max_model_len:
                return ErrorResponse(
                    error=ErrorInfo(
                        message=f"This model's maximum context length is {model.max_model_len} tokens.",
                        type="BadRequestError",
                        code=400,
                    )
                )
        request_id = f"cmpl-{uuid.uuid4().hex}"
        if request.stream:
            return self._stream(request_id, prompts[0], request, adapter)
        choices, total = [], 0
        for index, prompt in enumerate(prompts):
            tokens, text = await asyncio.to_thread(model.generate, prompt, request, adapter)
            total += len(tokens)
            choices.append(CompletionChoice(index=index, text=text, finish_reason="length"))
        return CompletionResponse(
            id=request_id,
            created=int(time.time()),
            model=request.model,
            choices=choices,
            usage=Usage(completion_tokens=total),
        )

    async def _stream(self, request_id, prompt, request, adapter):
        model = self.engine.model
        tokens, text = await asyncio.to_thread(model.generate, prompt, request, adapter)
        pieces, emitted = [], ""
        for end in range(1, len(tokens) + 1):
            decoded = model.tokenizer.decode(tokens[:end], skip_special_tokens=True)
            if decoded.startswith(emitted) and len(decoded) > len(emitted) and len(decoded) <= len(text):
                pieces.append(decoded[len(emitted) :])
                emitted = decoded
        if emitted != text:
            pieces.append(text[len(emitted) :])
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            chunk = {
                "id": request_id,
                "object": "text_completion",
                "created": int(time.time()),
                "model": request.model,
                "choices": [{"index": 0, "text": piece, "finish_reason": "length" if last else None}],
            }
            yield f"data: {json.dumps(chunk)}\n\n"
        yield "data: [DONE]\n\n"


class _Passive:
    def __init__(self, *_, **__) -> None:
        pass


@dataclasses.dataclass
class LoRARequest:
    lora_name: str
    lora_int_id: int
    lora_path: str
    long_lora_max_len: int | None = None


class AtomicCounter:
    def __init__(self, value: int = 0) -> None:
        self.value = value

    def inc(self, amount: int = 1) -> int:
        self.value += amount
        return self.value


@dataclasses.dataclass
class EngineArgs:
    """The EngineArgs fields DJL's VllmRbProperties reads or sets (vllm/engine/arg_utils.py)."""

    model: str = ""
    served_model_name: str | None = None
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    max_num_seqs: int | None = None
    dtype: str = "auto"
    revision: str | None = None
    max_loras: int = 1
    max_lora_rank: int = 16
    enable_lora: bool = False
    trust_remote_code: bool = False
    cpu_offload_gb: float = 0
    quantization: str | None = None
    max_num_batched_tokens: int | None = None
    max_model_len: int | None = None
    runner: str = "auto"
    convert: str = "auto"
    device: str = "auto"
    gpu_memory_utilization: float = 0.9
    enable_prefix_caching: bool | None = None
    long_lora_scaling_factors: Any = None

    @classmethod
    def add_cli_args(cls, parser):
        for field in dataclasses.fields(cls):
            flag = "--" + field.name.replace("_", "-")
            if field.type in ("bool", "bool | None"):
                parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=field.default)
            else:
                parser.add_argument(flag, default=field.default)
        return parser

    @classmethod
    def from_cli_args(cls, args):
        return cls(**{field.name: getattr(args, field.name) for field in dataclasses.fields(cls)})


class AsyncEngineArgs(EngineArgs):
    pass


class FlexibleArgumentParser(argparse.ArgumentParser):
    def parse_args(self, args=None, namespace=None):  # vLLM's accepts --snake_case too
        return super().parse_args([a.replace("_", "-") if a.startswith("--") else a for a in args or []], namespace)


def install_cpu_vllm() -> dict[str, types.ModuleType]:
    """Register the stand-in ``vllm`` modules; returns them so a test can inspect the serving object."""
    names = {
        "vllm": {
            "AsyncLLMEngine": AsyncLLMEngine,
            "EngineArgs": EngineArgs,
            "AsyncEngineArgs": AsyncEngineArgs,
            "TokensPrompt": dict,
            "TextPrompt": dict,
        },
        "vllm.entrypoints": {},
        "vllm.entrypoints.openai": {},
        "vllm.entrypoints.openai.chat_completion": {},
        "vllm.entrypoints.openai.completion": {},
        "vllm.entrypoints.openai.models": {},
        "vllm.entrypoints.openai.engine": {},
        "vllm.entrypoints.serve": {},
        "vllm.entrypoints.serve.render": {},
        "vllm.entrypoints.pooling": {},
        "vllm.entrypoints.pooling.embed": {},
        "vllm.utils": {},
        "vllm.lora": {},
        "vllm.entrypoints.openai.chat_completion.protocol": {
            "ChatCompletionRequest": dict,
            "ChatCompletionResponse": dict,
        },
        "vllm.entrypoints.openai.completion.protocol": {
            "CompletionRequest": CompletionRequest,
            "CompletionResponse": CompletionResponse,
            "CompletionLogProbs": dict,
        },
        "vllm.entrypoints.openai.chat_completion.serving": {"OpenAIServingChat": _Passive},
        "vllm.entrypoints.openai.completion.serving": {"OpenAIServingCompletion": OpenAIServingCompletion},
        "vllm.entrypoints.openai.models.protocol": {"BaseModelPath": BaseModelPath},
        "vllm.entrypoints.openai.models.serving": {"OpenAIServingModels": OpenAIServingModels},
        "vllm.entrypoints.openai.engine.protocol": {"ErrorResponse": ErrorResponse},
        "vllm.entrypoints.serve.render.serving": {"OpenAIServingRender": _Passive},
        "vllm.entrypoints.chat_utils": {
            "load_chat_template": lambda template: template,
            "ChatTemplateConfig": _Passive,
        },
        "vllm.entrypoints.pooling.embed.serving": {"ServingEmbedding": _Passive},
        "vllm.entrypoints.pooling.embed.protocol": {"EmbeddingCompletionRequest": dict},
        "vllm.logprobs": {"Logprob": dict},
        "vllm.tokenizers": {"TokenizerLike": object},
        "vllm.outputs": {"CompletionOutput": dict, "RequestOutput": dict},
        "vllm.lora.request": {"LoRARequest": LoRARequest},
        "vllm.utils.counter": {"AtomicCounter": AtomicCounter},
        "vllm.utils.system_utils": {"kill_process_tree": lambda pid: None},
        "vllm.utils.argparse_utils": {"FlexibleArgumentParser": FlexibleArgumentParser},
    }
    modules = {}
    for name, attributes in names.items():
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        module.__path__ = []  # a package, so submodules resolve
        modules[name] = module
    sys.modules.update(modules)
    return modules
