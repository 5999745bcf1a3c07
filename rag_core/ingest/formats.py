"""Turn every supported source format into Markdown-ish text, so one chunker serves all.

Markdown keeps its syntax; MDX loses its ``import``/``export`` statements and lines that
hold nothing but JSX or HTML tags; reStructuredText and HTML are converted (see
:mod:`rag_core.ingest.rst_format` and :mod:`rag_core.ingest.html_format`). YAML front
matter is read with PyYAML's safe loader.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType

import yaml

from rag_core.ingest.html_format import markdown_from_html
from rag_core.ingest.rst_format import markdown_from_rst

FORMAT_BY_SUFFIX = MappingProxyType(
    {
        ".md": "markdown",
        ".markdown": "markdown",
        ".mdx": "markdown",
        ".txt": "text",
        ".rst": "rst",
        ".html": "html",
        ".htm": "html",
    }
)
"""Lower-case file suffix -> the ``Document.format`` it is read as."""

_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})(.*)$")
_ATX_H1 = re.compile(r"^ {0,3}#(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_TAG = re.compile(r"</?([A-Za-z][\w.:-]*)(?:\s[^<>]*?)?\s*/?>")
_CODE_SPAN = re.compile(r"(`+).+?\1")
_HTML_ELEMENTS = frozenset(
    {"a", "abbr", "b", "big", "blockquote", "br", "center", "cite", "code", "dd", "del", "details"}
    | {"div", "dl", "dt", "em", "figcaption", "figure", "font", "h1", "h2", "h3", "h4", "h5", "h6"}
    | {"hr", "i", "img", "ins", "kbd", "label", "li", "mark", "ol", "p", "pre", "s", "section"}
    | {"small", "span", "strike", "strong", "sub", "summary", "sup", "table", "tbody", "td"}
    | {"tfoot", "th", "thead", "tr", "tt", "u", "ul", "video", "source", "iframe", "picture"}
)
_TAG_REPLACEMENT = MappingProxyType({"code": "`", "tt": "`", "br": " "})
_MDX_COMMENT_LINE = re.compile(r"^\s*\{/\*.*\*/\}\s*$")
_ESM_START = re.compile(r"^(?:import|export)\b")


@dataclass(frozen=True, slots=True)
class ConvertedText:
    """A source file as Markdown-ish text, with what its metadata or markup says."""

    text: str
    title: str  # from front matter, the first H1 or an HTML <title>; "" when none
    doc_id: str  # the front matter's ``id``; "" when none
    format: str  # "markdown", "text", "rst" or "html"
    slug: str = ""  # the front matter's ``slug``; "" when none


def convert_source(raw: str, suffix: str) -> ConvertedText:
    """Convert decoded file contents to Markdown-ish text; ``suffix`` picks the format.

    Newlines are normalised to ``\\n`` and a byte-order mark is dropped. Raises ``KeyError``
    for a suffix missing from :data:`FORMAT_BY_SUFFIX` (callers filter on it first).
    """
    suffix = suffix.lower()
    fmt = FORMAT_BY_SUFFIX[suffix]
    raw = raw.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    if fmt == "html":
        text, html_title = markdown_from_html(raw)
        return ConvertedText(text, first_h1(text) or html_title, "", fmt)
    meta, body = split_front_matter(raw)
    if suffix == ".mdx":
        body = strip_mdx_syntax(body)
    elif fmt == "markdown":
        body = strip_html_tags(body)
    elif fmt == "rst":
        body = _collapse_blank_lines(markdown_from_rst(body).split("\n"))
    title = meta.get("title", "") or first_h1(body)
    return ConvertedText(body.strip("\n"), title, meta.get("id", ""), fmt, meta.get("slug", ""))


def code_fence_spans(lines: Sequence[str]) -> list[tuple[int, int]]:
    """``(first, end)`` line ranges of fenced code blocks (``` or ~~~), fences included.

    Follows CommonMark: a closing fence uses the opening character at least as many times
    and carries nothing else; an unclosed fence runs to the end. Indentation is allowed
    so that fences nested in list items are recognised too.
    """
    spans: list[tuple[int, int]] = []
    fence = ""
    first = 0
    for index, line in enumerate(lines):
        match = _FENCE.match(line)
        if match is None:
            continue
        marker, rest = match.group(1), match.group(2)
        if not fence:
            if not (marker[0] == "`" and "`" in rest):
                fence, first = marker, index
        elif marker[0] == fence[0] and len(marker) >= len(fence) and not rest.strip():
            spans.append((first, index + 1))
            fence = ""
    if fence:
        spans.append((first, len(lines)))
    return spans


def fenced_lines(lines: Sequence[str]) -> list[bool]:
    """Mark which lines belong to a fenced code block, fence lines included."""
    mask = [False] * len(lines)
    for first, end in code_fence_spans(lines):
        mask[first:end] = [True] * (end - first)
    return mask


def first_h1(text: str) -> str:
    """The text of the first ``# `` heading outside code fences, or ""."""
    lines = text.split("\n")
    for line, fenced in zip(lines, fenced_lines(lines), strict=True):
        if fenced:
            continue
        match = _ATX_H1.match(line)
        if match and match.group(1):
            return match.group(1).strip()
    return ""


def split_front_matter(text: str) -> tuple[dict[str, str], str]:
    """Split leading YAML front matter (``---`` ... ``---``) from the text.

    Returns the top-level scalar values as one-line strings (keys lower-cased; lists and
    mappings left out) and the remaining text. A block that is not a YAML mapping, e.g.
    a reStructuredText over-lined title, or not valid YAML, is left in the text.
    """
    lines = text.split("\n")
    if not lines or lines[0].rstrip() != "---":
        return {}, text
    end = next((i for i in range(1, len(lines)) if lines[i].rstrip() in ("---", "...")), 0)
    if not end:
        return {}, text
    try:
        parsed = yaml.safe_load("\n".join(lines[1:end]))
    except yaml.YAMLError:
        return {}, text
    if not isinstance(parsed, dict):
        return {}, text
    meta = {str(key).lower(): _one_line(value) for key, value in parsed.items()}
    return {k: v for k, v in meta.items() if v is not None}, "\n".join(lines[end + 1 :])


def _one_line(value: object) -> str | None:
    """A scalar as one line of text (``true``, not ``True``); None for a list or mapping."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return None
    return " ".join(str(value).split())


def strip_html_tags(text: str) -> str:
    """Remove HTML tags from Markdown outside code, keeping the words between them.

    Only real HTML element names count (``<td>``, ``<div class="note">``), so
    placeholders such as ``<your_token>`` stay. Tags cost tokens and carry no meaning
    for retrieval; a line left empty becomes a blank line, which keeps the blocks on
    either side apart.
    """
    lines = text.split("\n")
    kept = [
        line if fenced else strip_tags_from_line(line, jsx=False)
        for line, fenced in zip(lines, fenced_lines(lines), strict=True)
    ]
    return _collapse_blank_lines(kept)


def strip_mdx_syntax(text: str) -> str:
    """Drop MDX ``import``/``export`` statements and ``{/* */}`` comments, and JSX tags.

    A statement continues over following lines while its brackets are unbalanced, so
    multi-line ``import { a, b } from "x"`` and ``export const meta = {...}`` go whole.
    Capitalised JSX components (``<Tabs>``, ``<Admonition type="tip">``) are removed like
    HTML tags and the text between them is kept; code fences are left untouched.
    """
    lines = text.split("\n")
    kept: list[str] = []
    depth = 0
    for line, fenced in zip(lines, fenced_lines(lines), strict=True):
        if fenced:
            kept.append(line)
        elif depth > 0 or _ESM_START.match(line):
            depth = max(0, depth + _bracket_balance(line))
            kept.append("")
        elif _MDX_COMMENT_LINE.match(line):
            kept.append("")
        else:
            kept.append(strip_tags_from_line(line, jsx=True))
    return _collapse_blank_lines(kept)


def strip_tags_from_line(line: str, *, jsx: bool) -> str:
    """One line without its HTML (and, with ``jsx``, component) tags; code spans kept.

    ``<code>`` becomes a backtick and ``<br>`` a space; entities are decoded on lines that
    held tags, and such a line loses its indentation when it started with a tag.
    """
    parts: list[str] = []
    start = 0
    changed = False
    for span in [*_CODE_SPAN.finditer(line), None]:
        end = span.start() if span else len(line)
        outside = _TAG.sub(lambda match: _tag_replacement(match, jsx), line[start:end])
        changed = changed or outside != line[start:end]
        parts.append(outside)
        if span:
            parts.append(span.group(0))
            start = span.end()
    if not changed:
        return line
    cleaned = html.unescape("".join(parts)).rstrip()
    return cleaned.strip() if line.lstrip().startswith("<") else cleaned


def _tag_replacement(match: re.Match[str], jsx: bool) -> str:
    name = match.group(1)
    if name.lower() in _HTML_ELEMENTS:
        return _TAG_REPLACEMENT.get(name.lower(), "")
    if jsx and name[:1].isupper():
        return ""
    return match.group(0)


def _bracket_balance(line: str) -> int:
    return sum(line.count(c) for c in "([{") - sum(line.count(c) for c in ")]}")


def _collapse_blank_lines(lines: Sequence[str]) -> str:
    """Join lines, keeping at most one blank line in a row outside code fences."""
    out: list[str] = []
    for line, fenced in zip(lines, fenced_lines(lines), strict=True):
        if not fenced and not line.strip():
            if out and out[-1] == "":
                continue
            line = ""
        out.append(line)
    return "\n".join(out)
