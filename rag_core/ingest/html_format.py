"""HTML -> Markdown-ish text with the standard library's ``html.parser``.

Headings become ``#`` lines, ``<pre>`` becomes fenced code (its language taken from a
``language-xxx`` class), list items become ``- `` lines and block elements become
paragraphs; ``<script>``, ``<style>``, ``<nav>`` and similar non-content elements are
dropped and whitespace outside ``<pre>`` is collapsed. ``<title>`` is returned separately
as a title fallback.

Pages fetched from a website carry the site's chrome around the text: when a page marks
its main content with ``<main>`` (or ``role="main"``), only that part is kept; failing
that, only its ``<article>`` elements. ``<aside>`` and ``<footer>`` are always dropped, and
so is ``<header>`` unless it sits inside the main content (Docusaurus and others put the
page's ``<h1>`` there). A page whose main part holds no text is converted whole, so a
page that fills ``<main>`` with JavaScript still yields what it has.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from types import MappingProxyType

_SKIPPED = frozenset(
    {"script", "style", "nav", "noscript", "template", "svg", "iframe", "aside", "footer"}
)
_CHROME = frozenset({*_SKIPPED, "header"})  # skipped when outside the main content
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
    """Return the page's main text as Markdown-ish text, and its ``<title>`` ("" when none)."""
    finder = _RegionFinder()
    finder.feed(html)
    finder.close()
    text, title = _convert(html, finder.region())
    if finder.region() and not text:
        text, title = _convert(html, "")
    return text, title


def _convert(html: str, region: str) -> tuple[str, str]:
    parser = _MarkdownWriter(region)
    parser.feed(html)
    parser.close()
    return parser.markdown(), parser.title


def _opens_region(region: str, tag: str, attrs: list[tuple[str, str | None]]) -> bool:
    """Whether this start tag begins main content of kind ``region`` ("main" or "article")."""
    if region == "main":
        return tag == "main" or (dict(attrs).get("role") or "").strip().lower() == "main"
    return region == "article" and tag == "article"


class _RegionFinder(HTMLParser):
    """First pass: does the page mark its main content, and how ("main", "article", "")?"""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: set[str] = set()
        self._skip = _Nesting()

    def region(self) -> str:
        return next((kind for kind in ("main", "article") if kind in self.found), "")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip.enter(tag, tag in _CHROME):
            return
        self.found.update(kind for kind in ("main", "article") if _opens_region(kind, tag, attrs))

    def handle_endtag(self, tag: str) -> None:
        self._skip.leave(tag)


class _Nesting:
    """Depth inside one element, matched by counting its tag name (the HTML may be sloppy)."""

    def __init__(self) -> None:
        self.depth = 0
        self._tag = ""

    def enter(self, tag: str, opens: bool) -> bool:
        """Count ``tag``; when outside, enter if ``opens``. True when now inside."""
        if self.depth:
            self.depth += tag == self._tag
        elif opens:
            self._tag, self.depth = tag, 1
        return bool(self.depth)

    def leave(self, tag: str) -> None:
        if self.depth and tag == self._tag:
            self.depth -= 1


class _MarkdownWriter(HTMLParser):
    """Collects finished blocks; inline text accumulates in ``_inline`` until a block ends.

    With a ``region`` ("main" or "article") only text inside such elements is written.
    """

    def __init__(self, region: str = "") -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self._region = region
        self._inside = _Nesting()
        self._skip = _Nesting()
        self._blocks: list[str] = []
        self._inline: list[str] = []
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
        if self._skip.enter(tag, tag in self._skipped()):
            return
        self._inside.enter(tag, _opens_region(self._region, tag, attrs))
        if tag == "title":
            self._in_title = True
        elif not self._writing():
            return
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
        if self._skip.depth:
            self._skip.leave(tag)
            return
        if self._writing():
            self._end_content(tag)
        if tag == "title":
            self._in_title = False
        self._inside.leave(tag)

    def _end_content(self, tag: str) -> None:
        if tag == "pre" and self._pre_depth:
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
        if self._skip.depth:
            return
        if self._in_title:
            self.title = _SPACES.sub(" ", self.title + data).strip()
        elif not self._writing():
            return
        elif self._pre_depth:
            self._pre_text.append(data)
        else:
            self._inline.append(_SPACES.sub(" ", data))

    def _writing(self) -> bool:
        """Whether text here belongs to the page's content (inside the region, if any)."""
        return not self._region or self._inside.depth > 0

    def _skipped(self) -> frozenset[str]:
        """Elements dropped here: a ``<header>`` is content only inside the main region."""
        return _SKIPPED if self._region and self._inside.depth else _CHROME

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
