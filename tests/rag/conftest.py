"""Real MiniLM embeddings, loaded once; the shipped corpus indexed once per session."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "rag"
CORPUS = DATA / "corpus"


@pytest.fixture(scope="session")
def embeddings():
    from genai_runtime.rag.embeddings import embeddings_from_spec

    return embeddings_from_spec("local")


@pytest.fixture(scope="session")
def questions() -> list[dict]:
    return json.loads((DATA / "questions.json").read_text())


@pytest.fixture(scope="session")
def corpus_index(embeddings, tmp_path_factory):
    """The shipped corpus in a FAISS index (read-only for tests: copy ``corpus`` to change files)."""
    from genai_runtime.rag.faiss_index import FaissIndex
    from genai_runtime.rag.ingest import ingest_paths

    path = tmp_path_factory.mktemp("index") / "corpus"
    index = FaissIndex.open(path, "local", create=True)
    ingest_paths([CORPUS], index, embeddings)
    return FaissIndex.open(path, "local")


@pytest.fixture
def corpus_copy(tmp_path) -> Path:
    return Path(shutil.copytree(CORPUS, tmp_path / "corpus"))
