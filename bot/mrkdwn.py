"""Slack mrkdwn where it is still needed: escaping, links and cutting text to a limit.

Answers are standard Markdown in ``markdown`` blocks (see :mod:`bot.slack_markdown`);
mrkdwn remains for context blocks (sources, notes), section blocks of status messages
and the ``text`` fallback. Slack gives ``&``, ``<`` and ``>`` a meaning of their own
(mentions, ``<!channel>``, links), so every one of them in text from elsewhere is
escaped: nobody can ping a channel or forge a link through a title or an answer.

:func:`split_text` and :func:`truncate_mrkdwn` fit text (mrkdwn or Markdown) into
Slack's limits without breaking links, entities or code fences. Pure functions.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

from rag_core.errors import InputError

CODE_FENCE = "```"
LINK_LABEL_BAR = "∣"  # stands in for "|", which would end a link's URL part early
MIN_SPLIT_LIMIT = 16
_CLOSE_FENCE = "\n" + CODE_FENCE
_REOPEN_FENCE = CODE_FENCE + "\n"
_ATOMIC = re.compile(r"<[^<>\n]*>|&(?:amp|lt|gt);")


def escape_mrkdwn(text: str) -> str:
    """Escape the three characters Slack treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mrkdwn_link(url: str, label: str = "") -> str:
    """A Slack link ``<url|label>``; ``label`` is plain text and is escaped here.

    ``|`` and angle brackets in the URL are percent-encoded; a ``|`` in the label is shown
    as a look-alike bar, since Slack would end the URL part at it.
    """
    safe_url = (
        escape_mrkdwn(url.strip())
        .replace("|", "%7C")
        .replace(" ", "%20")
        .replace("&lt;", "%3C")
        .replace("&gt;", "%3E")
    )
    text = escape_mrkdwn(label).replace("|", LINK_LABEL_BAR).strip()
    return f"<{safe_url}|{text}>" if text else f"<{safe_url}>"


def split_text(text: str, limit: int) -> list[str]:
    """Cut mrkdwn or Markdown into pieces of at most ``limit`` characters, for Slack's
    per-block and per-message limits.

    Cuts fall at a paragraph break, else a line break, else a space, and never inside a
    ``<link>`` or an ``&amp;`` entity; a code block is only cut when it cannot fit in one
    piece, and then its fence is closed and reopened across the pieces. Whitespace at the
    cuts is dropped; an empty text gives no pieces.
    """
    if limit < MIN_SPLIT_LIMIT:
        raise InputError(f"The split limit must be at least {MIN_SPLIT_LIMIT} characters.")
    pieces: list[str] = []
    rest = text.strip("\n").rstrip()
    while len(rest) > limit:
        piece, rest = _cut(rest, limit)
        if piece.strip():
            pieces.append(piece)
    if rest.strip():
        pieces.append(rest)
    return pieces


def truncate_mrkdwn(text: str, limit: int, *, ellipsis: str = "…") -> str:
    """``text`` if it fits in ``limit`` characters, else its start (cut at a space) + ``ellipsis``.

    Links and entities are never cut in half; an open code block is closed.
    """
    if limit < MIN_SPLIT_LIMIT:
        raise InputError(f"The truncation limit must be at least {MIN_SPLIT_LIMIT} characters.")
    if len(text) <= limit:
        return text
    budget = limit - len(ellipsis) - len(_CLOSE_FENCE)
    atomic = _atomic_spans(text)
    spaces = [i for i in range(budget, budget // 2, -1) if text[i].isspace()]
    cut = next((i for i in spaces if _is_safe(i, atomic)), _safe_hard_cut(budget, atomic))
    piece = text[:cut].rstrip()
    if any(region.holds(cut) for region in _code_regions(text)):
        return f"{piece}{ellipsis}{_CLOSE_FENCE}"
    return f"{piece}{ellipsis}"


class _CodeRegion(NamedTuple):
    """Character offsets of one code block in a mrkdwn text."""

    start: int  # the opening fence line
    content: int  # the first content line
    close: int  # the closing fence line (the text's end when unclosed)
    end: int  # just after the closing fence

    def holds(self, cut: int) -> bool:
        """Whether cutting the text at ``cut`` would split this block."""
        return self.start < cut < self.end

    def ends_content_line(self, i: int) -> bool:
        """Whether the newline at ``i`` ends a content line and more content follows."""
        return self.content < i < self.close - 1


def _code_regions(text: str) -> list[_CodeRegion]:
    regions: list[_CodeRegion] = []
    opened: tuple[int, int] | None = None
    position = 0
    for line in text.split("\n"):
        end = position + len(line)
        stripped = line.strip()
        if stripped.startswith(CODE_FENCE) and stripped.count(CODE_FENCE) % 2 == 1:
            if opened is None:
                opened = (position, end + 1)
            else:
                regions.append(_CodeRegion(*opened, position, end))
                opened = None
        position = end + 1
    if opened is not None:
        regions.append(_CodeRegion(*opened, len(text), len(text)))
    return regions


def _atomic_spans(text: str) -> list[tuple[int, int]]:
    return [match.span() for match in _ATOMIC.finditer(text)]


def _is_safe(cut: int, atomic: list[tuple[int, int]]) -> bool:
    return not any(start < cut < end for start, end in atomic)


def _safe_hard_cut(limit: int, atomic: list[tuple[int, int]]) -> int:
    """The last position at or before ``limit`` outside any link or entity (else ``limit``)."""
    return next((i for i in range(limit, 0, -1) if _is_safe(i, atomic)), limit)


def _cut(text: str, limit: int) -> tuple[str, str]:
    """Split ``text`` (longer than ``limit``) once: the first piece and the rest."""
    regions = _code_regions(text)
    atomic = _atomic_spans(text)

    def in_code(i: int) -> bool:
        return any(region.holds(i) for region in regions)

    def last(predicate: Callable[[int], bool], end: int) -> int | None:
        return next((i for i in range(min(end, len(text) - 1), 0, -1) if predicate(i)), None)

    paragraph = last(lambda i: text.startswith("\n\n", i) and not in_code(i), limit)
    line = paragraph or last(lambda i: text[i] == "\n" and not in_code(i), limit)
    if line:
        return text[:line].rstrip(), text[line:].lstrip("\n")
    code_budget = limit - len(_CLOSE_FENCE)
    code_line = last(
        lambda i: text[i] == "\n" and any(r.ends_content_line(i) for r in regions), code_budget
    )
    if code_line:
        return text[:code_line] + _CLOSE_FENCE, _REOPEN_FENCE + text[code_line + 1 :]
    space = last(lambda i: text[i] == " " and not in_code(i) and _is_safe(i, atomic), limit)
    if space:
        return text[:space].rstrip(), text[space + 1 :]
    cut = _safe_hard_cut(limit, atomic)
    if in_code(cut):
        cut = _safe_hard_cut(code_budget, atomic)
        return text[:cut] + _CLOSE_FENCE, _REOPEN_FENCE + text[cut:]
    return text[:cut], text[cut:]
