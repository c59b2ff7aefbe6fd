"""The hard retrieval set in ``bench/data/rag_hard`` is well formed (no models needed).

Each question is labelled with a ``fact``: an exact, unique, prose-only substring of its source document. A
retrieval hits when a retrieved chunk contains the fact after whitespace normalisation, so the fact must be findable
exactly once in the whole corpus and must not span a paragraph break. Questions are paraphrased away from the
fact: none shares a run of three content words with it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "bench" / "data" / "rag_hard"
CORPUS = ROOT / "corpus"
JSII_CACHE = Path("/root/.cache/aws/jsii/package-cache/aws-cdk-lib/2.275.0")
STOPWORDS = frozenset("the a an of to in for and or is are be by on with it this that as at from can you your".split())
FIELDS = {"id", "source", "question", "fact"}

MIN_DOCUMENTS = 10
MIN_DOCUMENT_BYTES = 25_000
MIN_HEADINGS = 10
MIN_QUESTIONS = 40
MIN_QUESTIONS_PER_DOCUMENT = 4
FACT_LENGTH = (30, 160)
MAX_QUESTION_LENGTH = 200


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def fence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the fenced code blocks (``` ... ```, possibly indented) of a Markdown text."""
    spans: list[tuple[int, int]] = []
    position, start = 0, None
    for line in text.splitlines(keepends=True):
        if line.lstrip().startswith("```"):
            if start is None:
                start = position
            else:
                spans.append((start, position + len(line)))
                start = None
        position += len(line)
    if start is not None:  # an unclosed fence runs to the end
        spans.append((start, len(text)))
    return spans


def headings(text: str) -> list[str]:
    """Markdown ATX headings outside fenced code (a ``# comment`` in a shell snippet is no heading)."""
    found, inside = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            inside = not inside
        elif not inside and re.match(r"#{1,6} \S", line):
            found.append(line)
    return found


def content_trigrams(text: str) -> set[tuple[str, str, str]]:
    tokens = [token for token in re.findall(r"\w+", text.lower()) if token not in STOPWORDS]
    return {tuple(tokens[i : i + 3]) for i in range(len(tokens) - 2)}


def in_fence(text: str, index: int) -> bool:
    return any(start <= index < end for start, end in fence_spans(text))


def has_blank_line(text: str) -> bool:
    return re.search(r"\n[ \t]*\n", text) is not None


DOCUMENTS = {path.name: path.read_text(encoding="utf-8") for path in sorted(CORPUS.glob("*.md"))}
NORMALISED = {name: normalise(text) for name, text in DOCUMENTS.items()}
QUESTIONS = json.loads((ROOT / "questions.json").read_text(encoding="utf-8"))
IDS = [item.get("id", f"#{n}") for n, item in enumerate(QUESTIONS)]


# The helpers themselves: each check below relies on them telling a bad case from a good one.


def test_helpers_detect_what_they_are_meant_to():
    markdown = "# Title\n\nProse here.\n\n  ```ts\n# not a heading\ncode here\n  ```\n\n## Second\n"
    assert headings(markdown) == ["# Title", "## Second"]
    assert in_fence(markdown, markdown.index("code here"))
    assert not in_fence(markdown, markdown.index("Prose here"))
    assert has_blank_line("one paragraph\n  \nanother")
    assert not has_blank_line("one line\ncontinued")
    assert content_trigrams("The bucket is deleted automatically") & content_trigrams("bucket deleted automatically")
    assert not content_trigrams("storage removed by itself") & content_trigrams("bucket deleted automatically")
    assert normalise(" a\n  b\tc ") == "a b c"


# The corpus.


def test_corpus_is_large_enough():
    assert len(DOCUMENTS) >= MIN_DOCUMENTS, f"{len(DOCUMENTS)} documents in {CORPUS}"


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_document_is_long_and_sectioned(name):
    size = (CORPUS / name).stat().st_size
    assert size >= MIN_DOCUMENT_BYTES, f"{name}: {size} bytes"
    count = len(headings(DOCUMENTS[name]))
    assert count >= MIN_HEADINGS, f"{name}: {count} headings"


def _cache_package() -> Path | None:
    matches = sorted(JSII_CACHE.glob("*/package.json"))
    return matches[0].parent if matches else None


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_document_is_a_verbatim_copy(name):
    package = _cache_package()
    if package is None:
        pytest.skip(f"no aws-cdk-lib 2.275.0 in the jsii cache ({JSII_CACHE})")
    original = package / name.removesuffix(".md") / "README.md"
    assert original.is_file(), f"{name}: no {original}"
    assert (CORPUS / name).read_bytes() == original.read_bytes(), f"{name} differs from {original}"


def test_license_is_the_package_license():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0" in text
    package = _cache_package()
    if package is not None:
        assert (ROOT / "LICENSE").read_bytes() == (package / "LICENSE").read_bytes()


# The questions.


def test_enough_questions_with_unique_ids():
    assert isinstance(QUESTIONS, list)
    assert len(QUESTIONS) >= MIN_QUESTIONS, f"{len(QUESTIONS)} questions"
    duplicates = sorted({i for i in IDS if IDS.count(i) > 1})
    assert not duplicates, f"duplicate ids: {duplicates}"


def test_every_document_is_asked_about():
    counts = {name: 0 for name in DOCUMENTS}
    for item in QUESTIONS:
        if item.get("source") in counts:
            counts[item["source"]] += 1
    few = {name: n for name, n in counts.items() if n < MIN_QUESTIONS_PER_DOCUMENT}
    assert not few, f"documents with fewer than {MIN_QUESTIONS_PER_DOCUMENT} questions: {few}"


@pytest.mark.parametrize("item", QUESTIONS, ids=IDS)
def test_item_shape(item):
    assert set(item) == FIELDS, f"fields {sorted(item)}"
    assert all(isinstance(item[field], str) and item[field] for field in FIELDS)
    assert item["source"] in DOCUMENTS, f"no corpus/{item['source']}"


@pytest.mark.parametrize("item", QUESTIONS, ids=IDS)
def test_fact_is_a_unique_prose_substring(item):
    fact, source = item["fact"], item["source"]
    low, high = FACT_LENGTH
    assert low <= len(fact) <= high, f"fact is {len(fact)} characters"
    assert not has_blank_line(fact), "fact spans a paragraph break"
    text = DOCUMENTS[source]
    assert text.count(fact) == 1, f"fact occurs {text.count(fact)} times verbatim in {source}"
    assert not in_fence(text, text.index(fact)), "fact is inside a fenced code block"
    wanted = normalise(fact)
    assert NORMALISED[source].count(wanted) == 1, "fact is not unique in its document (whitespace-normalised)"
    elsewhere = [name for name, body in NORMALISED.items() if name != source and wanted in body]
    assert not elsewhere, f"fact also occurs in {elsewhere}"


@pytest.mark.parametrize("item", QUESTIONS, ids=IDS)
def test_question_is_paraphrased(item):
    question = item["question"]
    shared = content_trigrams(question) & content_trigrams(item["fact"])
    assert not shared, f"question reuses {sorted(' '.join(g) for g in shared)} from the fact"
    assert len(question) < MAX_QUESTION_LENGTH, f"question is {len(question)} characters"
    assert question.endswith("?") and not re.search(r"[.?!]\s", question), "question is not one sentence"
