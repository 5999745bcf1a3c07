"""Split Markdown-ish text into sections at ATX headings, with heading paths and anchors.

Headings inside fenced code blocks are ignored (``# install`` in a shell snippet is a
comment). Anchors follow GitHub's rules (lower case, punctuation removed, spaces to
``-``, ``-1``/``-2`` appended to repeats) unless the heading ends with an explicit
``{#custom-id}``, which is used as given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag_core.ingest.formats import fenced_lines

_ATX = re.compile(r"^ {0,3}(#{1,6})(?=[ \t]|$)(.*)$")
_CLOSING_HASHES = re.compile(r"(?:^|[ \t]+)#+[ \t]*$")
_EXPLICIT_ANCHOR = re.compile(r"[ \t]*\{#([\w.:-]+)\}[ \t]*$")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
_STRONG = re.compile(r"(\*\*|__)(.+?)\1")
_NOT_SLUG = re.compile(r"[^\w\- ]")


@dataclass(frozen=True, slots=True)
class Section:
    """A heading and the text under it up to the next heading (of any level)."""

    heading_path: tuple[str, ...]  # enclosing headings then its own; the title H1 left out
    levels: tuple[int, ...]  # the level (1-6) of each heading in ``heading_path``
    anchor: str  # "" for text before the first heading and under the title H1
    body: str  # without the heading line; leading and trailing blank lines removed


@dataclass(frozen=True, slots=True)
class _Heading:
    level: int
    text: str
    anchor: str  # explicit {#id}, else the GitHub slug (made unique per document later)
    explicit: bool


def parse_sections(text: str, title: str) -> list[Section]:
    """Split ``text`` into sections in document order; the first may have no heading.

    An H1 whose text equals ``title`` (ignoring case and spacing) starts a section with an
    empty heading path: the title is carried by each chunk separately.
    """
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    anchor = ""
    body: list[str] = []
    seen: dict[str, int] = {}
    lines = text.split("\n")
    for line, fenced in zip(lines, fenced_lines(lines), strict=True):
        heading = None if fenced else _match_heading(line)
        if heading is None:
            body.append(line)
            continue
        sections.append(_section(stack, anchor, body))
        body = []
        while stack and stack[-1][0] >= heading.level:
            stack.pop()
        slug = heading.anchor if heading.explicit else _unique(heading.anchor, seen)
        if heading.level == 1 and _same_text(heading.text, title):
            stack.clear()
            anchor = ""
        else:
            stack.append((heading.level, heading.text))
            anchor = slug
    sections.append(_section(stack, anchor, body))
    return [section for section in sections if section.heading_path or section.body]


def slugify(text: str) -> str:
    """GitHub-style anchor of a heading's text: ``"What's New?"`` -> ``"whats-new"``.

    Every space becomes a hyphen (``"a  b"`` -> ``"a--b"``), as on GitHub.
    """
    plain = _strip_inline_markup(text).replace("`", "").lower().strip()
    return _NOT_SLUG.sub("", plain).replace(" ", "-")


def clean_heading(text: str) -> str:
    """Heading text as read: links and images reduced to their text, tags and ** removed."""
    return " ".join(_strip_inline_markup(text).split())


def _strip_inline_markup(text: str) -> str:
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _TAG.sub("", text)
    return _STRONG.sub(r"\2", text)


def _match_heading(line: str) -> _Heading | None:
    match = _ATX.match(line)
    if match is None:
        return None
    content = _CLOSING_HASHES.sub("", match.group(2).strip()).strip()
    explicit = _EXPLICIT_ANCHOR.search(content)
    if explicit:
        content = content[: explicit.start()]
    text = clean_heading(content)
    if not text:
        return None
    if explicit:
        return _Heading(len(match.group(1)), text, explicit.group(1), explicit=True)
    return _Heading(len(match.group(1)), text, slugify(content), explicit=False)


def _section(stack: list[tuple[int, str]], anchor: str, body: list[str]) -> Section:
    return Section(
        heading_path=tuple(text for _, text in stack),
        levels=tuple(level for level, _ in stack),
        anchor=anchor if stack else "",
        body=_trim_blank_lines(body),
    )


def _trim_blank_lines(lines: list[str]) -> str:
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return "\n".join(line.rstrip() for line in lines[start:end])


def _unique(slug: str, seen: dict[str, int]) -> str:
    """GitHub numbering of repeated anchors: ``setup``, ``setup-1``, ``setup-2``."""
    if not slug:
        return ""
    count = seen.get(slug, 0)
    seen[slug] = count + 1
    return slug if count == 0 else f"{slug}-{count}"


def _same_text(a: str, b: str) -> bool:
    return " ".join(a.lower().split()) == " ".join(b.lower().split())
