"""Numbered citation markers in a model's answer, turned into a compact Sources list.

The model is shown passages numbered ``[1]..[n]`` and cites them as ``[2]``,
``[1, 3]`` or ``[1][3]``. :func:`extract_citations` keeps the markers that name
a real passage, renumbers them ``1..k`` in order of first appearance and rewrites
the text to match, so the Sources list under the answer has no gaps. Code
(fenced blocks, inline spans) and Markdown links are left exactly as written.
Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rag_core.types import Citation, ScoredChunk

_FENCE_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})", re.MULTILINE)
_INLINE_CODE = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)
_LINKS = re.compile(
    r"!?\[[^\[\]\n]*\]\([^()\s]*(?:\([^()\s]*\)[^()\s]*)*(?:\s+\"[^\"]*\")?\)"  # [text](url)
    r"|<[a-zA-Z][a-zA-Z0-9+.-]*:[^<>\s]*>"  # <https://...> autolinks
    r"|<[a-zA-Z][a-zA-Z0-9+.-]*:[^<>|\s]*\|[^<>]*>"  # Slack-style <url|label>
)
_MARKER = re.compile(
    r"(?P<lead>[ \t]*)"
    r"\[\s*(?:(?:passages?|sources?)\s*)?"
    r"(?P<nums>\d{1,3}(?:\s*,\s*\d{1,3})*)"
    r"\s*\](?!\()"
    r"(?P<trail>[ \t]*)",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"\d+")
_CLOSING = frozenset(".,;:!?)]}\n。，；：！？）")


def extract_citations(
    text: str, passages: Sequence[ScoredChunk]
) -> tuple[str, list[Citation], list[ScoredChunk]]:
    """Renumber the citation markers in ``text`` against ``passages`` (numbered from 1).

    Returns the rewritten text, one :class:`Citation` per cited passage numbered
    ``1..k`` in order of first appearance, and those passages in the same order.
    Markers naming no passage (``[7]`` with five passages) are removed; a marker
    whose numbers are all dropped disappears with the space before it.
    """
    protected = _protected_spans(text)
    order: list[int] = []
    for match in _MARKER.finditer(text):
        if _overlaps(match, protected):
            continue
        for number in _marker_numbers(match):
            if 1 <= number <= len(passages) and number not in order:
                order.append(number)
    renumber = {old: new for new, old in enumerate(order, start=1)}

    def rewrite(match: re.Match[str]) -> str:
        if _overlaps(match, protected):
            return match.group(0)
        kept = sorted({renumber[n] for n in _marker_numbers(match) if n in renumber})
        lead, trail = match.group("lead"), match.group("trail")
        if kept:
            return f"{lead}[{', '.join(str(n) for n in kept)}]{trail}"
        return _gap(text, match)

    rewritten = _MARKER.sub(rewrite, text)
    cited = [passages[number - 1] for number in order]
    citations = [citation_for(passage, n) for n, passage in enumerate(cited, start=1)]
    return rewritten, citations, cited


def citation_for(passage: ScoredChunk, number: int) -> Citation:
    """The Sources entry for ``passage`` shown as ``[number]``."""
    chunk = passage.chunk
    return Citation(
        number=number,
        title=chunk.title or chunk.doc_path,
        url=chunk.url,
        path=chunk.doc_path,
        heading=chunk.heading,
        docset=passage.docset,
    )


def _gap(text: str, match: re.Match[str]) -> str:
    """What replaces a dropped marker: one space between words, nothing before punctuation."""
    at_line_start = match.start() == 0 or text[match.start() - 1] == "\n"
    following = text[match.end() : match.end() + 1]
    if at_line_start or not following or following in _CLOSING:
        return ""
    return " " if match.group("lead") or match.group("trail") else ""


def _marker_numbers(match: re.Match[str]) -> list[int]:
    return [int(n) for n in _NUMBER.findall(match.group("nums"))]


def _overlaps(match: re.Match[str], spans: Sequence[tuple[int, int]]) -> bool:
    start = match.start() + len(match.group("lead"))
    end = match.end() - len(match.group("trail"))
    return any(start < span_end and span_start < end for span_start, span_end in spans)


def _protected_spans(text: str) -> list[tuple[int, int]]:
    """Character ranges that must not be rewritten: code blocks, inline code, links."""
    fenced = _fenced_blocks(text)
    spans = list(fenced)
    for pattern in (_INLINE_CODE, _LINKS):
        spans.extend(
            (m.start(), m.end())
            for m in pattern.finditer(text)
            if not any(s <= m.start() < e for s, e in fenced)
        )
    return spans


def _fenced_blocks(text: str) -> list[tuple[int, int]]:
    """Spans of ``` / ~~~ fenced blocks; an unclosed fence runs to the end of the text."""
    blocks: list[tuple[int, int]] = []
    position = 0
    while opening := _FENCE_OPEN.search(text, position):
        fence = opening.group(1)
        closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", re.M)
        body_start = text.find("\n", opening.end())
        found = closing.search(text, body_start) if body_start != -1 else None
        end = found.end() if found else len(text)
        blocks.append((opening.start(), end))
        position = end
    return blocks
