"""The RAG prompt: retrieved chunks as numbered context, then the question (the book's template)."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.prompts import PromptTemplate

from .search import Retrieved

RAG_TEMPLATE = """Use the following pieces of context to provide a concise answer to the question at the end. \
If you don't know the answer, just say that you don't know, don't try to make up an answer.

{context}

Question: {question}
Helpful Answer:"""

RAG_PROMPT = PromptTemplate.from_template(RAG_TEMPLATE)


def format_context(chunks: Sequence[Retrieved]) -> str:
    return "\n\n".join(f"[{n}] {chunk.text}" for n, chunk in enumerate(chunks, start=1))


def augment(question: str, chunks: Sequence[Retrieved], prompt: PromptTemplate = RAG_PROMPT) -> str:
    return prompt.format(context=format_context(chunks), question=question)
