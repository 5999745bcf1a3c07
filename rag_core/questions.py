"""Checks on a question before any work is spent on it (light: no models, no Milvus)."""

from __future__ import annotations

from rag_core.errors import InputError


def validate_question(question: str, *, max_chars: int) -> str:
    """Return the question stripped, or raise :class:`InputError` with a reason to show."""
    text = (question or "").strip()
    if not text:
        raise InputError("The question is empty: ask something about the docs.")
    if len(text) > max_chars:
        raise InputError(
            f"The question is {len(text):,} characters long; please keep it under "
            f"{max_chars:,} characters (ask about one thing at a time)."
        )
    return text
