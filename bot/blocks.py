"""Block Kit payloads for every message the bot posts: pure builders, no Slack client.

Each builder returns plain ``dict``/``list`` data ready for ``chat.postMessage`` or
``chat.update`` and keeps within Slack's limits (3,000 characters per section text,
10 elements per context block, 50 blocks per message), so a long answer is cut here
rather than rejected by Slack with ``invalid_blocks``. Slack also refuses a message
whose blocks hold more than about 12,000 characters in all (``msg_blocks_too_long``,
undocumented), so an answer message keeps under :data:`MAX_MESSAGE_TEXT_CHARS`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from bot.mrkdwn import escape_mrkdwn, mrkdwn_link, split_text, truncate_mrkdwn
from bot.plain_text import markdown_to_plain
from bot.slack_markdown import safe_markdown
from rag_core.errors import InputError
from rag_core.types import Citation

MAX_SECTION_CHARS = 3000
MAX_BLOCKS = 50
MAX_CONTEXT_ELEMENTS = 10
MAX_MARKDOWN_CHARS = 12_000  # one markdown block, and all of a message's together
MAX_MESSAGE_TEXT_CHARS = 12_500  # all block text together, with room under Slack's ~13,000
MIN_TRUNCATED_SECTION_CHARS = 200  # a shorter remainder is dropped rather than shown cut
MAX_FALLBACK_CHARS = 3000  # Slack cuts ``text`` at 40,000; notifications want far less
MAX_FALLBACK_SOURCES_CHARS = 1000
MAX_TITLE_CHARS = 150
MAX_BUTTON_VALUE_CHARS = 2000
MAX_SOURCES = 49  # five context blocks: "Sources:" plus 9, then 10 per block
PROGRESS_BAR_CELLS = 20

ANSWER_FALLBACK = "Answer"
CUT_NOTE = "The answer was cut short to fit in one Slack message."
CONTINUED_NOTE = "The answer continues in the next message."
SOURCES_LABEL = "*Sources:*"
FEEDBACK_BLOCK_ID = "feedback"
FEEDBACK_UP = "feedback_up"
FEEDBACK_DOWN = "feedback_down"
ELLIPSIS = "…"

Block = dict[str, Any]


def mrkdwn_text(text: str) -> dict[str, str]:
    """A ``mrkdwn`` text object (the caller has escaped ``text``)."""
    return {"type": "mrkdwn", "text": text}


def section(text: str, *, expand: bool = False) -> Block:
    """A section block; ``expand`` stops Slack folding long text behind "See more"."""
    block: Block = {"type": "section", "text": mrkdwn_text(text)}
    if expand:
        block["expand"] = True
    return block


def context(*texts: str) -> Block:
    """A context block of mrkdwn elements (at most :data:`MAX_CONTEXT_ELEMENTS`)."""
    if len(texts) > MAX_CONTEXT_ELEMENTS:
        raise InputError(f"A context block holds at most {MAX_CONTEXT_ELEMENTS} elements.")
    return {"type": "context", "elements": [mrkdwn_text(text) for text in texts]}


def answer_blocks(
    answer_text_md: str,
    citations: Sequence[Citation],
    *,
    answer_id: str,
    note: str | None = None,
) -> list[Block]:
    """The answer as one message: a ``markdown`` block, Sources, an optional note, 👍/👎.

    For a message that cannot be followed by others (ephemeral, shared): an answer too
    long for one message is cut at a line, marked "…", and a note says so. Answers in a
    thread use :func:`answer_messages`, which continues them instead.
    """
    first, *rest = _answer_parts(answer_text_md, citations, note)
    if rest:
        first = truncate_mrkdwn(safe_markdown(answer_text_md).strip(), len(first) + 1)
    return _answer_message(first, citations, answer_id, [*_notes(note), *_cut(rest)])


def answer_messages(
    answer_text_md: str,
    citations: Sequence[Citation],
    *,
    answer_id: str,
    note: str | None = None,
) -> list[list[Block]]:
    """The answer as thread messages: the first carries the start of the answer, the
    sources, the note and the 👍/👎 buttons; an answer longer than Slack takes in one
    message (:data:`MAX_MARKDOWN_CHARS` of Markdown, :data:`MAX_MESSAGE_TEXT_CHARS` of
    block text) goes on in more messages of one ``markdown`` block each, split at
    paragraphs or lines (code fences closed and reopened)."""
    first, *rest = _answer_parts(answer_text_md, citations, note)
    more = [CONTINUED_NOTE] if rest else []
    main = _answer_message(first, citations, answer_id, [*_notes(note), *more])
    return [main, *([markdown(part)] for part in rest)]


def _answer_parts(
    answer_text_md: str, citations: Sequence[Citation], note: str | None
) -> list[str]:
    """The answer's Markdown, pings defused, in pieces: the first fits beside the sources,
    note and buttons, every one fits a ``markdown`` block."""
    tail = [*source_blocks(citations), *(context(escape_mrkdwn(n)) for n in _notes(note))]
    room = MAX_MESSAGE_TEXT_CHARS - text_chars(tail) - len(CONTINUED_NOTE) - 200
    limit = max(MIN_TRUNCATED_SECTION_CHARS, min(MAX_MARKDOWN_CHARS, room))
    return split_text(safe_markdown(answer_text_md).strip(), limit) or [""]


def _answer_message(
    body: str, citations: Sequence[Citation], answer_id: str, notes: Sequence[str]
) -> list[Block]:
    if not answer_id or len(answer_id) > MAX_BUTTON_VALUE_CHARS:
        raise InputError(f"An answer id must be 1 to {MAX_BUTTON_VALUE_CHARS} characters long.")
    tail = source_blocks(citations)
    tail += [context(escape_mrkdwn(text)) for text in notes]
    tail.append(feedback_actions(answer_id))
    return [markdown(body), *tail] if body else tail


def _notes(note: str | None) -> list[str]:
    return [note] if note else []


def _cut(rest: Sequence[str]) -> list[str]:
    return [CUT_NOTE] if rest else []


def markdown(text: str) -> Block:
    """A ``markdown`` block: standard Markdown, at most :data:`MAX_MARKDOWN_CHARS`."""
    if not text or len(text) > MAX_MARKDOWN_CHARS:
        raise InputError(f"A markdown block holds 1 to {MAX_MARKDOWN_CHARS:,} characters.")
    return {"type": "markdown", "text": text}


def text_chars(value: object) -> int:
    """Characters in every ``text`` string of a block tree, as Slack counts toward its cap."""
    if isinstance(value, dict):
        own = len(value["text"]) if isinstance(value.get("text"), str) else 0
        return own + sum(text_chars(v) for v in value.values() if isinstance(v, dict | list))
    if isinstance(value, list):
        return sum(text_chars(item) for item in value)
    return 0


def source_label(citation: Citation, *, named: bool = False) -> str:
    """``<url|[n] title>``, or ``[n] title — path`` (escaped) when there is no URL;
    ``named``: the doc set comes first (``[n] milvus: title``)."""
    title = citation.title.strip() or citation.path
    if len(title) > MAX_TITLE_CHARS:
        title = title[: MAX_TITLE_CHARS - 1].rstrip() + ELLIPSIS
    label = (
        f"[{citation.number}] {citation.docset}: {title}"
        if named
        else f"[{citation.number}] {title}"
    )
    if citation.url:
        return mrkdwn_link(citation.url, label)
    if citation.path and citation.path != title:
        label = f"{label} — {citation.path}"
    return escape_mrkdwn(label)


def source_blocks(citations: Sequence[Citation]) -> list[Block]:
    """Context blocks listing the sources, "Sources:" first, 10 elements per block; each
    names its doc set when they come from more than one."""
    if not citations:
        return []
    named = len({c.docset for c in citations}) > 1
    elements = [SOURCES_LABEL, *(source_label(c, named=named) for c in citations[:MAX_SOURCES])]
    step = MAX_CONTEXT_ELEMENTS
    return [context(*elements[i : i + step]) for i in range(0, len(elements), step)]


def feedback_actions(answer_id: str) -> Block:
    """The 👍/👎 buttons; both carry ``answer_id`` as their value."""

    def button(action_id: str, label: str) -> dict[str, Any]:
        return {
            "type": "button",
            "action_id": action_id,
            "text": {"type": "plain_text", "text": label, "emoji": True},
            "value": answer_id,
        }

    return {
        "type": "actions",
        "block_id": FEEDBACK_BLOCK_ID,
        "elements": [button(FEEDBACK_UP, "👍 Helpful"), button(FEEDBACK_DOWN, "👎 Not helpful")],
    }


def answer_fallback_text(answer_text_md: str, citations: Sequence[Citation]) -> str:
    """The message's ``text``: the answer as plain text, then "Sources: [1] title <url>
    …", ≤ 3,000 chars. Slack shows it in notifications and where blocks cannot render."""
    sources = ""
    if citations:
        items = [_fallback_source(c) for c in citations]
        sources = truncate_mrkdwn("Sources: " + " ".join(items), MAX_FALLBACK_SOURCES_CHARS)
    room = MAX_FALLBACK_CHARS - (len(sources) + 2 if sources else 0)
    plain = escape_mrkdwn(markdown_to_plain(safe_markdown(answer_text_md)))
    answer = truncate_mrkdwn(plain, room)
    return "\n\n".join(part for part in (answer, sources) if part) or ANSWER_FALLBACK


def _fallback_source(citation: Citation) -> str:
    title = escape_mrkdwn((citation.title.strip() or citation.path)[:MAX_TITLE_CHARS])
    if citation.url:
        return f"[{citation.number}] {title} {mrkdwn_link(citation.url)}"
    return f"[{citation.number}] {title}"


def error_blocks(message: str) -> list[Block]:
    """A failure shown in the thread; ``message`` is plain text (a ``RagbotError``)."""
    return [section(f":warning: {escape_mrkdwn(_one_line(message))}")]


def feedback_ack_text(vote: str) -> str:
    """The private reply to a 👍/👎 click; ``vote`` is "up"/"down" or the button's action id."""
    normalised = vote.removeprefix("feedback_")
    if normalised == "up":
        return "Thanks for the feedback! Glad it helped."
    if normalised == "down":
        return "Thanks for the feedback! It helps us improve the answers and the docs."
    raise InputError(f"Unknown feedback vote {vote!r}: expected 'up' or 'down'.")


def progress_bar(done: int, total: int, *, cells: int = PROGRESS_BAR_CELLS) -> str:
    """``▓▓▓░░░`` with ``cells`` characters; ``done`` is clamped to ``0..total``."""
    filled = 0 if total <= 0 else round(cells * min(max(done, 0), total) / total)
    return "▓" * filled + "░" * (cells - filled)


def reindex_progress_blocks(
    stage: str,
    done: int,
    total: int,
    *,
    files: int | None = None,
    chunks: int | None = None,
    detail: str = "",
) -> list[Block]:
    """The re-index progress message, updated in place as ``done`` goes up to ``total``;
    ``detail`` (plain text) is what the source brought, such as the git commit."""
    header = f":hourglass_flowing_sand: *Reindexing:* {escape_mrkdwn(_one_line(stage))}"
    if total > 0:
        clamped = min(max(done, 0), total)
        percent = 100 * clamped // total
        line = f"`{progress_bar(clamped, total)}` {percent}% ({clamped:,}/{total:,})"
    else:
        line = f"{max(done, 0):,} done"
    blocks: list[Block] = [section(f"{header}\n{line}")]
    counts = [
        f"{name}: {n:,}" for name, n in (("Files", files), ("Chunks", chunks)) if n is not None
    ]
    if detail:
        counts.insert(0, escape_mrkdwn(_one_line(detail)))
    if counts:
        blocks.append(context(" · ".join(counts)))
    return blocks


_SUMMARY_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "doc_set": "Doc set",
        "files": "Files",
        "skipped": "Skipped",
        "chunks_total": "Chunks",
        "chunks_new": "New chunks",
        "chunks_unchanged": "Unchanged chunks",
        "chunks_deleted": "Deleted chunks",
        "seconds": "Time",
        "version": "Index version",
    }
)
MAX_SECTION_FIELDS = 10


def reindex_summary_blocks(
    summaries: Sequence[Mapping[str, object]], *, failures: Sequence[str] = ()
) -> list[Block]:
    """The finished re-index: one group of fields per doc set built, one field per
    scalar entry of its summary, then the doc sets that failed.

    Known keys (``doc_set``, ``files``, ``skipped``, ``chunks_new``, ``chunks_unchanged``,
    ``chunks_deleted``, ``seconds``, ...) come first with friendly labels; lists and
    other non-scalar values are left out.
    """
    blocks: list[Block] = [section(":white_check_mark: *Reindex finished*")]
    for summary_fields in summaries:
        known = [key for key in _SUMMARY_LABELS if key in summary_fields]
        others = [key for key in summary_fields if key not in _SUMMARY_LABELS]
        fields = [
            mrkdwn_text(f"*{_field_label(key)}*\n{_field_value(key, summary_fields[key])}")
            for key in (*known, *others)
            if isinstance(summary_fields[key], str | int | float)
        ]
        for start in range(0, len(fields), MAX_SECTION_FIELDS):
            blocks.append({"type": "section", "fields": fields[start : start + MAX_SECTION_FIELDS]})
    blocks += [section(f":x: {escape_mrkdwn(_one_line(failure))}") for failure in failures]
    return blocks


def _field_label(key: str) -> str:
    return _SUMMARY_LABELS.get(key) or escape_mrkdwn(key.replace("_", " ").capitalize())


def _field_value(key: str, value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key == "seconds" and isinstance(value, int | float):
        return f"{value:,.1f} s"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return escape_mrkdwn(_one_line(str(value))[:1000])


def reindex_failed_blocks(message: str) -> list[Block]:
    """The re-index failed; ``message`` is the plain-text reason."""
    return [section(f":x: *Reindex failed:* {escape_mrkdwn(_one_line(message))}")]


def _one_line(text: str) -> str:
    return " ".join(text.split())[: MAX_SECTION_CHARS // 2]
