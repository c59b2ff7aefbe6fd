"""Retrieve -> augment -> generate: the answer together with the chunks it stands on."""

from __future__ import annotations

from dataclasses import dataclass

from langchain_core.embeddings import Embeddings

from genai_contracts.api_requests import MAX_QUESTION_CHARS

from ..errors import UsageError
from .generate import Generator
from .index import VectorIndex
from .prompts import RAG_PROMPT, augment
from .search import Retrieved, SearchOptions, unknown_filter_keys


@dataclass(frozen=True)
class RagAnswer:
    question: str
    sources: list[Retrieved]
    answer: str | None = None
    prompt: str | None = None

    def to_json(self) -> dict:
        return {"question": self.question, "answer": self.answer, "sources": [s.to_json() for s in self.sources]}


def validate_question(question: object) -> str:
    if not isinstance(question, str) or not question.strip():
        raise UsageError("question is empty: ask a question in plain text")
    if len(question) > MAX_QUESTION_CHARS:
        raise UsageError(f"question has {len(question)} characters; the limit is {MAX_QUESTION_CHARS}")
    return question.strip()


class RagChain:
    def __init__(
        self, index: VectorIndex, embeddings: Embeddings, generator: Generator | None = None, prompt=RAG_PROMPT
    ) -> None:
        self.index = index
        self.embeddings = embeddings
        self.generator = generator
        self.prompt = prompt

    def retrieve(self, question: str, options: SearchOptions | None = None) -> list[Retrieved]:
        options = options or SearchOptions()
        question = validate_question(question)
        unknown = unknown_filter_keys(options, self.index.metadata_fields())
        if unknown:
            known = ", ".join(sorted(self.index.metadata_fields())) or "none"
            raise UsageError(f"filter on unknown metadata field(s) {', '.join(unknown)}; known fields: {known}")
        return self.index.search(question, self.embeddings.embed_query(question), options)

    def __call__(self, question: str, options: SearchOptions | None = None, generate: bool = True) -> RagAnswer:
        """Retrieve, and unless ``generate`` is False or there is no generator, answer from the sources."""
        question = validate_question(question)
        sources = self.retrieve(question, options)
        if self.generator is None or not generate:
            return RagAnswer(question, sources)
        prompt = augment(question, sources, self.prompt)
        return RagAnswer(question, sources, self.generator(prompt).strip(), prompt)
