"""Retrieval quality on the labelled corpus with real MiniLM embeddings: recall, MMR, filters."""

from __future__ import annotations

from pathlib import Path

import pytest

from genai_runtime.rag.search import SearchOptions, reciprocal_rank_fusion


def hit_rate(index, embeddings, questions, **options) -> float:
    hits = 0
    for item in questions:
        found = index.search(item["question"], embeddings.embed_query(item["question"]), SearchOptions(**options))
        hits += any(Path(chunk.source).name == item["source"] for chunk in found)
    return hits / len(questions)


@pytest.mark.parametrize("search_type", ["similarity", "mmr", "hybrid"])
def test_recall_at_3_on_the_labelled_questions(corpus_index, embeddings, questions, search_type):
    assert len(questions) >= 20
    assert hit_rate(corpus_index, embeddings, questions, k=3, search_type=search_type) >= 0.95


def test_hybrid_is_the_default_and_at_least_as_good_as_vectors_alone(corpus_index, embeddings, questions):
    assert SearchOptions().search_type == "hybrid"
    hybrid = hit_rate(corpus_index, embeddings, questions, k=1)
    vectors = hit_rate(corpus_index, embeddings, questions, k=1, search_type="similarity")
    assert hybrid >= vectors


def test_similarity_scores_are_cosines_best_first(corpus_index, embeddings):
    question = "How many NeuronCores does a trn1.32xlarge have?"
    found = corpus_index.search(
        question, embeddings.embed_query(question), SearchOptions(k=5, search_type="similarity")
    )
    scores = [chunk.score for chunk in found]
    assert scores == sorted(scores, reverse=True)
    assert 0.3 < scores[0] <= 1.0 + 1e-6
    assert Path(found[0].source).name == "trainium.txt"


def test_metadata_filter_keeps_only_matching_chunks(corpus_index, embeddings):
    question = "What data type stores the frozen weights when fine-tuning in four bits?"  # qlora.md, 2023
    vector = embeddings.embed_query(question)
    for search_type in ("similarity", "mmr", "hybrid"):
        found = corpus_index.search(
            question, vector, SearchOptions(k=3, search_type=search_type, filter={"year": 2021})
        )
        assert len(found) == 3
        assert {chunk.metadata["year"] for chunk in found} == {2021}
    found = corpus_index.search(
        question, vector, SearchOptions(k=2, search_type="similarity", filter={"year": 2021, "topic": "fine-tuning"})
    )
    # lora.md is one passage (its windows are several chunks): a search returns each passage once.
    assert [Path(chunk.source).name for chunk in found] == ["lora.md"]


def test_mmr_returns_more_diverse_chunks_than_similarity(embeddings, tmp_path):
    from genai_runtime.rag.faiss_index import FaissIndex
    from genai_runtime.rag.ingest import ingest_paths

    docs = tmp_path / "docs"
    docs.mkdir()
    spot = "Managed spot training runs SageMaker training jobs on spare capacity at up to 90% lower cost"
    for n, tail in enumerate(["", " for training jobs.", ", saving money on training."]):
        (docs / f"spot-{n}.txt").write_text(spot + tail)  # near-duplicates
    (docs / "checkpoints.txt").write_text(
        "Spot capacity can be reclaimed, so training jobs write checkpoints to S3 "
        "and resume from the last one when capacity returns."
    )
    (docs / "max-wait.txt").write_text(
        "The max wait time bounds how long a spot training job may wait for spare "
        "capacity, and must be at least the maximum run time."
    )
    index = FaissIndex.open(tmp_path / "index", "local", create=True)
    ingest_paths([docs], index, embeddings)
    question = "How does managed spot training lower the cost of training jobs?"
    vector = embeddings.embed_query(question)

    def distinct_texts(search_type: str) -> int:
        found = index.search(question, vector, SearchOptions(k=3, search_type=search_type, lambda_mult=0.1))
        return len({Path(chunk.source).stem.split("-")[0] for chunk in found})

    assert distinct_texts("similarity") == 1  # three copies of the same sentence
    assert distinct_texts("mmr") >= 2


def test_reciprocal_rank_fusion_rewards_agreement():
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "d"]])
    assert fused[0][0] == "b"
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)
    assert [item for item, _ in fused] == ["b", "a", "d", "c"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"k": 0}, "greater than or equal to 1"),
        ({"k": 10, "fetch_k": 5}, "fetch_k (5) must be at least k (10)"),
        ({"search_type": "fuzzy"}, "'similarity', 'mmr' or 'hybrid'"),
        ({"lambda_mult": 1.5}, "less than or equal to 1"),
        ({"filter": {"year": [2022]}}, "filter.year"),
        ({"filter": {"bad key": 1}}, "String should match pattern"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_search_options_are_refused_naming_the_field(options, message):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SearchOptions(**options)
