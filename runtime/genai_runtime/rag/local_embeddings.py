"""Local sentence-transformers embeddings with two runtimes: ONNX Runtime for queries, torch for bulk.

A query is one sentence: importing torch and sentence-transformers to embed it costs seconds, while
ONNX Runtime plus a Rust tokenizer start in about 0.2 s. Ingestion is thousands of chunks: there
sentence-transformers is faster, and on CPUs with AVX512-BF16 or AMX it runs under bfloat16
autocast (2.4x on this project's CI-class Xeon, cosine distance to float32 below 1e-4; see
``bench/results/rag.json``).

Both runtimes compute the same function as ``SentenceTransformer(path).encode(normalize_embeddings
=True)``: the model's tokenizer truncated at ``max_seq_length`` (``sentence_bert_config.json``), the
pooling of ``1_Pooling/config.json`` (mean or CLS), L2 normalisation. The ONNX graph is exported
once from the model's own weights into a cache folder (``GENAI_CACHE_DIR``, default
``~/.cache/genai-cdk``) and reused by every later process.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from functools import cached_property
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings

from ..errors import UsageError

# Calls with at most this many texts use ONNX Runtime (queries, a small re-ingest); more use torch.
ONNX_MAX_TEXTS = 32
BATCH_SIZE = 64
ONNX_OPSET = 17
EXPORT_FORMAT = 1  # bump when the exported graph changes, so caches re-export


def cache_dir() -> Path:
    return Path(os.environ.get("GENAI_CACHE_DIR") or Path.home() / ".cache" / "genai-cdk")


def _read_json(path: Path, default: dict) -> dict:
    return json.loads(path.read_text()) if path.is_file() else default


class ModelFolder:
    """What a sentence-transformers folder says about how to embed with it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        modules = _read_json(path / "modules.json", {})
        kinds: list[str] = [m.get("type", "") for m in modules] if isinstance(modules, list) else []
        pooling_dir = next(
            (path / m["path"] for m in modules if isinstance(modules, list) and m.get("type", "").endswith("Pooling")),
            path / "1_Pooling",
        )
        pooling = _read_json(pooling_dir / "config.json", {"pooling_mode_mean_tokens": True})
        self.pooling = "cls" if pooling.get("pooling_mode_cls_token") else "mean"
        # ONNX reproduces Transformer -> Pooling(mean|cls) -> Normalize; any other module list runs on torch only.
        self.onnx_capable = (
            (path / "tokenizer.json").is_file()
            and all(k.endswith(("Transformer", "Pooling", "Normalize")) for k in kinds)
            and sum(
                bool(pooling.get(f"pooling_mode_{mode}"))
                for mode in ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens")
            )
            == 1
            and not pooling.get("pooling_mode_max_tokens")
            and not pooling.get("pooling_mode_mean_sqrt_len_tokens")
        )
        self.max_seq_length = int(_read_json(path / "sentence_bert_config.json", {}).get("max_seq_length", 256))

    def fingerprint(self) -> str:
        """Changes when the weights or the embedding recipe change."""
        digest = hashlib.sha256(f"{EXPORT_FORMAT}:{self.pooling}:{self.max_seq_length}".encode())
        for name in ("config.json", "tokenizer.json"):
            file = self.path / name
            if file.is_file():
                digest.update(file.read_bytes())
        for weights in sorted(self.path.glob("*.safetensors")) + sorted(self.path.glob("*.bin")):
            stat = weights.stat()
            digest.update(f"{weights.name}:{stat.st_size}:{int(stat.st_mtime)}".encode())
        return digest.hexdigest()[:16]

    def onnx_path(self) -> Path:
        return cache_dir() / "onnx" / f"{self.path.name}-{self.fingerprint()}" / "model.onnx"


def bf16_autocast_helps() -> bool:
    """bfloat16 matmuls beat float32 only where the CPU has native bf16 (AVX512-BF16 or AMX)."""
    import torch

    cpu = torch.cpu
    return bool(getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()) or bool(
        getattr(cpu, "_is_amx_tile_supported", lambda: False)()
    )


def export_onnx(model: ModelFolder, target: Path) -> Path:
    """The folder's Transformer module as an ONNX graph (last hidden state), written atomically."""
    import torch
    import transformers

    # Eager attention exports as plain MatMul/Softmax, which every ONNX Runtime build runs.
    network = transformers.AutoModel.from_pretrained(str(model.path), attn_implementation="eager").eval()

    class LastHiddenState(torch.nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    example = torch.ones(2, 8, dtype=torch.long)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(dir=target.parent, suffix=".onnx.tmp")
    os.close(handle)
    try:
        with torch.no_grad():
            torch.onnx.export(
                LastHiddenState(network),
                (example, torch.ones_like(example), torch.zeros_like(example)),
                scratch,
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes={n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]},
                opset_version=ONNX_OPSET,
                dynamo=False,  # the TorchScript exporter takes a plain BERT without onnxscript
            )
        os.chmod(scratch, 0o644)
        os.replace(scratch, target)  # another process exporting the same model writes the same bytes
    finally:
        if os.path.exists(scratch):
            os.unlink(scratch)
    return target


class OnnxEncoder:
    """Tokenize (Rust), run the exported graph (ONNX Runtime), pool, normalise: no torch import."""

    def __init__(self, model: ModelFolder, graph: Path) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        self.model = model
        self.tokenizer = Tokenizer.from_file(str(model.path / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=model.max_seq_length)
        self.tokenizer.enable_padding(pad_id=self.tokenizer.token_to_id("[PAD]") or 0)
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}

    def encode(self, texts: list[str]) -> list[list[float]]:
        import numpy as np

        vectors: list[list[float]] = []
        for start in range(0, len(texts), BATCH_SIZE):
            encoded = self.tokenizer.encode_batch(texts[start : start + BATCH_SIZE])
            ids = np.array([e.ids for e in encoded], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = self.session.run(None, {k: v for k, v in feeds.items() if k in self.inputs})[0]
            if self.model.pooling == "cls":
                pooled = hidden[:, 0]
            else:
                weights = mask[..., None].astype(hidden.dtype)
                pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            pooled = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            vectors.extend(pooled.astype(np.float32).tolist())
        return vectors


class LocalEmbeddings(Embeddings):
    """A sentence-transformers folder: ONNX Runtime for up to ``ONNX_MAX_TEXTS`` texts, torch for more."""

    def __init__(self, model_path: str | Path, *, runtime: str = "auto") -> None:
        path = Path(model_path)
        if not path.is_dir():
            raise UsageError(f"embeddings=local:{model_path} is invalid: no such model folder")
        if runtime not in ("auto", "onnx", "torch"):
            raise UsageError(f"runtime={runtime!r} is invalid: use auto, onnx or torch")
        self.model = ModelFolder(path)
        self.runtime = runtime
        os.environ.setdefault("HF_HUB_OFFLINE", "1")

    def _onnx_available(self) -> bool:
        if self.runtime == "torch" or not self.model.onnx_capable:
            return False
        try:
            import onnxruntime  # noqa: F401
            import tokenizers  # noqa: F401
        except ImportError:
            return self._refuse_onnx("onnxruntime and tokenizers are not installed")
        return True

    def _refuse_onnx(self, why: str) -> bool:
        if self.runtime == "onnx":
            raise UsageError(f"runtime=onnx is unavailable: {why}")
        return False

    @cached_property
    def _onnx(self) -> OnnxEncoder:
        graph = self.model.onnx_path()
        if not graph.is_file():
            print(f"exporting {self.model.path.name} to ONNX once, into {graph.parent}", file=sys.stderr)
            export_onnx(self.model, graph)
        return OnnxEncoder(self.model, graph)

    @cached_property
    def _torch(self) -> Any:
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(self.model.path), device="cpu")

    def prepare_fast_queries(self) -> None:
        """Export the ONNX graph now (ingestion calls this while torch is loaded anyway)."""
        if self._onnx_available() and not self.model.onnx_path().is_file():
            export_onnx(self.model, self.model.onnx_path())

    def _encode_torch(self, texts: list[str]) -> list[list[float]]:
        import contextlib

        import torch

        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16_autocast_helps() else contextlib.nullcontext()
        with autocast, torch.inference_mode():
            vectors = self._torch.encode(
                texts, batch_size=BATCH_SIZE, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
        return vectors.astype("float32").tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        if self.runtime == "onnx" or (len(texts) <= ONNX_MAX_TEXTS and self._onnx_available()):
            if self.runtime == "onnx" and not self._onnx_available():
                self._refuse_onnx("this model folder is not a Transformer + mean/CLS pooling model with tokenizer.json")
            return self._onnx.encode(texts)
        return self._encode_torch(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]
