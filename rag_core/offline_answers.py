"""Answers made without a language model: the best passages quoted as they are, and
the reply when the docs don't cover a question. Both carry numbered citations like a
generated answer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rag_core.citations import citation_for
from rag_core.errors import InputError
from rag_core.types import Citation, ScoredChunk

EXTRACTIVE_LABEL = (
    "No language model is configured, so here are the most relevant passages from the docs:"
)

NOT_COVERED_TEXT = "The docs don't seem to cover this."

_SENTENCE_ENDS = (". ", "! ", "? ", ".\n", "。", "！", "？")


@dataclass(frozen=True, slots=True)
class GeneratedAnswer:
    """Answer text whose ``[n]`` markers match ``citations[n-1]`` and ``passages[n-1]``."""

    text: str
    citations: list[Citation]
    passages: list[ScoredChunk]


def extractive_answer(
    question: str,
    passages: Sequence[ScoredChunk],
    *,
    max_passages: int = 3,
    max_chars: int = 700,
) -> GeneratedAnswer:
    """The best passages quoted as they are, for when no language model is configured.

    The first line says so; each of the first ``max_passages`` passages follows as
    a ``[n] title`` line and a Markdown quote cut near ``max_chars`` characters at a
    line or sentence end. With no passages this is :func:`not_covered_answer`.
    """
    if max_passages < 1 or max_chars < 1:
        raise InputError("max_passages and max_chars must both be at least 1.")
    chosen = list(passages[:max_passages])
    if not chosen:
        return not_covered_answer(question, ())
    sections = [EXTRACTIVE_LABEL]
    for number, passage in enumerate(chosen, start=1):
        chunk = passage.chunk
        label = chunk.title or chunk.doc_path
        if chunk.heading and chunk.heading != chunk.title:
            label = f"{label} — {chunk.heading}"
        sections.append(f"**[{number}] {label}**\n{_quote(_excerpt(chunk.text, max_chars))}")
    citations = [citation_for(passage, n) for n, passage in enumerate(chosen, start=1)]
    return GeneratedAnswer(text="\n\n".join(sections), citations=citations, passages=chosen)


def not_covered_answer(question: str, closest: Sequence[ScoredChunk]) -> GeneratedAnswer:
    """Says the docs don't cover ``question``; the ``closest`` passages become its sources."""
    text = NOT_COVERED_TEXT
    if closest:
        text += " The closest matches are listed below."
    citations = [citation_for(passage, n) for n, passage in enumerate(closest, start=1)]
    return GeneratedAnswer(text=text, citations=citations, passages=list(closest))


def _excerpt(text: str, max_chars: int) -> str:
    """``text`` cut at the last line or sentence end before ``max_chars``, marked with ``…``."""
    text = text.strip()
    if len(text) <= max_chars:
        return text
    window = text[: max_chars + 1]
    cut = max(window.rfind("\n"), *(window.rfind(end) + 1 for end in _SENTENCE_ENDS))
    if cut < max_chars // 2:
        cut = window.rfind(" ")
    if cut < max_chars // 2:
        cut = max_chars
    excerpt = text[:cut].rstrip() + " …"
    fences = sum(1 for line in excerpt.splitlines() if line.lstrip().startswith(("```", "~~~")))
    return excerpt + "\n```" if fences % 2 else excerpt


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" if line.strip() else ">" for line in text.splitlines())
