"""Markdown -> Slack mrkdwn conversion, and cutting mrkdwn to Slack's limits."""

from __future__ import annotations

import html
import random
import re

import pytest

from bot.mrkdwn import (
    escape_mrkdwn,
    markdown_to_mrkdwn,
    mrkdwn_link,
    split_mrkdwn,
    truncate_mrkdwn,
)
from rag_core.errors import InputError


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("**bold** and __bold__", "*bold* and *bold*"),
        ("*italic* and _italic_", "_italic_ and _italic_"),
        ("~~gone~~", "~gone~"),
        ("***both***", "*_both_*"),
        ("*it **bold** it*", "_it *bold* it_"),
        ("**bold _it_ bold**", "*bold _it_ bold*"),
        ("snake_case_name and 2 * 3 * 4", "snake_case_name and 2 * 3 * 4"),
        (r"\*not italic\*", "*not italic*"),
        ("[the docs](https://example.com/a)", "<https://example.com/a|the docs>"),
        ("[**bold** link](https://x.io)", "<https://x.io|bold link>"),
        ("![diagram](https://x.io/d.png)", "<https://x.io/d.png|diagram>"),
        ("<https://auto.example>", "<https://auto.example>"),
        ("[setup](docs/setup.md)", "setup"),
        ("see https://example.com/x_y_z.", "see https://example.com/x_y_z."),
        ("https://en.wikipedia.org/wiki/A_(b) ok", "https://en.wikipedia.org/wiki/A_(b) ok"),
        ("# Title", "*Title*"),
        ("###### Deep ##", "*Deep*"),
        ("## Sub **bold** title", "*Sub bold title*"),
        ("#hashtag", "#hashtag"),
        ("Title\n=====", "*Title*"),
        ("- one\n* two\n+ three", "• one\n• two\n• three"),
        ("- top\n  - nested\n    - deeper", "• top\n  • nested\n    • deeper"),
        ("1. first\n2) second\n10. tenth", "1. first\n2. second\n10. tenth"),
        ("> quoted **b**", "> quoted *b*"),
        ("> outer\n>> inner", "> outer\n> inner"),
        ("a\n\n---\n\nb", "a\n\n──────────\n\nb"),
        ("line one  \nline two\\\nthree", "line one\nline two\nthree"),
        ("a\n\n\n\nb", "a\n\nb"),
        ("Cites [1] and [2, 3].", "Cites [1] and [2, 3]."),
        ("See [docs][d] and [2].\n\n[d]: https://x.io/d", "See <https://x.io/d|docs> and [2]."),
    ],
)
def test_markdown_rules(markdown: str, expected: str) -> None:
    assert markdown_to_mrkdwn(markdown) == expected


def test_special_characters_are_escaped_outside_produced_links() -> None:
    converted = markdown_to_mrkdwn("Tom & Jerry: a < b > c <@U123> <!channel> [x](https://y.io)")
    assert converted == (
        "Tom &amp; Jerry: a &lt; b &gt; c &lt;@U123&gt; &lt;!channel&gt; <https://y.io|x>"
    )


def test_links_with_pipes_and_ampersands_stay_one_link() -> None:
    converted = markdown_to_mrkdwn("[a | b > c](https://x.io/p|q?m=1&n=2)")
    assert converted == "<https://x.io/p%7Cq?m=1&amp;n=2|a ∣ b &gt; c>"
    assert converted.count("|") == 1
    assert mrkdwn_link("https://x.io/a b") == "<https://x.io/a%20b>"


def test_fenced_code_is_untouched_but_for_escaping() -> None:
    code = [
        "def f(a, b):  # **not bold** _not italic_",
        "    return a < b and b > 0 & True  # [x](https://y.io)",
        "# not a heading",
        "- not a bullet",
        "| not | a | table |",
    ]
    markdown = "Intro **bold**\n\n```python\n" + "\n".join(code) + "\n```\n\nAfter *it*"
    lines = markdown_to_mrkdwn(markdown).split("\n")
    start = lines.index("```")
    assert lines[0] == "Intro *bold*"
    assert lines[start + 1 : start + 1 + len(code)] == [escape_mrkdwn(line) for line in code]
    assert lines[start + 1 + len(code)] == "```"
    assert lines[-1] == "After _it_"
    assert "python" not in "\n".join(lines)


def test_indented_and_tilde_fences_and_unclosed_fences() -> None:
    nested = "1. Run:\n   ```bash\n   make *all*\n   ```\n2. Done"
    assert markdown_to_mrkdwn(nested) == "1. Run:\n```\nmake *all*\n```\n2. Done"
    assert markdown_to_mrkdwn("~~~\n**x**\n~~~") == "```\n**x**\n```"
    assert markdown_to_mrkdwn("```\n**x**") == "```\n**x**\n```"


def test_blank_lines_collapse_outside_code_only() -> None:
    markdown = "\n\nA\n\n\n\nB\n\n```\nx\n\n\n\ny\n```\n\n\n"
    assert markdown_to_mrkdwn(markdown) == "A\n\nB\n\n```\nx\n\n\n\ny\n```"


def test_only_web_and_mail_links_are_linked() -> None:
    converted = markdown_to_mrkdwn("[x](javascript:alert(1)) [m](mailto:a@b.io) [r](../a.md)")
    assert converted == "x <mailto:a@b.io|m> r"


def test_inline_code_is_untouched_but_for_escaping() -> None:
    converted = markdown_to_mrkdwn("Run `a**b** <c> _d_` then **go** and `` x ``")
    assert converted == "Run `a**b** &lt;c&gt; _d_` then *go* and `x`"


def test_tables_become_aligned_code_blocks() -> None:
    markdown = "Intro\n\n| Name | Value |\n|:-----|------:|\n| **a** | 1 |\n| bb & c | 22 |\n\nEnd"
    assert markdown_to_mrkdwn(markdown) == (
        "Intro\n\n```\nName   | Value\n-------+------\na      | 1\nbb &amp; c | 22\n```\n\nEnd"
    )


def test_table_needs_a_delimiter_row() -> None:
    assert markdown_to_mrkdwn("a | b\nc | d") == "a | b\nc | d"


def _fences_balanced(piece: str) -> bool:
    return sum(1 for line in piece.split("\n") if line.strip() == "```") % 2 == 0


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text.replace("```", ""))


def test_split_short_text_and_bad_limit() -> None:
    assert split_mrkdwn("short", 3000) == ["short"]
    assert split_mrkdwn("\n \n", 3000) == []
    with pytest.raises(InputError):
        split_mrkdwn("text", 5)


def test_split_prefers_paragraphs_then_lines_then_words() -> None:
    first, second = "alpha " * 8, "beta " * 4 + "\nbeta " * 4
    pieces = split_mrkdwn(f"{first.strip()}\n\n{second.strip()}", 80)
    assert pieces == [first.strip(), second.strip()]  # not at the later line break
    lines = split_mrkdwn("\n".join(["x" * 30] * 5), 70)
    assert lines == ["x" * 30 + "\n" + "x" * 30, "x" * 30 + "\n" + "x" * 30, "x" * 30]
    words = split_mrkdwn("word " * 40, 50)
    assert all(len(p) <= 50 and not p.startswith(" ") for p in words)
    assert all(set(p.split()) == {"word"} for p in words)


def test_split_keeps_a_fitting_code_block_whole() -> None:
    code = "```\n" + "\n".join(f"line {i}" for i in range(20)) + "\n```"
    text = "Intro " * 20 + "\n" + code + "\n" + "outro " * 20
    pieces = split_mrkdwn(text, len(code) + 10)
    assert code in pieces
    assert all(_fences_balanced(p) for p in pieces)


def test_split_reopens_fences_in_a_long_code_block() -> None:
    body = [f"row {i:03d} = value & more" for i in range(200)]
    text = "Before\n\n```\n" + "\n".join(body) + "\n```\n\nAfter"
    pieces = split_mrkdwn(text, 500)
    assert len(pieces) > 5
    assert all(len(p) <= 500 and _fences_balanced(p) for p in pieces)
    code_lines = [line for p in pieces for line in p.split("\n") if line.startswith("row ")]
    assert code_lines == body
    assert pieces[0] == "Before"
    assert pieces[-1].endswith("After")


def test_split_never_breaks_links_or_entities() -> None:
    link = "<https://example.com/page|a label with spaces>"
    text = " ".join([link, "a &amp; b &lt;c&gt;"] * 30)
    pieces = split_mrkdwn(text, 60)
    for piece in pieces:
        assert len(piece) <= 60
        assert piece.count("<") == piece.count(">")
        assert not re.search(r"&(?!amp;|lt;|gt;)", piece)
    assert _squash("".join(pieces)) == _squash(text)


def test_split_hard_cuts_a_word_longer_than_the_limit() -> None:
    pieces = split_mrkdwn("x" * 130, 50)
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
        text = markdown_to_mrkdwn("\n\n".join(parts))
        limit = rng.choice([80, 300, 1000])
        pieces = split_mrkdwn(text, limit)
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
