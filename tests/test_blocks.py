"""Block Kit builders: Slack's limits, sources, buttons and the status messages."""

from __future__ import annotations

import json
import re

import pytest
from slack_sdk.models.blocks import Block as SdkBlock

from bot.blocks import (
    CONTINUED_NOTE,
    CUT_NOTE,
    FEEDBACK_DOWN,
    FEEDBACK_UP,
    MAX_BLOCKS,
    MAX_CONTEXT_ELEMENTS,
    MAX_FALLBACK_CHARS,
    MAX_MARKDOWN_CHARS,
    MAX_MESSAGE_TEXT_CHARS,
    answer_blocks,
    answer_fallback_text,
    answer_messages,
    error_blocks,
    feedback_ack_text,
    reindex_failed_blocks,
    reindex_progress_blocks,
    reindex_summary_blocks,
    text_chars,
)
from rag_core.errors import InputError
from rag_core.types import Citation


def _citations(count: int) -> list[Citation]:
    return [
        Citation(
            number=n,
            title=f"Guide {n}",
            url=f"https://docs.example.com/guide-{n}#part",
            path=f"guides/guide-{n}.md",
            heading="Part",
        )
        for n in range(1, count + 1)
    ]


def _assert_valid(blocks: list[dict]) -> None:
    """Slack's own models accept every block, and the message keeps to 50 blocks."""
    assert len(blocks) <= MAX_BLOCKS
    json.dumps(blocks)
    for block in blocks:
        SdkBlock.parse(block).validate_json()


def _long_answer(chars: int) -> str:
    paragraph = "The **indexer** reads `docs/` and [splits](https://x.io/s) text into chunks [1]. "
    code = "```python\nfor chunk in chunks:\n    store.add(chunk)  # <batch> & flush\n```"
    parts: list[str] = []
    while sum(len(p) + 2 for p in parts) < chars:
        parts.append(paragraph * 6 if len(parts) % 5 else code)
    return "\n\n".join(parts)[:chars]


def _markdown(blocks: list[dict]) -> list[str]:
    return [b["text"] for b in blocks if b["type"] == "markdown"]


def test_a_40000_character_answer_keeps_to_the_limits() -> None:
    blocks = answer_blocks(_long_answer(40_000), _citations(12), answer_id="a1", note="A note.")
    _assert_valid(blocks)
    [body] = _markdown(blocks)
    assert blocks[0]["type"] == "markdown"
    assert len(body) <= MAX_MARKDOWN_CHARS
    assert text_chars(blocks) <= MAX_MESSAGE_TEXT_CHARS
    assert len(body) > MAX_MESSAGE_TEXT_CHARS - 2500  # the room is used
    assert body.endswith("…") or body.endswith("…\n```")
    assert body.count("```") % 2 == 0  # a cut code block is closed again
    kinds = [b["type"] for b in blocks]
    assert kinds[-4:] == ["context", "context", "context", "actions"]
    notes = [e["text"] for e in blocks[-3]["elements"] + blocks[-2]["elements"]]
    assert notes == ["A note.", CUT_NOTE]


def test_an_answer_that_fits_is_kept_whole_as_markdown() -> None:
    answer = _long_answer(8_000) + "\n\n| a | b |\n|---|---|\n| 1 | 2 |"
    blocks = answer_blocks(answer, [], answer_id="a")
    _assert_valid(blocks)
    assert _markdown(blocks) == [answer.strip()]  # standard Markdown, tables included
    assert CUT_NOTE not in json.dumps(blocks)


def test_a_long_answer_in_a_thread_goes_on_in_more_messages() -> None:
    answer = _long_answer(40_000)
    messages = answer_messages(answer, _citations(12), answer_id="a1", note="A note.")

    assert len(messages) >= 4
    for message in messages:
        _assert_valid(message)
        assert text_chars(message) <= MAX_MESSAGE_TEXT_CHARS
    main, *more = messages
    assert main[0]["type"] == "markdown" and main[-1]["type"] == "actions"
    notes = [e["text"] for b in main[-3:-1] for e in b["elements"]]
    assert notes == ["A note.", CONTINUED_NOTE]
    assert all([b["type"] for b in m] == ["markdown"] for m in more)
    bodies = [b["text"] for m in messages for b in m if b["type"] == "markdown"]
    assert all(body.count("```") % 2 == 0 for body in bodies)  # fences closed per message
    squash = re.compile(r"\s+|```")
    assert squash.sub("", "".join(bodies)) == squash.sub("", answer)  # nothing lost
    short = answer_messages("Short [1].", _citations(1), answer_id="a1")
    assert len(short) == 1 and CONTINUED_NOTE not in json.dumps(short)


def test_the_model_cannot_ping_anyone() -> None:
    answer = "Ask <!channel> or <!here>, <@U123>, <!subteam^S1|@ops> and @everyone [1]."
    blocks = answer_blocks(answer, _citations(1), answer_id="a")
    [body] = _markdown(blocks)
    assert "<!" not in body and "<@" not in body
    assert not re.search(r"(?<!\w)@(channel|here|everyone)\b", body)
    assert "channel" in body and "here" in body and "ops" in body  # still readable
    fallback = answer_fallback_text(answer, [])
    assert "<!" not in fallback and "<@" not in fallback


def test_the_most_sources_still_fit_in_one_message() -> None:
    blocks = answer_blocks(_long_answer(40_000), _citations(60), answer_id="a", note="n")
    _assert_valid(blocks)
    assert text_chars(blocks) <= MAX_MESSAGE_TEXT_CHARS
    assert _markdown(blocks)
    assert blocks[-1]["type"] == "actions"


def test_sources_are_numbered_like_the_citations() -> None:
    citations = _citations(3)
    blocks = answer_blocks("Answer [1] and [3].", citations, answer_id="a")
    sources = blocks[1]
    assert sources["type"] == "context"
    texts = [element["text"] for element in sources["elements"]]
    assert texts == [
        "*Sources:*",
        "<https://docs.example.com/guide-1#part|[1] Guide 1>",
        "<https://docs.example.com/guide-2#part|[2] Guide 2>",
        "<https://docs.example.com/guide-3#part|[3] Guide 3>",
    ]


def test_many_sources_spread_over_context_blocks() -> None:
    blocks = answer_blocks("Answer.", _citations(23), answer_id="a")
    _assert_valid(blocks)
    contexts = [b for b in blocks if b["type"] == "context"]
    assert [len(b["elements"]) for b in contexts] == [10, 10, 4]
    assert all(len(b["elements"]) <= MAX_CONTEXT_ELEMENTS for b in contexts)
    labels = [e["text"] for b in contexts for e in b["elements"]][1:]
    numbers = [int(re.search(r"\|\[(\d+)\]", label).group(1)) for label in labels]
    assert numbers == list(range(1, 24))


def test_source_titles_are_escaped_and_urlless_sources_show_the_path() -> None:
    citations = [
        Citation(1, "A | B > C & D", "https://x.io/a", "a.md", ""),
        Citation(2, "Local notes", "", "notes/local.md", "Setup"),
    ]
    elements = answer_blocks("Text", citations, answer_id="a")[1]["elements"]
    assert elements[1]["text"] == "<https://x.io/a|[1] A ∣ B &gt; C &amp; D>"
    assert elements[2]["text"] == "[2] Local notes — notes/local.md"


def test_buttons_carry_the_answer_id() -> None:
    actions = answer_blocks("Text", [], answer_id="job-42")[-1]
    assert actions["type"] == "actions"
    assert [(e["action_id"], e["value"]) for e in actions["elements"]] == [
        (FEEDBACK_UP, "job-42"),
        (FEEDBACK_DOWN, "job-42"),
    ]
    assert "👍" in actions["elements"][0]["text"]["text"]
    assert "👎" in actions["elements"][1]["text"]["text"]
    with pytest.raises(InputError):
        answer_blocks("Text", [], answer_id="")


def test_fallback_text_is_plain_with_the_sources() -> None:
    text = answer_fallback_text(
        "## Setup\n\nThe **answer** is [here](https://x.io/a) [1].\n\n- one\n- two", _citations(2)
    )
    assert text == (
        "Setup\n\nThe answer is here (https://x.io/a) [1].\n\n• one\n• two\n\n"
        "Sources: [1] Guide 1 <https://docs.example.com/guide-1#part> "
        "[2] Guide 2 <https://docs.example.com/guide-2#part>"
    )


def test_fallback_text_is_trimmed_but_keeps_the_sources() -> None:
    text = answer_fallback_text(_long_answer(40_000), _citations(3))
    assert len(text) <= MAX_FALLBACK_CHARS
    answer, sources = text.rsplit("\n\n", 1)
    assert answer.endswith("…") or answer.endswith("…\n```")
    assert sources.startswith("Sources: [1] Guide 1")


def test_status_messages() -> None:
    error = error_blocks("Milvus <down> & out\nsecond line")
    _assert_valid(error)
    assert error[0]["text"]["text"] == ":warning: Milvus &lt;down&gt; &amp; out second line"
    assert reindex_failed_blocks("No such path: /x")[0]["text"]["text"].endswith("No such path: /x")


def test_feedback_ack_text() -> None:
    assert "Thanks" in feedback_ack_text("up")
    assert feedback_ack_text("feedback_down") == feedback_ack_text("down")
    assert feedback_ack_text("up") != feedback_ack_text("down")
    with pytest.raises(InputError):
        feedback_ack_text("sideways")


def test_reindex_progress() -> None:
    blocks = reindex_progress_blocks("embedding", 250, 1000, files=12, chunks=1000)
    _assert_valid(blocks)
    text = blocks[0]["text"]["text"]
    assert "embedding" in text
    assert "25% (250/1,000)" in text
    assert "▓" * 5 + "░" * 15 in text
    assert blocks[1]["elements"][0]["text"] == "Files: 12 · Chunks: 1,000"
    done = reindex_progress_blocks("storing", 1200, 1000)
    assert len(done) == 1
    assert "100% (1,000/1,000)" in done[0]["text"]["text"]
    assert "0 done" in reindex_progress_blocks("loading", 0, 0)[0]["text"]["text"]
    fetched = reindex_progress_blocks("wiki: fetching", 1, 1, detail="commit 0123456 (2026-11-30)")
    _assert_valid(fetched)
    assert fetched[-1]["elements"][0]["text"] == "commit 0123456 (2026-11-30)"


def test_reindex_summary() -> None:
    summary = {
        "version": "ragbot_docs_v3",
        "files": 1204,
        "skipped": 2,
        "chunks_total": 9000,
        "chunks_new": 120,
        "chunks_unchanged": 8800,
        "chunks_deleted": 80,
        "seconds": 93.25,
        "skipped_files": [{"path": "a.bin", "reason": "binary"}],
    }
    blocks = reindex_summary_blocks([summary])
    _assert_valid(blocks)
    fields = [f["text"] for b in blocks[1:] for f in b["fields"]]
    assert fields == [
        "*Files*\n1,204",
        "*Skipped*\n2",
        "*Chunks*\n9,000",
        "*New chunks*\n120",
        "*Unchanged chunks*\n8,800",
        "*Deleted chunks*\n80",
        "*Time*\n93.2 s",
        "*Index version*\nragbot_docs_v3",
    ]
