"""The chat messages sent to the language model: answer prompt and follow-up rewriting.

Pure functions that build OpenAI-style ``{"role": ..., "content": ...}`` lists.
Conversation history is trimmed to the most recent turns that fit a character
budget, so a long Slack thread cannot push the passages out of the context.
"""

from __future__ import annotations

from collections.abc import Sequence

from rag_core.errors import InputError
from rag_core.types import ScoredChunk, Turn

MAX_HISTORY_TURNS = 8
"""Most recent conversation turns kept in a prompt."""

MAX_HISTORY_CHARS = 6000
"""Characters of conversation kept in a prompt (about 1,500 tokens)."""

ANSWER_SYSTEM_PROMPT = """\
You answer questions about a team's documentation, using only the numbered passages \
in the user's message.
- Cite every claim with the number of the passage that supports it, in square \
brackets: [1], or [2][3] for several. Cite only passages that support the claim.
- Answer in the language the question is written in.
- If the passages do not contain the answer, say that the documentation does not \
seem to cover it; do not guess or use outside knowledge.
- Be concise: a few sentences or a short list. Markdown is allowed.
- Do not talk about "the passages"; just answer and cite them."""

CONDENSE_SYSTEM_PROMPT = """\
Rewrite the user's follow-up question as one standalone question that can be \
understood without the conversation: replace pronouns and references with what \
they refer to. Keep the language of the follow-up question. Do not answer it. \
Reply with the rewritten question only."""

_ROLES = frozenset({"user", "assistant"})

Message = dict[str, str]


def format_passage(number: int, passage: ScoredChunk) -> str:
    """``[n] Title — heading path (doc path)`` followed by the passage text."""
    chunk = passage.chunk
    label = chunk.title or chunk.doc_path
    if chunk.heading and chunk.heading != chunk.title:
        label = f"{label} — {chunk.heading}"
    return f"[{number}] {label} ({chunk.doc_path})\n{chunk.text.strip()}"


def answer_messages(
    question: str, passages: Sequence[ScoredChunk], history: Sequence[Turn] = ()
) -> list[Message]:
    """System prompt, the trimmed conversation, then the numbered passages and the question."""
    if passages:
        numbered = "\n\n".join(format_passage(n, p) for n, p in enumerate(passages, start=1))
    else:
        numbered = "(no passages were found)"
    user = f"Passages:\n\n{numbered}\n\nQuestion: {question.strip()}"
    return [
        {"role": "system", "content": ANSWER_SYSTEM_PROMPT},
        *history_messages(history),
        {"role": "user", "content": user},
    ]


def condense_messages(question: str, history: Sequence[Turn]) -> list[Message]:
    """A single-turn prompt that carries the conversation as a transcript.

    A transcript, rather than prior chat messages, keeps small models from
    answering the question instead of rewriting it.
    """
    names = {"user": "User", "assistant": "Assistant"}
    transcript = "\n".join(
        f"{names[message['role']]}: {message['content']}" for message in history_messages(history)
    )
    user = (
        f"Conversation:\n{transcript}\n\n"
        f"Follow-up question: {question.strip()}\n\n"
        "Standalone question:"
    )
    return [
        {"role": "system", "content": CONDENSE_SYSTEM_PROMPT},
        {"role": "user", "content": user},
    ]


def history_messages(
    history: Sequence[Turn],
    *,
    max_turns: int = MAX_HISTORY_TURNS,
    max_chars: int = MAX_HISTORY_CHARS,
) -> list[Message]:
    """The most recent turns that fit ``max_turns`` and ``max_chars``, oldest first.

    Empty turns are skipped. The newest turn is always kept, cut to ``max_chars``
    if it alone is longer. Raises :class:`InputError` for a role other than
    ``user`` or ``assistant``.
    """
    for turn in history:
        if turn.role not in _ROLES:
            raise InputError(f"Unknown conversation role {turn.role!r}; use 'user' or 'assistant'.")
    kept: list[Message] = []
    used = 0
    for turn in reversed(history):
        text = turn.text.strip()
        if not text:
            continue
        if len(kept) >= max_turns or (kept and used + len(text) > max_chars):
            break
        text = text[:max_chars]
        kept.append({"role": turn.role, "content": text})
        used += len(text)
    kept.reverse()
    return kept
