"""The defaults against plain langchain on the hard set (bench/data/rag_hard), as bench/rag.py measures.

Deterministic (same model, same corpus): the margins fail if heading-aware passages, windows, the
per-passage ranking or the hybrid fusion break. bench/results/rag.json has the full grid.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.rag import HARD, hard_hit, load_files, metrics, our_index, plain_store
from genai_runtime.rag.search import SearchOptions

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hard(embeddings, tmp_path_factory):
    questions = json.loads((HARD / "questions.json").read_text())
    documents = load_files(HARD / "corpus")
    vectors = embeddings.embed_documents([q["question"] for q in questions])
    return questions, documents, vectors, tmp_path_factory.mktemp("hard")


def test_the_defaults_beat_plain_langchain_by_015_with_bounded_context(hard, embeddings):
    questions, documents, vectors, scratch = hard
    store, _ = plain_store(documents, embeddings, 512, 100)
    plain = metrics(
        questions,
        [[(d.page_content, d.metadata["source"]) for d in store.similarity_search_by_vector(v, k=10)] for v in vectors],
        hard_hit,
    )
    index, _ = our_index(Path(scratch) / "defaults", documents, embeddings)
    ours = metrics(
        questions,
        [
            [(r.text, r.source) for r in index.search(q["question"], v, SearchOptions(k=10))]
            for q, v in zip(questions, vectors, strict=True)
        ],
        hard_hit,
    )
    assert ours["hit@3"] >= plain["hit@3"] + 0.15, (ours, plain)
    assert ours["mrr@10"] > plain["mrr@10"]
    # Not by returning whole chapters: three passages of at most 1200 characters each.
    assert ours["top3_context_chars"] <= 3 * 1200
