"""Slack mrkdwn where it is still used: escaping, links, cutting to a limit."""

from __future__ import annotations

import html

import pytest

from bot.mrkdwn import escape_mrkdwn, mrkdwn_link, truncate_mrkdwn
from rag_core.errors import InputError


def _fences_balanced(piece: str) -> bool:
    return sum(1 for line in piece.split("\n") if line.strip() == "```") % 2 == 0


def test_escaping_leaves_no_slack_syntax() -> None:
    assert escape_mrkdwn("Tom & Jerry <@U123> <!channel>") == (
        "Tom &amp; Jerry &lt;@U123&gt; &lt;!channel&gt;"
    )


def test_links_with_pipes_and_ampersands_stay_one_link() -> None:
    link = mrkdwn_link("https://x.io/p|q?m=1&n=2 x", "a | b > c")
    assert link == "<https://x.io/p%7Cq?m=1&amp;n=2%20x|a ∣ b &gt; c>"
    assert link.count("|") == 1
    assert mrkdwn_link("https://x.io") == "<https://x.io>"


def test_truncate() -> None:
    assert truncate_mrkdwn("short", 100) == "short"
    cut = truncate_mrkdwn("word " * 100, 50)
    assert len(cut) <= 50
    assert cut.endswith("word…")
    code = "```\n" + "\n".join(["line &amp; x"] * 50) + "\n```"
    closed = truncate_mrkdwn(code, 100)
    assert len(closed) <= 100
    assert closed.endswith("…\n```")
    assert _fences_balanced(closed)
    assert html.unescape(closed).count("&") == closed.count("&amp;")
    links = truncate_mrkdwn("see <https://x.io/a-long-path|label> " * 5, 40)
    assert links.count("<") == links.count(">")
    with pytest.raises(InputError):
        truncate_mrkdwn("text", 5)
