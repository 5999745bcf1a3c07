"""Units of text (paragraphs, code blocks, lines, sentences) and packing them into budgets.

A :class:`TextUnit` remembers the whitespace that separated it from the unit before it,
so joining consecutive units gives back the source text, and the overlap carried into a
piece is an exact suffix of the piece before it. Token counts of units exclude the
tokenizer's fixed overhead (special tokens such as ``[CLS]``), measured once as the count
of the empty string.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from rag_core.ingest.formats import code_fence_spans

UnitKind = Literal["prose", "code", "heading"]

_SENTENCE_END = re.compile(r"(?<=[.!?。！？])([\"'”’)\]]*)(\s+|(?<=[。！？])(?!\s))")
_FENCE_MARKER = re.compile(r"^[ \t]*(`{3,}|~{3,})")
_PREFIX_CHARS_PER_TOKEN = 64  # upper bound used to cap the bisection for hard cuts


@dataclass(frozen=True, slots=True)
class TextUnit:
    """A piece of text that is never cut once it fits: paragraph, code block, line..."""

    text: str
    tokens: int  # without the tokenizer's fixed overhead
    sep: str  # whitespace joining it to the previous unit: "\n\n", "\n", " " or ""
    kind: UnitKind


def join_units(units: Sequence[TextUnit]) -> str:
    """The text of consecutive units, joined by their own separators."""
    if not units:
        return ""
    return units[0].text + "".join(unit.sep + unit.text for unit in units[1:])


class UnitSplitter:
    """Measures, cuts and packs units with one token counter (expected to be cached)."""

    def __init__(self, count_tokens: Callable[[str], int]) -> None:
        self._count = count_tokens
        self._overhead = count_tokens("")

    def tokens(self, text: str) -> int:
        """Tokens of ``text`` on its own, less the fixed overhead every count carries."""
        return max(0, self._count(text) - self._overhead)

    def size(self, units: Sequence[TextUnit]) -> int:
        """Estimated tokens of the joined units: parts and separators added up."""
        if not units:
            return 0
        return sum(unit.tokens for unit in units) + sum(self.tokens(unit.sep) for unit in units[1:])

    def heading_unit(self, line: str) -> TextUnit:
        """A ``## Heading`` line opening a section merged into an earlier section's chunk."""
        return TextUnit(line, self.tokens(line), "\n\n", "heading")

    def body_units(self, body: str, first_sep: str) -> list[TextUnit]:
        """Paragraphs and fenced code blocks of a section body, in order.

        A code block is its own unit even when no blank line sets it apart from the text.
        """
        units: list[TextUnit] = []
        sep = first_sep
        for text, kind, blank_before in _blocks(body):
            if units:
                sep = "\n\n" if blank_before else "\n"
            units.append(TextUnit(text, self.tokens(text), sep, kind))
        return units

    def split(self, units: Sequence[TextUnit], budget: int) -> list[TextUnit]:
        """Cut every unit larger than ``budget`` into smaller ones; others pass unchanged."""
        out: list[TextUnit] = []
        for unit in units:
            if unit.tokens <= budget:
                out.append(unit)
            elif unit.kind == "code":
                out.extend(self._split_code(unit, budget))
            else:
                out.extend(self._split_prose(unit.text, unit.sep, budget))
        return out

    def pack(self, units: Sequence[TextUnit], budget: int, overlap: int) -> list[list[TextUnit]]:
        """Group units greedily into pieces of at most ``budget`` tokens (estimated).

        Each new piece starts with about ``overlap`` tokens of trailing units (or trailing
        sentences) of the piece before it. Headings left at the end of a piece move to the
        next one, so no piece ends with a heading it does not introduce.
        """
        pieces: list[list[TextUnit]] = []
        current: list[TextUnit] = []
        size = 0
        for unit in units:
            grown = size + unit.tokens + (self.tokens(unit.sep) if current else 0)
            if grown > budget and any(part.kind != "heading" for part in current):
                cut = len(current)
                while current[cut - 1].kind == "heading":
                    cut -= 1
                pieces.append(current[:cut])
                current = current[cut:]
                if not current:
                    room = budget - unit.tokens - self.tokens(unit.sep)
                    current = self._overlap(pieces[-1], min(overlap, room))
                size = self.size(current)
                grown = size + unit.tokens + (self.tokens(unit.sep) if current else 0)
            current.append(unit)
            size = grown
        if current:
            pieces.append(current)
        return pieces

    def _overlap(self, piece: Sequence[TextUnit], limit: int) -> list[TextUnit]:
        """Trailing whole units, then trailing sentences, of ``piece`` within ``limit``.

        Never the whole piece: that would only repeat it.
        """
        taken: list[TextUnit] = []
        for position in range(len(piece) - 1, -1, -1):
            unit = piece[position]
            if position > 0 and unit.kind != "heading" and self.size([unit, *taken]) <= limit:
                taken.insert(0, unit)
                continue
            if unit.kind == "prose":
                room = limit - self.size(taken) - (self.tokens(taken[0].sep) if taken else 0)
                suffix = self._sentence_suffix(unit, room)
                if suffix is not None:
                    taken.insert(0, suffix)
            break
        return taken

    def _sentence_suffix(self, unit: TextUnit, limit: int) -> TextUnit | None:
        """The longest run of whole trailing sentences or lines of ``unit`` within ``limit``."""
        best: TextUnit | None = None
        starts = [match.end() for match in _breaks(unit.text)]
        for start in reversed(starts):
            text = unit.text[start:]
            if not text.strip():
                continue
            tokens = self.tokens(text)
            if tokens > limit:
                break
            best = TextUnit(text, tokens, unit.sep, unit.kind)
        return best

    def _split_prose(self, text: str, sep: str, budget: int) -> list[TextUnit]:
        """Cut at line ends, then sentence ends, then at token boundaries."""
        out: list[TextUnit] = []
        for line, line_sep in _spans(text, sep, re.finditer(r"\n+", text)):
            tokens = self.tokens(line)
            if tokens <= budget:
                out.append(TextUnit(line, tokens, line_sep, "prose"))
                continue
            for sentence, sentence_sep in _spans(line, line_sep, _SENTENCE_END.finditer(line)):
                tokens = self.tokens(sentence)
                if tokens <= budget:
                    out.append(TextUnit(sentence, tokens, sentence_sep, "prose"))
                else:
                    out.extend(self._hard_split(sentence, sentence_sep, budget, "prose"))
        return out

    def _split_code(self, unit: TextUnit, budget: int) -> list[TextUnit]:
        """Cut a code block between lines; every piece is wrapped in the block's fences."""
        lines = unit.text.split("\n")
        opening, closing = lines[0], _closing_fence(lines)
        inner = lines[1:-1] if closing == lines[-1] and len(lines) > 1 else lines[1:]
        room = budget - self.tokens(opening) - self.tokens(closing) - 2 * self.tokens("\n")
        room = max(1, room)
        rows: list[TextUnit] = []
        for line in inner:
            row = TextUnit(line, self.tokens(line), "\n", "code")
            rows.extend([row] if row.tokens <= room else self._hard_split(line, "\n", room, "code"))
        out: list[TextUnit] = []
        for group in self.pack(rows, room, 0):
            text = f"{opening}\n{join_units(group)}\n{closing}"
            out.append(TextUnit(text, self.tokens(text), "\n" if out else unit.sep, "code"))
        return out

    def _hard_split(self, text: str, sep: str, budget: int, kind: UnitKind) -> list[TextUnit]:
        """Cut at the longest prefixes that fit, at whitespace when one is near the end."""
        out: list[TextUnit] = []
        rest = text
        while rest:
            tokens = self.tokens(rest)
            if tokens <= budget:
                out.append(TextUnit(rest, tokens, sep, kind))
                break
            cut = self._fitting_prefix(rest, budget)
            head, tail = rest[:cut].rstrip(), rest[cut:]
            out.append(TextUnit(head, self.tokens(head), sep, kind))
            rest = tail.lstrip()
            sep = tail[: len(tail) - len(rest)] if kind == "prose" else ""
        return out

    def _fitting_prefix(self, text: str, budget: int) -> int:
        """Length of the longest prefix within ``budget`` tokens (bisection), at least 1."""
        low, high = 1, min(len(text) - 1, budget * _PREFIX_CHARS_PER_TOKEN)
        while low < high:
            middle = (low + high + 1) // 2
            if self.tokens(text[:middle]) <= budget:
                low = middle
            else:
                high = middle - 1
        space = max(text.rfind(" ", 0, low + 1), text.rfind("\n", 0, low + 1))
        return space if space > low // 2 else low


def _blocks(body: str) -> Iterator[tuple[str, UnitKind, bool]]:
    """(text, kind, blank line before) for each paragraph and fenced code block."""
    lines = body.split("\n")
    fences = dict(code_fence_spans(lines))
    paragraph: list[str] = []
    blank_before = False
    index = 0
    while index < len(lines):
        line = lines[index]
        if index in fences or not line.strip():
            if paragraph:
                yield "\n".join(paragraph), "prose", blank_before
                paragraph, blank_before = [], False
            if index in fences:
                end = fences[index]
                yield "\n".join(lines[index:end]), "code", blank_before
                blank_before, index = False, end
                continue
            blank_before = True
        else:
            paragraph.append(line)
        index += 1
    if paragraph:
        yield "\n".join(paragraph), "prose", blank_before


def _closing_fence(lines: Sequence[str]) -> str:
    """The block's closing fence line, or one made from its opening for an unclosed block."""
    marker = _FENCE_MARKER.match(lines[0])
    fence = marker.group(1) if marker else "```"
    last = lines[-1].strip()
    if len(lines) > 1 and last and set(last) == {fence[0]} and len(last) >= len(fence):
        return lines[-1]
    return lines[0][: len(lines[0]) - len(lines[0].lstrip())] + fence


def _breaks(text: str) -> Iterator[re.Match[str]]:
    """Places where a sentence or a line ends (the match covers the separating space)."""
    yield from sorted(
        [*_SENTENCE_END.finditer(text), *re.finditer(r"\n+", text)], key=lambda m: m.start()
    )


def _spans(text: str, sep: str, separators: Iterator[re.Match[str]]) -> Iterator[tuple[str, str]]:
    """Cut ``text`` at each separator match: (piece, whitespace before it); none empty."""
    start = 0
    for match in separators:
        cut = match.end(1) if match.re is _SENTENCE_END else match.start()
        if cut > start:
            yield text[start:cut], sep
            sep = text[cut : match.end()]
            start = match.end()
    if start < len(text):
        yield text[start:], sep
