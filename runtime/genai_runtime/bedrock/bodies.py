"""Request and response bodies of ``InvokeModel`` per model family, as Bedrock documents them.

Each family differs: Titan text takes ``inputText`` + ``textGenerationConfig``, Claude takes the
Messages API with ``anthropic_version``, Llama a ``prompt`` + ``max_gen_len``, Cohere Command R a
``message``, Titan/Cohere embeddings their own shapes, and SDXL ``text_prompts`` returning base64
``artifacts``. ``family(model_id)`` picks one; the builders validate what they take.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UsageError

_PREFIX = re.compile(r"^(?:(?:us|eu|apac|global)\.)?(?P<provider>[a-z0-9-]+)\.(?P<model>.+)$")


@dataclass(frozen=True)
class TextParams:
    max_tokens: int = 512
    temperature: float = 0.5
    top_p: float = 0.9
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.max_tokens, int) or not 1 <= self.max_tokens <= 100_000:
            raise UsageError(f"max_tokens={self.max_tokens!r} is invalid: give 1..100000")
        if not 0.0 <= self.temperature <= 1.0:
            raise UsageError(f"temperature={self.temperature!r} is invalid: Bedrock models take 0..1")
        if not 0.0 < self.top_p <= 1.0:
            raise UsageError(f"top_p={self.top_p!r} is invalid: give 0 < top_p <= 1")


def family(model_id: str) -> str:
    """titan-text | titan-embed | claude | llama | cohere-command | cohere-embed | sdxl."""
    match = _PREFIX.match(model_id or "")
    if not match:
        raise UsageError(
            f"model_id={model_id!r} is invalid: expected PROVIDER.MODEL, e.g. amazon.titan-text-express-v1"
        )
    provider, model = match["provider"], match["model"]
    if provider == "amazon" and model.startswith("titan-text"):
        return "titan-text"
    if provider == "amazon" and model.startswith("titan-embed"):
        return "titan-embed"
    if provider == "anthropic":
        return "claude"
    if provider == "meta" and model.startswith("llama"):
        return "llama"
    if provider == "cohere" and model.startswith("command"):
        return "cohere-command"
    if provider == "cohere" and model.startswith("embed"):
        return "cohere-embed"
    if provider == "stability" and "stable-diffusion-xl" in model:
        return "sdxl"
    raise UsageError(
        f"model_id={model_id!r}: no request body known for this model family; use the Converse API "
        "(BedrockClient.converse) which every text model accepts"
    )


def text_request(model_id: str, prompt: str, params: TextParams) -> dict:
    if not isinstance(prompt, str) or not prompt:
        raise UsageError("prompt is empty: give the text to complete")
    kind = family(model_id)
    if kind == "titan-text":
        return {
            "inputText": prompt,
            "textGenerationConfig": {
                "maxTokenCount": params.max_tokens,
                "temperature": params.temperature,
                "topP": params.top_p,
                "stopSequences": list(params.stop),
            },
        }
    if kind == "claude":
        body = {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}],
        }
        if params.stop:
            body["stop_sequences"] = list(params.stop)
        return body
    if kind == "llama":
        return {
            "prompt": prompt,
            "max_gen_len": min(params.max_tokens, 2048),
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
    if kind == "cohere-command":
        body = {
            "message": prompt,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "p": params.top_p,
        }
        if params.stop:
            body["stop_sequences"] = list(params.stop)
        return body
    raise UsageError(f"model_id={model_id!r} is a {kind} model, not a text model")


def text_response(model_id: str, body: dict) -> str:
    kind = family(model_id)
    try:
        if kind == "titan-text":
            return "".join(result["outputText"] for result in body["results"])
        if kind == "claude":
            return "".join(part.get("text", "") for part in body["content"] if part.get("type") == "text")
        if kind == "llama":
            return body["generation"]
        if kind == "cohere-command":
            return body["text"]
    except (KeyError, TypeError) as error:
        raise ValueError(f"{model_id} answered a body without {error}: {str(body)[:200]}") from None
    raise UsageError(f"model_id={model_id!r} is a {kind} model, not a text model")


def stream_text(model_id: str, chunk: dict) -> str:
    """The text in one decoded ``InvokeModelWithResponseStream`` chunk ('' for bookkeeping events)."""
    kind = family(model_id)
    if kind == "titan-text":
        return chunk.get("outputText", "")
    if kind == "claude":
        return chunk.get("delta", {}).get("text", "") if chunk.get("type") == "content_block_delta" else ""
    if kind == "llama":
        return chunk.get("generation", "")
    if kind == "cohere-command":
        return chunk.get("text", "") if chunk.get("event_type", "text-generation") == "text-generation" else ""
    raise UsageError(f"model_id={model_id!r} is a {kind} model, not a text model")


def embedding_request(model_id: str, texts: list[str]) -> list[dict]:
    """One body per call: Titan embeds one text per call, Cohere a batch of up to 96."""
    kind = family(model_id)
    if kind == "titan-embed":
        return [{"inputText": text, "normalize": True} for text in texts]
    if kind == "cohere-embed":
        return [{"texts": texts[i : i + 96], "input_type": "search_document"} for i in range(0, len(texts), 96)]
    raise UsageError(f"model_id={model_id!r} is a {kind} model, not an embedding model")


def embedding_response(model_id: str, body: dict) -> list[list[float]]:
    return [body["embedding"]] if family(model_id) == "titan-embed" else body["embeddings"]


def image_request(
    model_id: str,
    prompt: str,
    *,
    steps: int = 30,
    cfg_scale: float = 7.0,
    seed: int = 0,
    width: int = 1024,
    height: int = 1024,
) -> dict:
    if family(model_id) != "sdxl":
        raise UsageError(f"model_id={model_id!r} is not a Stable Diffusion XL model")
    if width % 64 or height % 64:
        raise UsageError(f"{width}x{height} is invalid: SDXL takes multiples of 64")
    return {
        "text_prompts": [{"text": prompt, "weight": 1.0}],
        "cfg_scale": cfg_scale,
        "steps": steps,
        "seed": seed,
        "width": width,
        "height": height,
    }


def image_response(body: dict) -> str:
    """The base64 PNG of the first artifact."""
    artifact = body["artifacts"][0]
    if artifact.get("finishReason") not in (None, "SUCCESS"):
        raise ValueError(f"image generation ended with {artifact['finishReason']}")
    return artifact["base64"]
