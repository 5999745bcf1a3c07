"""Slack mrkdwn where it is still used: escaping, links; cutting text to Slack's limits."""

from __future__ import annotations

import html
import random
import re

import pytest

from bot.mrkdwn import escape_mrkdwn, mrkdwn_link, split_text, truncate_mrkdwn
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


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text.replace("```", ""))


def test_split_short_text_and_bad_limit() -> None:
    assert split_text("short", 3000) == ["short"]
    assert split_text("\n \n", 3000) == []
    with pytest.raises(InputError):
        split_text("text", 5)


def test_split_prefers_paragraphs_then_lines_then_words() -> None:
    first, second = "alpha " * 8, "beta " * 4 + "\nbeta " * 4
    pieces = split_text(f"{first.strip()}\n\n{second.strip()}", 80)
    assert pieces == [first.strip(), second.strip()]  # not at the later line break
    lines = split_text("\n".join(["x" * 30] * 5), 70)
    assert lines == ["x" * 30 + "\n" + "x" * 30, "x" * 30 + "\n" + "x" * 30, "x" * 30]
    words = split_text("word " * 40, 50)
    assert all(len(p) <= 50 and not p.startswith(" ") for p in words)
    assert all(set(p.split()) == {"word"} for p in words)


def test_split_keeps_a_fitting_code_block_whole() -> None:
    code = "```\n" + "\n".join(f"line {i}" for i in range(20)) + "\n```"
    text = "Intro " * 20 + "\n" + code + "\n" + "outro " * 20
    pieces = split_text(text, len(code) + 10)
    assert code in pieces
    assert all(_fences_balanced(p) for p in pieces)


def test_split_reopens_fences_in_a_long_code_block() -> None:
    body = [f"row {i:03d} = value & more" for i in range(200)]
    text = "Before\n\n```\n" + "\n".join(body) + "\n```\n\nAfter"
    pieces = split_text(text, 500)
    assert len(pieces) > 5
    assert all(len(p) <= 500 and _fences_balanced(p) for p in pieces)
    code_lines = [line for p in pieces for line in p.split("\n") if line.startswith("row ")]
    assert code_lines == body
    assert pieces[0] == "Before"
    assert pieces[-1].endswith("After")


def test_split_never_breaks_links_or_entities() -> None:
    link = "<https://example.com/page|a label with spaces>"
    text = " ".join([link, "a &amp; b &lt;c&gt;"] * 30)
    pieces = split_text(text, 60)
    for piece in pieces:
        assert len(piece) <= 60
        assert piece.count("<") == piece.count(">")
        assert not re.search(r"&(?!amp;|lt;|gt;)", piece)
    assert _squash("".join(pieces)) == _squash(text)


def test_split_hard_cuts_a_word_longer_than_the_limit() -> None:
    pieces = split_text("x" * 130, 50)
    assert pieces == ["x" * 50, "x" * 50, "x" * 30]


def test_split_random_documents_keep_every_character() -> None:
    rng = random.Random(7)
    words = ["alpha", "**beta**", "`code`", "[link](https://x.io/a)", "a&b", "<tag>", "_it_"]
    for _ in range(20):
        parts = []
        for _ in range(rng.randint(5, 40)):
            if rng.random() < 0.2:
                lines = [" ".join(rng.choices(words, k=rng.randint(1, 12))) for _ in range(15)]
                parts.append("```\n" + "\n".join(lines) + "\n```")
            else:
                parts.append(" ".join(rng.choices(words, k=rng.randint(1, 80))))
        text = "\n\n".join(parts)
        limit = rng.choice([80, 300, 1000])
        pieces = split_text(text, limit)
        assert all(len(p) <= limit and _fences_balanced(p) for p in pieces)
        assert _squash("".join(pieces)) == _squash(text)


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
