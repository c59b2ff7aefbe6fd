"""Retrieve -> augment -> generate, as an LCEL runnable: the answer with the passages it stands on.

``RagChain.runnable(options)`` is ``{question, sources: IndexRetriever} | prompt | generator``, so it
composes with any langchain runnable (``.batch``, ``.stream``, callbacks, tracing); calling the
chain invokes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.runnables import Runnable, RunnableLambda, RunnableParallel

from genai_contracts.api_requests import MAX_QUESTION_CHARS

from ..errors import UsageError
from .generate import Generator
from .index import VectorIndex
from .prompts import RAG_PROMPT, augment
from .retrievers import SCORE_KEY, IndexRetriever
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

    def check_filter(self, options: SearchOptions) -> None:
        unknown = unknown_filter_keys(options, self.index.metadata_fields())
        if unknown:
            known = ", ".join(sorted(self.index.metadata_fields())) or "none"
            raise UsageError(f"filter on unknown metadata field(s) {', '.join(unknown)}; known fields: {known}")

    def retriever(self, options: SearchOptions | None = None) -> IndexRetriever:
        """The index behind langchain's ``BaseRetriever`` (the filter checked against the index's fields)."""
        options = options or SearchOptions()
        self.check_filter(options)
        return IndexRetriever(index=self.index, embeddings=self.embeddings, options=options)

    def runnable(self, options: SearchOptions | None = None, generate: bool = True) -> Runnable:
        """question -> ``RagAnswer``; without a generator (or with ``generate=False``) retrieval only."""
        retrieve = self.retriever(options) | RunnableLambda(_retrieved)
        gathered = RunnableLambda(validate_question) | RunnableParallel(
            question=RunnableLambda(lambda question: question), sources=retrieve
        )
        if self.generator is None or not generate:
            return gathered | RunnableLambda(lambda x: RagAnswer(x["question"], x["sources"]))
        generator = self.generator

        def answer(x: dict) -> RagAnswer:
            prompt = augment(x["question"], x["sources"], self.prompt)
            return RagAnswer(x["question"], x["sources"], generator(prompt).strip(), prompt)

        return gathered | RunnableLambda(answer)

    def retrieve(self, question: str, options: SearchOptions | None = None) -> list[Retrieved]:
        return self(question, options, generate=False).sources

    def __call__(self, question: str, options: SearchOptions | None = None, generate: bool = True) -> RagAnswer:
        """Retrieve, and unless ``generate`` is False or there is no generator, answer from the sources."""
        question = validate_question(question)
        return self.runnable(options, generate).invoke(question)


def _retrieved(documents: list[Document]) -> list[Retrieved]:
    return [
        Retrieved(
            str(doc.id),
            doc.page_content,
            float(doc.metadata.get(SCORE_KEY, 0.0)),
            {k: v for k, v in doc.metadata.items() if k != SCORE_KEY},
        )
        for doc in documents
    ]
