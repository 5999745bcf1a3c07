"""Standard Markdown made safe to show in Slack: no pings, whole or streamed.

Answers go out as Slack ``markdown`` blocks and streamed ``markdown_text``, which Slack
renders as standard Markdown. What must not get through is Slack's own syntax for
notifying people, whether the model wrote it or copied it from the docs:
``<!channel>``, ``<!here>``, ``<!everyone>``, ``<!subteam^…>``, ``<@U…>`` and the bare
words ``@channel``, ``@here`` and ``@everyone``. Each is shown as plain text with an
invisible word joiner after the ``@``, so it reads the same and notifies nobody.

:class:`StreamGuard` does the same to text that arrives piece by piece, holding back a
tail that could still become a ping (``<!her`` …) until the next piece decides it.
Pure functions, no I/O.
"""

from __future__ import annotations

import re

WORD_JOINER = "\u2060"
_SPECIAL = re.compile(r"<([!@#])([^<>\n]{1,200})>")
_BARE = re.compile(r"(?<![\w@])@(here|channel|everyone)\b", re.IGNORECASE)
_OPEN_TAIL = re.compile(r"<[!@#]?[^<>\n]{0,200}$")
_AT_TAIL = re.compile(r"(?<![\w@])@[a-zA-Z]{0,8}$")
_BROADCASTS = ("here", "channel", "everyone")
CONTEXT_CHARS = 16  # of text already let through, to judge what comes next


def safe_markdown(text: str) -> str:
    """``text`` with every Slack mention and broadcast turned into harmless text."""
    return _BARE.sub(_defuse_bare, _SPECIAL.sub(_defuse_special, text))


def _defuse_special(match: re.Match[str]) -> str:
    sigil, inner = match.group(1), match.group(2)
    target, _, label = inner.partition("|")
    if sigil == "#":
        return f"#{label or target}"
    if label:
        name = label.lstrip("@")
    elif sigil == "!":
        name = target.split("^")[-1]
    else:
        name = target
    return f"@{WORD_JOINER}{name}"


def _defuse_bare(match: re.Match[str]) -> str:
    return f"@{WORD_JOINER}{match.group(1)}"


class StreamGuard:
    """:func:`safe_markdown` for a stream: ``feed`` each piece, ``flush`` at the end.

    Everything returned, joined, equals ``safe_markdown`` of everything fed, except that
    a tail which could still turn into a ping is held back until it cannot.
    """

    def __init__(self) -> None:
        self._pending = ""
        self._before = ""  # the last characters let through: ``x@`` + ``here`` is no ping

    def feed(self, text: str) -> str:
        """What of ``text`` (after the held tail) is safe to show now."""
        self._pending += text
        cut = _unsettled_from(self._pending)
        ready, self._pending = self._pending[:cut], self._pending[cut:]
        return self._safe(ready)

    def flush(self) -> str:
        """The held tail, made safe: the stream has ended."""
        rest, self._pending = self._pending, ""
        return self._safe(rest)

    def _safe(self, text: str) -> str:
        if not text:
            return ""
        # No ping can span the cut (its start would have been held back), so what was
        # shown of the context is a prefix of the whole, shown the same way.
        shown = safe_markdown(self._before + text)[len(safe_markdown(self._before)) :]
        self._before = (self._before + text)[-CONTEXT_CHARS:]
        return shown


def _unsettled_from(text: str) -> int:
    """Where the tail of ``text`` that could still become a ping starts (``len`` if none)."""
    starts = [len(text)]
    if opening := _OPEN_TAIL.search(text):
        starts.append(opening.start())
    if (at := _AT_TAIL.search(text)) is not None:
        word = at.group(0)[1:].lower()
        if any(name.startswith(word) for name in _BROADCASTS) or word in _BROADCASTS:
            starts.append(at.start())
    return min(starts)
