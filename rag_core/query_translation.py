"""The prompt that rewrites a question into the docs' language for searching, and the
cleaning of its reply. Pure functions; :meth:`ChatGenerator.translate_query` sends it.

The rewrite is for retrieval only: it keeps code, identifiers, error messages and
product names exactly as written (they are what BM25 matches), and is never shown.
"""

from __future__ import annotations

import re

from rag_core.prompts import Message

TRANSLATE_MAX_TOKENS = 200
"""A question's translation is about as long as the question; this bounds a runaway."""

TRANSLATE_SYSTEM_PROMPT = """\
Translate the user's question into {language} so it can be used to search \
{language} technical documentation. Keep code, identifiers, parameter names, \
error messages, product names and numbers exactly as written. Do not answer the \
question and do not add anything. Reply with the translated question only."""

_LABEL = re.compile(r"^(translation|translated question|question)\s*:\s*", re.IGNORECASE)
_THINKING = re.compile(r"^\s*<think>.*?</think>\s*", re.DOTALL)


def translation_messages(question: str, language: str) -> list[Message]:
    """A system instruction naming ``language`` and the question as the user message."""
    return [
        {"role": "system", "content": TRANSLATE_SYSTEM_PROMPT.format(language=language.strip())},
        {"role": "user", "content": question.strip()},
    ]


def clean_translation(reply: str) -> str:
    """The translation in ``reply``: a leading ``<think>`` block, a label
    (``Translation:``) and surrounding quotes removed, lines joined with spaces."""
    text = _THINKING.sub("", reply).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    text = " ".join(lines)
    text = _LABEL.sub("", text).strip()
    if len(text) >= 2 and text[0] in "\"'“«" and text[-1] in "\"'”»":
        text = text[1:-1].strip()
    return text
