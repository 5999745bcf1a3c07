"""Slack mrkdwn where it is still needed: escaping, links and cutting text to a limit.

Answers are standard Markdown in ``markdown`` blocks (see :mod:`bot.slack_markdown`);
mrkdwn remains for context blocks (sources, notes), section blocks of status messages
and the ``text`` fallback. Slack gives ``&``, ``<`` and ``>`` a meaning of their own
(mentions, ``<!channel>``, links), so every one of them in text from elsewhere is
escaped: nobody can ping a channel or forge a link through a title or an answer.

:func:`truncate_mrkdwn` fits text into Block Kit's per-text limits without breaking
links, entities or code fences. Pure functions.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from rag_core.errors import InputError

CODE_FENCE = "```"
LINK_LABEL_BAR = "∣"  # stands in for "|", which would end a link's URL part early
MIN_SPLIT_LIMIT = 16
_CLOSE_FENCE = "\n" + CODE_FENCE
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
