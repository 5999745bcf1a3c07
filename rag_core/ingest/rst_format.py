"""reStructuredText -> Markdown-ish text: section titles, literal blocks and inline markup.

Only what matters for retrieval is converted: over/underlined section titles become
``#`` headings (levels follow the order in which adornment styles first appear, as in
docutils), ``.. code-block::`` and ``::`` literal blocks become fenced code, admonitions
keep their text, and directives that hold no prose (images, toctrees, includes) and
comments are dropped.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence

_ADORNMENT_CHARS = frozenset("=-`:'\"~^_*+#<>.!$%&(),/;?@[]\\{|}")
_CODE_DIRECTIVE = re.compile(r"^(\s*)\.\.\s+(?:code-block|code|sourcecode)::\s*(\S*)\s*$")
_DIRECTIVE = re.compile(r"^(\s*)\.\.\s+([\w:-]+)::\s*(.*)$")
_EXPLICIT_MARKUP = re.compile(r"^(\s*)\.\.(?:\s|$)")
_OPTION = re.compile(r"^\s+:[\w -]+:")
_ADMONITIONS = frozenset(
    {"attention", "caution", "danger", "error", "hint", "important", "note", "tip", "warning"}
) | {"seealso", "admonition"}
_DROPPED_DIRECTIVES = frozenset(
    {"image", "figure", "toctree", "contents", "include", "literalinclude", "raw", "meta"}
) | {"index", "highlight", "sectnum"}
_INLINE_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"``(.+?)``"), r"`\1`"),
    (re.compile(r":(?:code|literal|file|command|samp):`([^`]+)`"), r"`\1`"),
    (re.compile(r":[\w:+-]+:`~?([^`<]*?)\s*<[^`>]*>`"), r"\1"),
    (re.compile(r":[\w:+-]+:`~?([^`]+)`"), r"\1"),
    (re.compile(r"`([^`<]+?)\s*<([^`>]+)>`__?"), r"[\1](\2)"),
    (re.compile(r"`([^`]+)`__?"), r"\1"),
)


def markdown_from_rst(text: str) -> str:
    """Convert reStructuredText (front matter already removed) to Markdown-ish text."""
    styles: list[tuple[str, bool]] = []
    return "\n".join(_convert(text.split("\n"), styles)).strip("\n")


def _convert(lines: Sequence[str], styles: list[tuple[str, bool]]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        title = _section_title(lines, i)
        if title is not None:
            text, style, consumed = title
            if style not in styles:
                styles.append(style)
            level = min(styles.index(style) + 1, 6)
            out.extend(["", f"{'#' * level} {_inline(text)}", ""])
            i += consumed
            continue
        if _EXPLICIT_MARKUP.match(lines[i]):
            i = _explicit_markup(lines, i, out, styles)
            continue
        line = lines[i]
        if line.rstrip().endswith("::"):
            out.append(_inline(_literal_intro(line)))
            i = _literal_block(lines, i + 1, _indent(line), "", out)
            continue
        out.append(_inline(line))
        i += 1
    return out


def _section_title(lines: Sequence[str], i: int) -> tuple[str, tuple[str, bool], int] | None:
    """Recognise a title at line ``i``: (text, (char, overlined), lines consumed) or None."""
    line = lines[i]
    following = lines[i + 1] if i + 1 < len(lines) else ""
    if _is_adornment(line) and i + 2 < len(lines):
        text = following.strip()
        closing = lines[i + 2]
        if text and not _is_adornment(following) and closing.rstrip() == line.rstrip():
            return text, (line.strip()[0], True), 3
    previous_blank = i == 0 or not lines[i - 1].strip() or _is_adornment(lines[i - 1])
    if (
        previous_blank
        and line.strip()
        and not line[:1].isspace()
        and not _is_adornment(line)
        and _is_adornment(following)
    ):
        return line.strip(), (following.strip()[0], False), 2
    return None


def _is_adornment(line: str) -> bool:
    stripped = line.rstrip()
    return (
        len(stripped) >= 3
        and not stripped[0].isspace()
        and stripped[0] in _ADORNMENT_CHARS
        and stripped == stripped[0] * len(stripped)
    )


def _explicit_markup(
    lines: Sequence[str], i: int, out: list[str], styles: list[tuple[str, bool]]
) -> int:
    """Handle a line starting with ``..`` (directive, comment, target); return the next index."""
    line = lines[i]
    code = _CODE_DIRECTIVE.match(line)
    if code:
        return _literal_block(lines, i + 1, len(code.group(1)), code.group(2), out)
    block_end = _block_end(lines, i + 1, _indent(line))
    directive = _DIRECTIVE.match(line)
    name = directive.group(2).lower() if directive else ""
    if directive is None or name in _DROPPED_DIRECTIVES:
        return block_end
    argument = _inline(directive.group(3).strip())
    body = [row for row in lines[i + 1 : block_end] if not _OPTION.match(row)]
    content = _convert(textwrap.dedent("\n".join(body)).split("\n"), styles)
    if name == "admonition":
        out.extend(["", f"**{argument}:**"])
    elif name in _ADMONITIONS:
        out.extend(["", f"**{name.capitalize()}:** {argument}".rstrip()])
    elif argument:
        out.extend(["", argument])
    out.extend([*content, ""])
    return block_end


def _literal_intro(line: str) -> str:
    """The paragraph line that introduces a literal block, with its ``::`` marker reduced."""
    stripped = line.rstrip()
    if stripped.strip() == "::":
        return ""
    if stripped.endswith(" ::"):
        return stripped[:-3]
    return stripped[:-1]


def _literal_block(lines: Sequence[str], start: int, indent: int, lang: str, out: list[str]) -> int:
    """Emit the indented block after ``start`` (options and blank lines skipped) as a fence."""
    i = start
    while i < len(lines) and _OPTION.match(lines[i]) and _indent(lines[i]) > indent:
        i += 1
    end = _block_end(lines, i, indent)
    body = textwrap.dedent("\n".join(lines[i:end])).strip("\n")
    if body:
        out.extend(["", f"```{lang}", body, "```", ""])
    return end


def _block_end(lines: Sequence[str], start: int, indent: int) -> int:
    """Index just past the block indented deeper than ``indent`` that starts at ``start``."""
    i = start
    last_content = start
    while i < len(lines):
        line = lines[i]
        if line.strip():
            if _indent(line) <= indent:
                break
            last_content = i + 1
        i += 1
    return max(last_content, start)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _inline(line: str) -> str:
    for pattern, replacement in _INLINE_RULES:
        line = pattern.sub(replacement, line)
    return line
