"""HTML -> Markdown-ish text with the standard library's ``html.parser``.

Headings become ``#`` lines, ``<pre>`` becomes fenced code (its language taken from a
``language-xxx`` class), list items become ``- `` lines and block elements become
paragraphs; ``<script>``, ``<style>``, ``<nav>`` and similar non-content elements are
dropped and whitespace outside ``<pre>`` is collapsed. ``<title>`` is returned separately
as a title fallback.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from types import MappingProxyType

_SKIPPED = frozenset({"script", "style", "nav", "noscript", "template", "svg", "iframe"})
_BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "caption", "dd", "details",
        "dialog", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form",
        "header", "hr", "html", "main", "ol", "p", "section", "summary", "table", "tbody",
        "tfoot", "thead", "tr", "ul",
    }
)  # fmt: skip
_HEADINGS = MappingProxyType({f"h{level}": level for level in range(1, 7)})
_LANGUAGE = re.compile(r"(?:^|\s)(?:language|lang)-([\w+#.-]+)")
_SPACES = re.compile(r"\s+")


def markdown_from_html(html: str) -> tuple[str, str]:
    """Return the page's text as Markdown-ish text, and its ``<title>`` ("" when none)."""
    parser = _MarkdownWriter()
    parser.feed(html)
    parser.close()
    return parser.markdown(), parser.title


class _MarkdownWriter(HTMLParser):
    """Collects finished blocks; inline text accumulates in ``_inline`` until a block ends."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self._blocks: list[str] = []
        self._inline: list[str] = []
        self._skip_depth = 0
        self._heading = 0
        self._in_title = False
        self._pre_depth = 0
        self._pre_text: list[str] = []
        self._pre_language = ""

    def markdown(self) -> str:
        """All blocks fed so far, one blank line apart (list items on consecutive lines)."""
        self._flush()
        parts: list[str] = []
        for previous, block in zip(["", *self._blocks], self._blocks, strict=False):
            if parts:
                list_items = previous.startswith("- ") and block.startswith("- ")
                parts.append("\n" if list_items else "\n\n")
            parts.append(block)
        return "".join(parts)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skip_depth += 1
        elif self._skip_depth:
            return
        elif tag == "title":
            self._in_title = True
        elif tag == "pre" or self._pre_depth:
            self._start_pre_part(tag, dict(attrs).get("class") or "")
        elif tag in _HEADINGS:
            self._flush()
            self._heading = _HEADINGS[tag]
        elif tag in _BLOCKS:
            self._flush()
        elif tag == "li":
            self._flush()
            self._inline.append("- ")
        elif tag == "br":
            self._inline.append("\n")
        elif tag in ("td", "th"):
            self._inline.append(" ")
        elif tag == "code":
            self._inline.append("`")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif self._skip_depth:
            return
        elif tag == "title":
            self._in_title = False
        elif tag == "pre" and self._pre_depth:
            self._end_pre()
        elif self._pre_depth:
            return
        elif tag in _HEADINGS or tag in _BLOCKS or tag == "li":
            self._flush()
        elif tag in ("td", "th"):
            self._inline.append(" ")
        elif tag == "code":
            self._inline.append("`")

    def handle_data(self, data: str) -> None:
        if self._skip_depth:
            return
        if self._in_title:
            self.title = _SPACES.sub(" ", self.title + data).strip()
        elif self._pre_depth:
            self._pre_text.append(data)
        else:
            self._inline.append(_SPACES.sub(" ", data))

    def _start_pre_part(self, tag: str, css_class: str) -> None:
        if tag == "pre":
            if not self._pre_depth:
                self._flush()
                self._pre_text = []
                self._pre_language = ""
            self._pre_depth += 1
        match = _LANGUAGE.search(css_class)
        if match and not self._pre_language:
            self._pre_language = match.group(1)

    def _end_pre(self) -> None:
        self._pre_depth -= 1
        if self._pre_depth:
            return
        code = "".join(self._pre_text).strip("\n")
        if code.strip():
            self._blocks.append(f"```{self._pre_language}\n{code}\n```")

    def _flush(self) -> None:
        """End the current block: tidy its inline text and store it (as a heading if open)."""
        rows = ("".join(self._inline)).split("\n")
        text = "\n".join(_SPACES.sub(" ", row).strip() for row in rows).strip()
        self._inline = []
        if text and self._heading:
            text = f"{'#' * self._heading} {_SPACES.sub(' ', text)}"
        self._heading = 0
        if text and text != "-":
            self._blocks.append(text)
