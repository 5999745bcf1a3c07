"""Markdown, as chat models write it, turned into Slack mrkdwn and cut to Slack's limits.

Slack's mrkdwn is not Markdown: ``*bold*``, ``_italic_``, ``~strike~``, ``<url|text>``
links, no headings, no tables. Slack also gives ``&``, ``<`` and ``>`` a meaning of their
own (mentions, ``<!channel>``, links), so every one of them in the model's text is
escaped, code included (Slack shows ``&lt;`` as ``<`` inside code too): a model cannot
ping a channel or forge a link by writing Slack syntax. Code blocks and inline code are
never reformatted. Line breaks are kept as written, since Slack shows every newline.

:func:`split_mrkdwn` and :func:`truncate_mrkdwn` fit the result into Block Kit's
per-text limits without breaking links, entities or code fences. Pure functions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import NamedTuple

from rag_core.errors import InputError

CODE_FENCE = "```"
BULLET = "•"
RULE = "──────────"
LINK_LABEL_BAR = "∣"  # stands in for "|", which would end a link's URL part early

_SLOT = re.compile("\ue000(\\d+)\ue001")
_PRIVATE = re.compile("[\ue000\ue001]")

_FENCE = re.compile(r"^([ \t]*)(`{3,}|~{3,})")
_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(?:=+|-+)[ \t]*$")
_RULE_LINE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_BULLET_LINE = re.compile(r"^([ \t]*)[-*+][ \t]+(.*)$")
_NUMBERED_LINE = re.compile(r"^([ \t]*)(\d{1,9})[.)][ \t]+(.*)$")
_QUOTE_LINE = re.compile(r"^ {0,3}>[ \t]?(.*)$")
_TABLE_DELIMITER = re.compile(r"^[ \t]*\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_REFERENCE_DEF = re.compile(
    r"^ {0,3}\[([^\]\n]+)\]:[ \t]*<?([^\s>]+)>?(?:[ \t]+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?[ \t]*$"
)

_BACKSLASH = re.compile(r"\\([!-/:-@\[-`{-~])")
_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)")
_AUTOLINK = re.compile(r"<((?:https?|ftp)://[^<>\s]+|mailto:[^<>\s]+)>")
_LABEL = r"\[((?:[^\[\]\n]|\[[^\[\]\n]*\])*)\]"
_INLINE_LINK = re.compile(
    r"(!?)" + _LABEL + r"\(\s*<?([^\s()<>]*(?:\([^\s()]*\)[^\s()<>]*)*)>?"
    r"(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)"
)
_REFERENCE_LINK = re.compile(r"(!?)" + _LABEL + r"(?:\[([^\[\]\n]*)\])?(?!\()")
_BARE_URL = re.compile(
    r"\b(?:https?://|ftp://|www\.)(?:[^\s<>()]|\([^\s<>()]*\))*"
    r"(?:[^\s<>().,;:!?'\"*_~\]]|\([^\s<>()]*\))"
)
_LINKABLE = re.compile(r"^(?:https?://|mailto:|ftp://)", re.IGNORECASE)
_EMPHASIS = re.compile(
    r"\*\*\*(?=[^\s*])(?P<strong_em>.{1,400}?)(?<=[^\s*])\*\*\*"
    r"|\*\*(?=\S)(?P<strong>.{1,400}?)(?<=\S)\*\*"
    r"|(?<!\w)__(?=[^\s_])(?P<strong_u>.{1,400}?)(?<=[^\s_])__(?!\w)"
    r"|~~(?=\S)(?P<strike>.{1,400}?)(?<=\S)~~"
    r"|\*(?=[^\s*])(?P<em>.{1,400}?)(?<=[^\s*])\*(?!\*)"
    r"|(?<!\w)_(?=[^\s_])(?P<em_u>.{1,400}?)(?<=[^\s_])_(?!\w)"
)


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


def markdown_to_mrkdwn(text: str) -> str:
    """Convert CommonMark-style Markdown to Slack mrkdwn (see the module notes)."""
    lines = _PRIVATE.sub("", text.replace("\r\n", "\n").replace("\r", "\n")).split("\n")
    references, lines = _take_reference_definitions(lines)
    out: list[str] = []
    index = 0
    while index < len(lines):
        index = _convert_block(lines, index, out, references)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


def _take_reference_definitions(lines: list[str]) -> tuple[dict[str, str], list[str]]:
    """Remove ``[label]: url`` lines (outside code) and return them keyed by label."""
    references: dict[str, str] = {}
    kept: list[str] = []
    fence = ""
    for line in lines:
        opened = _FENCE.match(line)
        if fence:
            fence = "" if _closes(line, fence) else fence
        elif opened:
            fence = opened.group(2)
        elif match := _REFERENCE_DEF.match(line):
            references.setdefault(_reference_key(match.group(1)), match.group(2))
            continue
        kept.append(line)
    return references, kept


def _closes(line: str, fence: str) -> bool:
    """Whether ``line`` closes a code block opened with ``fence`` (same character, as long)."""
    stripped = line.strip()
    return len(stripped) >= len(fence) and stripped == fence[0] * len(stripped)


def _reference_key(label: str) -> str:
    return " ".join(label.split()).casefold()


def _convert_block(lines: list[str], index: int, out: list[str], refs: Mapping[str, str]) -> int:
    """Convert the block starting at ``lines[index]``; returns the index after it."""
    line = lines[index]
    if opened := _FENCE.match(line):
        return _convert_fence(lines, index, opened.group(1), opened.group(2), out)
    if _is_table_start(lines, index):
        return _convert_table(lines, index, out)
    following = lines[index + 1] if index + 1 < len(lines) else ""
    if line.strip() and _SETEXT.match(following) and _is_plain_paragraph(line):
        out.append(_heading(line.strip(), refs))
        return index + 2
    converted = _convert_line(line, refs)
    if converted or (out and out[-1]):  # one blank line between blocks, none leading
        out.append(converted)
    return index + 1


def _convert_fence(lines: list[str], index: int, indent: str, fence: str, out: list[str]) -> int:
    """A fenced code block: the info string (language) and the fence's indent are dropped."""
    out.append(CODE_FENCE)
    index += 1
    while index < len(lines) and not _closes(lines[index], fence):
        line = lines[index]
        out.append(escape_mrkdwn(line[len(indent) :] if line.startswith(indent) else line))
        index += 1
    out.append(CODE_FENCE)
    return index + 1


def _table_cells(line: str) -> list[str]:
    stripped = line.strip()
    stripped = stripped.removeprefix("|")
    if stripped.endswith("|") and not stripped.endswith("\\|"):
        stripped = stripped[:-1]
    return [cell.strip().replace("\\|", "|") for cell in _CELL_SPLIT.split(stripped)]


def _is_table_start(lines: list[str], index: int) -> bool:
    if index + 1 >= len(lines) or "|" not in lines[index] or "|" not in lines[index + 1]:
        return False
    if not _TABLE_DELIMITER.match(lines[index + 1]):
        return False
    return len(_table_cells(lines[index])) == len(_table_cells(lines[index + 1]))


def _convert_table(lines: list[str], index: int, out: list[str]) -> int:
    """A GFM table, re-aligned in monospace inside a code block (Slack has no tables)."""
    rows = [_table_cells(lines[index])]
    index += 2
    while index < len(lines) and lines[index].strip() and "|" in lines[index]:
        rows.append(_table_cells(lines[index]))
        index += 1
    width = len(rows[0])
    rows = [[_plain_cell(cell) for cell in (row + [""] * width)[:width]] for row in rows]
    sizes = [max(len(row[col]) for row in rows) for col in range(width)]

    def render(row: list[str]) -> str:
        return escape_mrkdwn(" | ".join(c.ljust(s) for c, s in zip(row, sizes, strict=True)))

    out.append(CODE_FENCE)
    out.append(render(rows[0]).rstrip())
    out.append("-+-".join("-" * size for size in sizes))
    out.extend(render(row).rstrip() for row in rows[1:])
    out.append(CODE_FENCE)
    return index


def _plain_cell(cell: str) -> str:
    """Table cell text without Markdown punctuation, which a code block would show raw."""
    cell = _INLINE_LINK.sub(lambda m: f"{m.group(2)} ({m.group(3)})", cell)
    return re.sub(r"\*\*|__|~~|`", "", cell)


def _is_plain_paragraph(line: str) -> bool:
    patterns = (_FENCE, _HEADING, _RULE_LINE, _BULLET_LINE, _NUMBERED_LINE, _QUOTE_LINE)
    return not any(pattern.match(line) for pattern in patterns)


def _heading(text: str, refs: Mapping[str, str]) -> str:
    converted = _convert_inline(text, refs, bold=False).strip()
    return f"*{converted}*" if converted else ""


def _convert_line(line: str, refs: Mapping[str, str]) -> str:
    line = line.expandtabs(4)
    if not line.strip():
        return ""
    if heading := _HEADING.match(line):
        return _heading(heading.group(2) or "", refs)
    if _RULE_LINE.match(line):
        return RULE
    if _QUOTE_LINE.match(line):
        while quote := _QUOTE_LINE.match(line):  # Slack quotes do not nest: flatten them
            line = quote.group(1)
        inner = _convert_line(line, refs)
        return f"> {inner}" if inner else ">"
    if bullet := _BULLET_LINE.match(line):
        return f"{bullet.group(1)}{BULLET} {_convert_inline(bullet.group(2), refs)}".rstrip()
    if numbered := _NUMBERED_LINE.match(line):
        indent, number, rest = numbered.groups()
        return f"{indent}{number}. {_convert_inline(rest, refs)}".rstrip()
    body = line.rstrip()
    body = body.removesuffix("\\") if body.endswith("\\") and not body.endswith("\\\\") else body
    return _convert_inline(body, refs).rstrip()


def _convert_inline(text: str, refs: Mapping[str, str], *, bold: bool = True) -> str:
    """One line of inline Markdown to mrkdwn: code, links and URLs are set aside first."""
    slots: list[str] = []

    def keep(value: str) -> str:
        slots.append(value)
        return f"\ue000{len(slots) - 1}\ue001"

    text = _CODE_SPAN.sub(lambda m: keep(_code_span(m.group(2))), text)
    text = _BACKSLASH.sub(lambda m: keep(escape_mrkdwn(m.group(1))), text)
    text = _AUTOLINK.sub(lambda m: keep(mrkdwn_link(m.group(1))), text)
    text = _INLINE_LINK.sub(lambda m: keep(_link(m.group(3), m.group(2))), text)
    text = _REFERENCE_LINK.sub(lambda m: _reference_link(m, refs, keep), text)
    text = _BARE_URL.sub(lambda m: keep(escape_mrkdwn(m.group(0))), text)
    text = _convert_emphasis(escape_mrkdwn(text), bold=bold)
    while _SLOT.search(text):
        text = _SLOT.sub(lambda m: slots[int(m.group(1))], text)
    return text


def _code_span(content: str) -> str:
    if content.startswith(" ") and content.endswith(" ") and content.strip():
        content = content[1:-1]
    return f"`{escape_mrkdwn(content)}`"


def _link(url: str, label_md: str) -> str:
    """``[label](url)``: a Slack link for web and mail URLs, else the label alone."""
    label = _label_text(label_md)
    if not _LINKABLE.match(url):
        return escape_mrkdwn(label)
    return mrkdwn_link(url, label)


def _label_text(label_md: str) -> str:
    """Link text as plain text: emphasis markers and code ticks are dropped."""
    plain = _INLINE_LINK.sub(lambda m: m.group(2), label_md)
    plain = re.sub(r"\*\*|__|~~|`|(?<!\w)[*_]|[*_](?!\w)", "", plain)
    return _BACKSLASH.sub(lambda m: m.group(1), plain)


def _reference_link(
    match: re.Match[str], refs: Mapping[str, str], keep: Callable[[str], str]
) -> str:
    """``[text][ref]``, ``[text][]`` or ``[ref]``, only when ``ref`` is defined.

    Citation markers such as ``[1]`` are left alone unless a ``[1]: url`` line defines them.
    """
    label, ref = match.group(2), match.group(3)
    url = refs.get(_reference_key(ref or label))
    if url is None:
        return match.group(0)
    return keep(_link(url, label))


def _convert_emphasis(text: str, *, bold: bool) -> str:
    """``**b**``/``__b__`` -> ``*b*``, ``*i*``/``_i_`` -> ``_i_``, ``~~s~~`` -> ``~s~``.

    With ``bold=False`` (inside a heading, which is already bold) strong markers are dropped.
    """

    def replace(match: re.Match[str]) -> str:
        kind = match.lastgroup or ""
        inner = _EMPHASIS.sub(replace, match.group(kind))
        if kind == "strong_em":
            return f"*_{inner}_*" if bold else f"_{inner}_"
        if kind in ("strong", "strong_u"):
            return f"*{inner}*" if bold else inner
        if kind == "strike":
            return f"~{inner}~"
        return f"_{inner}_"

    return _EMPHASIS.sub(replace, text)


MIN_SPLIT_LIMIT = 16
_CLOSE_FENCE = "\n" + CODE_FENCE
_REOPEN_FENCE = CODE_FENCE + "\n"
_ATOMIC = re.compile(r"<[^<>\n]*>|&(?:amp|lt|gt);")


def split_mrkdwn(text: str, limit: int = 3000) -> list[str]:
    """Cut mrkdwn into pieces of at most ``limit`` characters, for Slack's per-block limits.

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
