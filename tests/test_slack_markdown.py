"""Answers as standard Markdown: pings defused, whole or streamed, and plain-text
fallbacks."""

from __future__ import annotations

import random
import re

import pytest

from bot.plain_text import markdown_to_plain
from bot.slack_markdown import WORD_JOINER, StreamGuard, safe_markdown

PINGS = re.compile(r"<[!@]|(?<![\w@])@(channel|here|everyone)\b", re.IGNORECASE)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("<!channel> look", f"@{WORD_JOINER}channel look"),
        ("<!here|here> and <!everyone>", f"@{WORD_JOINER}here and @{WORD_JOINER}everyone"),
        ("ask <@U123ABC>", f"ask @{WORD_JOINER}U123ABC"),
        ("ask <@U1|alice>", f"ask @{WORD_JOINER}alice"),
        ("team <!subteam^S42|@ops>", f"team @{WORD_JOINER}ops"),
        ("in <#C1|general>", "in #general"),
        ("@here and @Channel!", f"@{WORD_JOINER}here and @{WORD_JOINER}Channel!"),
        ("mail me@here.com, @heretic, `a < b`", "mail me@here.com, @heretic, `a < b`"),
        ("| a | b |\n|---|---|", "| a | b |\n|---|---|"),
    ],
)
def test_pings_are_defused_and_the_rest_kept(text: str, shown: str) -> None:
    assert safe_markdown(text) == shown
    assert not PINGS.search(safe_markdown(text))


def test_streamed_pieces_are_defused_like_the_whole() -> None:
    text = (
        "Ping <!channel> or <@U123|bob> now, @here too; a < b and c > d. "
        "Email x@here.org about @everyone's <#C9|docs>.\n"
    ) * 3
    rng = random.Random(7)
    for _ in range(200):
        guard, shown, at = StreamGuard(), [], 0
        while at < len(text):
            step = rng.randint(1, 9)
            shown.append(guard.feed(text[at : at + step]))
            assert not PINGS.search("".join(shown)), shown  # nothing shown so far pings
            at += step
        shown.append(guard.flush())
        assert "".join(shown) == safe_markdown(text)


def test_a_stream_holds_back_only_what_could_become_a_ping() -> None:
    guard = StreamGuard()
    assert guard.feed("Hello <!ch") == "Hello "
    assert guard.feed("annel> and @ev") == f"@{WORD_JOINER}channel and "
    assert guard.feed("ening") == "@evening"
    assert guard.flush() == ""


def test_plain_text_fallback() -> None:
    text = (
        "# Title\n\nUse **bold** and [the docs](https://x.io/a) [1].\n\n- one\n- two\n\n"
        "1. first\n2. second\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```python\nx = 1\n```\n"
    )
    assert markdown_to_plain(text) == (
        "Title\n\nUse bold and the docs (https://x.io/a) [1].\n\n• one\n• two\n\n"
        "1. first\n2. second\n\na | b\n1 | 2\n\nx = 1"
    )
