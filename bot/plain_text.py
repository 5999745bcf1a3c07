"""Markdown flattened to plain text, for a message's ``text`` fallback (notifications,
clients that cannot show blocks). Parsing is markdown-it-py's (CommonMark with tables);
this module only decides how each part reads without formatting. Pure functions.
"""

from __future__ import annotations

from markdown_it import MarkdownIt
from markdown_it.token import Token

BULLET = "•"


def markdown_to_plain(text: str) -> str:
    """``text`` without Markdown syntax: emphasis and headings become plain words, links
    ``label (url)``, list items ``• item``, table rows ``a | b``, code as written."""
    parser = MarkdownIt("commonmark").enable("table")
    out: list[str] = []
    for token in parser.parse(text):
        out.append(_block_text(token))
    lines = (line.rstrip().removesuffix(" |") for line in "".join(out).splitlines())
    return "\n".join(lines).strip()


def _block_text(token: Token) -> str:
    kind = token.type
    if kind == "inline":
        return _inline_text(token.children or [])
    if kind in ("fence", "code_block"):
        return token.content.rstrip("\n") + "\n\n"
    if kind == "list_item_open":
        return f"{BULLET} " if token.markup in "-*+" else f"{token.info or ''}. "
    if kind in ("paragraph_close", "heading_close"):
        return "\n" if token.hidden else "\n\n"
    if kind in ("th_close", "td_close"):
        return " | "
    if kind == "tr_close":
        return "\n"
    if kind in ("bullet_list_close", "ordered_list_close", "table_close", "blockquote_close"):
        return "\n"
    if kind == "hr":
        return "---\n\n"
    return ""


def _inline_text(children: list[Token]) -> str:
    parts: list[str] = []
    href = ""
    for child in children:
        kind = child.type
        if kind in ("text", "code_inline", "html_inline"):
            parts.append(child.content)
        elif kind in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif kind == "link_open":
            href = str(child.attrs.get("href", ""))
        elif kind == "link_close":
            if href and not "".join(parts).endswith(href):
                parts.append(f" ({href})")
            href = ""
        elif kind == "image":
            parts.append(child.content)
    return "".join(parts)
