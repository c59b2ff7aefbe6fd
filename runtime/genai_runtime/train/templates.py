"""Prompt templates for instruction fine-tuning: the FLAN "samsum" pack the book uses.

Several phrasings of the same instruction help the model generalise (the book, chapter 5).
Each template is (prompt, completion) with ``{field}`` placeholders filled from a data row.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from ..errors import UsageError


@dataclass(frozen=True)
class PromptTemplate:
    prompt: str
    completion: str

    @property
    def fields(self) -> set[str]:
        names = set()
        for text in (self.prompt, self.completion):
            names |= {name for _, name, _, _ in string.Formatter().parse(text) if name}
        return names

    def render(self, row: dict) -> dict[str, str]:
        missing = sorted(self.fields - set(row))
        if missing:
            raise UsageError(f"template needs columns {missing}; the row has {sorted(row)}")
        values = {name: str(row[name]) for name in self.fields}
        return {"prompt": self.prompt.format(**values), "completion": " " + self.completion.format(**values)}


SAMSUM = (
    PromptTemplate("{dialogue}\n\nBriefly summarize that dialogue.", "{summary}"),
    PromptTemplate("Here is a dialogue:\n{dialogue}\n\nWrite a short summary!", "{summary}"),
    PromptTemplate("Dialogue:\n{dialogue}\n\nWhat is a summary of this dialogue?", "{summary}"),
    PromptTemplate("{dialogue}\n\nWhat was that dialogue about, in two sentences or less?", "{summary}"),
    PromptTemplate("Here is a dialogue:\n{dialogue}\n\nWhat were they talking about?", "{summary}"),
    PromptTemplate("Dialogue:\n{dialogue}\nWhat were the main points in that conversation?", "{summary}"),
    PromptTemplate("Dialogue:\n{dialogue}\nWhat was going on in that conversation?", "{summary}"),
)
SUMMARIZE = (PromptTemplate("Summarize the following conversation.\n\n{dialogue}\n\nSummary:", "{summary}"),)

PACKS: dict[str, tuple[PromptTemplate, ...]] = {"samsum": SAMSUM, "summarize": SUMMARIZE}


def template_pack(name: str) -> tuple[PromptTemplate, ...]:
    if name not in PACKS:
        raise UsageError(f"data.template={name!r}: choose one of {', '.join(PACKS)}")
    return PACKS[name]
