"""Answer generation against the loopback Chat Completions server, with the real openai client."""

from __future__ import annotations

import socket
import time

import pytest

from rag_core.citations import extract_citations
from rag_core.errors import ConfigError, GenerationError, InputError
from rag_core.generation import BUSY_MESSAGE, ChatGenerator, ThinkingFilter, build_openai_client
from rag_core.offline_answers import (
    EXTRACTIVE_LABEL,
    NOT_COVERED_TEXT,
    extractive_answer,
    not_covered_answer,
)
from rag_core.prompts import history_messages
from rag_core.types import Chunk, ScoredChunk, Turn

FAST = 0.001  # Retry-After in seconds, so the client's retries take no time


def passage(n: int, text: str = "", heading: tuple[str, ...] = ("Setup",)) -> ScoredChunk:
    chunk = Chunk(
        doc_path=f"guides/doc{n}.md",
        title=f"Guide {n}",
        heading_path=heading,
        anchor="setup",
        url=f"https://docs.example.com/guides/doc{n}#setup",
        chunk_index=0,
        text=text or f"Body of guide {n}: step {n} is to run make target-{n}.",
    )
    return ScoredChunk(chunk=chunk, score=1.0 / n)


def passages(count: int) -> list[ScoredChunk]:
    return [passage(n) for n in range(1, count + 1)]


def generator(server, *, timeout_s: float = 5.0, max_retries: int = 2, api_key: str = ""):
    client = build_openai_client(
        api_key=api_key, base_url=server.base_url, timeout_s=timeout_s, max_retries=max_retries
    )
    return ChatGenerator(client, model="stub-chat", temperature=0.2, max_tokens=321)


# Prompt and request


@pytest.mark.parametrize("stream", [False, True])
def test_the_token_limit_goes_under_the_name_the_server_takes(openai_server, stream):
    openai_server.refuse_parameter("max_tokens")  # a newer OpenAI model
    newer = generator(openai_server)
    text = newer.answer("How do I install it?", passages(2), on_text=[].append if stream else None)
    assert text.text and [r.json.get("max_completion_tokens") for r in openai_server.requests] == [
        321
    ]

    openai_server.reset()
    openai_server.refuse_parameter("max_completion_tokens")  # an older compatible server
    older = generator(openai_server)
    for _ in range(2):
        older.answer("How do I install it?", passages(2), on_text=[].append if stream else None)
    sent = [sorted(k for k in r.json if k.startswith("max_")) for r in openai_server.requests]
    assert sent == [["max_completion_tokens"], ["max_tokens"], ["max_tokens"]]  # once refused


def test_prompt_numbers_passages_with_titles_paths_and_question(openai_server):
    answer = generator(openai_server).answer("How do I install it?", passages(2))

    (request,) = openai_server.requests
    body = request.json
    assert request.path == "/v1/chat/completions"
    limit = body["max_completion_tokens"]
    assert (body["model"], body["temperature"], limit) == ("stub-chat", 0.2, 321)
    assert "max_tokens" not in body  # newer OpenAI models refuse it
    system, user = body["messages"]
    assert system["role"] == "system"
    assert "[1]" in system["content"] and "language" in system["content"]
    assert user["role"] == "user"
    content = user["content"]
    assert "[1] Guide 1 — Setup (guides/doc1.md)\nBody of guide 1" in content
    assert "[2] Guide 2 — Setup (guides/doc2.md)\nBody of guide 2" in content
    assert content.index("[1] Guide 1") < content.index("[2] Guide 2")
    assert content.rstrip().endswith("How do I install it?")
    assert "How do I install it?" in answer.text
    assert [c.number for c in answer.citations] == [1, 2]
    assert answer.citations[0].url == "https://docs.example.com/guides/doc1#setup"
    assert answer.citations[0].path == "guides/doc1.md"
    assert answer.citations[0].heading == "Setup"


def test_placeholder_key_is_sent_when_only_a_base_url_is_set(openai_server):
    generator(openai_server).answer("Why?", passages(1))
    assert openai_server.requests[0].headers["authorization"] == "Bearer not-needed"


def test_history_is_sent_as_prior_messages(openai_server):
    history = [
        Turn("user", "How do I deploy?"),
        Turn("assistant", "Use the Helm chart [1]."),
    ]
    generator(openai_server).answer("And on staging?", passages(1), history=history)

    messages = openai_server.requests[0].json["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1]["content"] == "How do I deploy?"
    assert messages[2]["content"] == "Use the Helm chart [1]."
    assert "And on staging?" in messages[3]["content"]


def test_history_keeps_the_most_recent_turns_within_budget():
    history = [
        Turn("user" if i % 2 == 0 else "assistant", f"turn {i} " + "x" * 90) for i in range(6)
    ]
    kept = history_messages(history, max_turns=4, max_chars=250)
    assert [m["content"][:6] for m in kept] == ["turn 4", "turn 5"]
    kept = history_messages(history, max_turns=3, max_chars=10_000)
    assert [(m["role"], m["content"][:6]) for m in kept] == [
        ("assistant", "turn 3"),
        ("user", "turn 4"),
        ("assistant", "turn 5"),
    ]
    only_newest = history_messages([Turn("user", "y" * 500)], max_chars=100)
    assert only_newest == [{"role": "user", "content": "y" * 100}]
    with pytest.raises(InputError, match="role 'system'"):
        history_messages([Turn("system", "be nice")])


def test_empty_question_is_refused_without_a_request(openai_server):
    with pytest.raises(InputError):
        generator(openai_server).answer("   ", passages(1))
    assert openai_server.requests == []


def test_thinking_block_is_removed_from_the_answer(openai_server):
    openai_server.reply = lambda request: "<think>\nthe user wants [2]\n</think>\n\nRun it [1]."
    answer = generator(openai_server).answer("How?", passages(2))
    assert answer.text == "Run it [1]."
    assert [c.title for c in answer.citations] == ["Guide 1"]


# Citations


def test_answer_citations_are_filtered_and_renumbered(openai_server):
    openai_server.reply = lambda request: "Install with pip [3]. Ignore this [7]. Then run it [1]."
    answer = generator(openai_server).answer("How?", passages(5))
    assert answer.text == "Install with pip [1]. Ignore this. Then run it [2]."
    assert [c.number for c in answer.citations] == [1, 2]
    assert [c.title for c in answer.citations] == ["Guide 3", "Guide 1"]
    assert [p.chunk.doc_path for p in answer.passages] == ["guides/doc3.md", "guides/doc1.md"]


@pytest.mark.parametrize(
    ("text", "expected", "sources"),
    [
        ("A [2, 4] and B [4].", "A [1, 2] and B [2].", [2, 4]),
        ("A [4][2] then [2].", "A [1][2] then [2].", [4, 2]),
        ("A [4,9, 2].", "A [1, 2].", [4, 2]),
        ("A [9][2].", "A [1].", [2]),
        ("A [9] [2].", "A [1].", [2]),
        ("Word [9] word[8] word.", "Word word word.", []),
        ("[9] Leading marker.", "Leading marker.", []),
        ("See [Passage 3] and [source 1].", "See [1] and [2].", [3, 1]),
        ("A [0] b [6].", "A b.", []),
        ("No citations at all.", "No citations at all.", []),
    ],
)
def test_extract_citations_markers(text, expected, sources):
    rewritten, citations, cited = extract_citations(text, passages(5))
    assert rewritten == expected
    assert [c.title for c in citations] == [f"Guide {n}" for n in sources]
    assert [c.number for c in citations] == list(range(1, len(sources) + 1))
    assert [p.chunk.title for p in cited] == [f"Guide {n}" for n in sources]


def test_extract_citations_leaves_code_and_links_alone():
    text = (
        "Index the first item [4] with `items[0]` or `a[2]`.\n"
        "```python\n"
        "x = a[1] + b[3]\n"
        "```\n"
        "See [1](https://example.com/a[2]) and [the guide](https://example.com) [2].\n"
        "~~~\n"
        "unclosed[3]"
    )
    rewritten, citations, _ = extract_citations(text, passages(5))
    assert rewritten == text.replace("item [4]", "item [1]")
    assert [c.title for c in citations] == ["Guide 4", "Guide 2"]
    assert "`items[0]` or `a[2]`" in rewritten
    assert "x = a[1] + b[3]" in rewritten
    assert "[1](https://example.com/a[2])" in rewritten
    assert rewritten.endswith("unclosed[3]")


# Failures after the client's retries


def test_rate_limited_twice_then_answers(openai_server):
    openai_server.fail(429, times=2, retry_after=FAST)
    answer = generator(openai_server, max_retries=2).answer("How?", passages(2))
    assert "[1]" in answer.text
    requests = openai_server.requests
    assert len(requests) == 3
    assert [r.headers.get("x-stainless-retry-count") for r in requests] == ["0", "1", "2"]


def test_rate_limited_always_is_busy(openai_server):
    openai_server.fail(429, times=None, retry_after=FAST)
    with pytest.raises(GenerationError) as caught:
        generator(openai_server, max_retries=1).answer("How?", passages(1))
    assert caught.value.busy is True
    assert str(caught.value) == BUSY_MESSAGE
    assert len(openai_server.requests) == 2


def test_quota_exhausted_is_not_busy(openai_server):
    openai_server.fail(429, times=None, code="insufficient_quota", message="You exceeded quota.")
    with pytest.raises(GenerationError, match="out of quota: You exceeded quota") as caught:
        generator(openai_server, max_retries=0).answer("How?", passages(1))
    assert caught.value.busy is False


def test_server_error_fails_after_all_retries(openai_server):
    openai_server.fail(500, times=None, retry_after=FAST)
    with pytest.raises(GenerationError) as caught:
        generator(openai_server, max_retries=2).answer("How?", passages(1))
    message = str(caught.value)
    assert "HTTP 500" in message and "stub-chat" in message
    assert openai_server.base_url in message
    assert "\n" not in message
    assert caught.value.busy is False
    assert len(openai_server.requests) == 3


def test_slow_server_times_out(openai_server):
    openai_server.delay(3.0, times=None)
    started = time.monotonic()
    with pytest.raises(GenerationError, match=r"stub-chat at .* timed out after 0\.3 s"):
        generator(openai_server, timeout_s=0.3, max_retries=1).answer("How?", passages(1))
    assert time.monotonic() - started < 2.5
    assert len(openai_server.requests) == 2


def test_unreachable_server_names_model_and_url():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = build_openai_client(
        api_key="", base_url=f"http://127.0.0.1:{port}/v1", timeout_s=1, max_retries=0
    )
    with pytest.raises(GenerationError) as caught:
        ChatGenerator(client, model="local-model").answer("How?", passages(1))
    assert str(caught.value) == (
        f"Could not connect to the language model local-model at http://127.0.0.1:{port}/v1."
    )


def test_bad_key_is_summarised_without_the_key(openai_server):
    secret = "sk-test-abcdef123456"
    openai_server.fail(401, times=None, message=f"Incorrect API key provided: {secret}.\nCheck it.")
    with pytest.raises(GenerationError, match="refused the API key \\(HTTP 401\\)") as caught:
        generator(openai_server, api_key=secret).answer("How?", passages(1))
    message = str(caught.value)
    assert "Incorrect API key provided" in message and "Check it." in message
    assert "abcdef123456" not in message and "\n" not in message
    assert openai_server.requests[0].headers["authorization"] == f"Bearer {secret}"
    assert len(openai_server.requests) == 1  # 401 is not retried


def test_unknown_model_names_the_model(openai_server):
    openai_server.fail(404, message="The model `stub-chat` does not exist")
    with pytest.raises(GenerationError) as caught:
        generator(openai_server).answer("How?", passages(1))
    assert str(caught.value) == (
        f"The model stub-chat was not found at {openai_server.base_url} (HTTP 404): "
        "The model `stub-chat` does not exist."
    )


def test_empty_reply_is_an_error(openai_server):
    openai_server.reply = lambda request: "  "
    with pytest.raises(GenerationError, match="empty answer"):
        generator(openai_server).answer("How?", passages(1))


# Follow-up questions


def test_condense_sends_history_and_returns_the_rewrite(openai_server):
    openai_server.reply = lambda request: "Standalone question: How do I deploy ragbot on staging?"
    history = [Turn("user", "How do I deploy ragbot?"), Turn("assistant", "With Helm [1].")]
    rewritten = generator(openai_server).condense("And on staging?", history)

    assert rewritten == "How do I deploy ragbot on staging?"
    body = openai_server.requests[0].json
    assert body["temperature"] == 0
    prompt = body["messages"][-1]["content"]
    assert "User: How do I deploy ragbot?" in prompt
    assert "Assistant: With Helm [1]." in prompt
    assert "And on staging?" in prompt


def test_condense_without_history_makes_no_request(openai_server):
    assert generator(openai_server).condense("How do I deploy?", []) == "How do I deploy?"
    assert openai_server.requests == []


def test_condense_falls_back_when_the_model_says_nothing(openai_server):
    openai_server.reply = lambda request: ""
    history = [Turn("user", "How do I deploy?")]
    assert generator(openai_server).condense("And staging?", history) == "And staging?"
    assert len(openai_server.requests) == 1


# Without a language model


def test_extractive_answer_is_labelled_and_quotes_passages():
    long_text = "First sentence is here. " * 10 + "Tail that must not appear."
    found = [passage(1), passage(2, text=long_text), passage(3), passage(4)]
    answer = extractive_answer("How?", found, max_passages=3, max_chars=100)

    lines = answer.text.splitlines()
    assert lines[0] == EXTRACTIVE_LABEL
    assert "**[1] Guide 1 — Setup**" in lines
    assert "> Body of guide 1: step 1 is to run make target-1." in lines
    second = next(line for line in lines if line.startswith("> First sentence"))
    assert second.endswith("is here. …") and len(second) <= 110
    assert "Tail" not in answer.text and "Guide 4" not in answer.text
    assert [c.number for c in answer.citations] == [1, 2, 3]
    assert [p.chunk.title for p in answer.passages] == ["Guide 1", "Guide 2", "Guide 3"]


def test_extractive_answer_closes_a_cut_code_fence():
    text = "Run this:\n```\n" + "\n".join(f"step_{i}()" for i in range(50)) + "\n```"
    answer = extractive_answer("How?", [passage(1, text=text)], max_chars=60)
    quoted = [line for line in answer.text.splitlines() if line.startswith(">")]
    assert quoted[-1] == "> ```"
    assert sum(line.startswith("> ```") for line in quoted) == 2


def test_extractive_answer_without_passages_is_not_covered():
    answer = extractive_answer("How?", [])
    assert answer.text == NOT_COVERED_TEXT and answer.citations == []


def test_not_covered_answer_lists_the_closest_sources():
    answer = not_covered_answer("What is the moon made of?", passages(2))
    assert answer.text.startswith(NOT_COVERED_TEXT)
    assert [(c.number, c.title) for c in answer.citations] == [(1, "Guide 1"), (2, "Guide 2")]
    assert len(answer.passages) == 2
    assert not_covered_answer("Anything?", []).text == NOT_COVERED_TEXT


# Configuration


def test_client_needs_a_key_or_a_base_url():
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        build_openai_client(api_key="", base_url="", timeout_s=1, max_retries=0)
    with pytest.raises(ConfigError, match="http"):
        build_openai_client(api_key="", base_url="localhost:8000", timeout_s=1, max_retries=0)
    client = build_openai_client(api_key="sk-x", base_url="", timeout_s=7, max_retries=4)
    assert str(client.base_url).startswith("https://api.openai.com/v1")
    assert (client.timeout, client.max_retries) == (7, 4)


def test_generator_validates_its_settings(openai_server):
    client = build_openai_client(
        api_key="", base_url=openai_server.base_url, timeout_s=1, max_retries=0
    )
    with pytest.raises(ConfigError):
        ChatGenerator(client, model=" ")
    with pytest.raises(ConfigError):
        ChatGenerator(client, model="m", temperature=3.0)
    with pytest.raises(ConfigError):
        ChatGenerator(client, model="m", max_tokens=0)


# Streaming


def test_a_streamed_answer_reaches_the_sink_piece_by_piece(openai_server):
    openai_server.reply = lambda request: "<think>plan it</think>\n\nRun `make` [2] then [1]."
    pieces: list[str] = []

    answer = generator(openai_server).answer("How?", passages(2), on_text=pieces.append)

    [request] = openai_server.requests
    assert request.json["stream"] is True
    assert len(pieces) > 3  # one per token, as the server sent them
    assert "".join(pieces) == "Run `make` [2] then [1]."  # no thinking block
    assert answer.text == "Run `make` [1] then [2]."  # renumbered once complete
    assert [c.path for c in answer.citations] == ["guides/doc2.md", "guides/doc1.md"]


def test_a_stream_cut_mid_answer_is_a_generation_error(openai_server):
    openai_server.cut_stream(3)
    pieces: list[str] = []

    with pytest.raises(GenerationError, match="stopped mid-answer"):
        generator(openai_server).answer("How?", passages(2), on_text=pieces.append)
    assert 0 < len(pieces) <= 3


def test_what_the_sink_raises_ends_the_stream_unchanged(openai_server):
    class Stop(Exception):
        pass

    def sink(text: str) -> None:
        raise Stop(text)

    with pytest.raises(Stop):
        generator(openai_server).answer("How?", passages(2), on_text=sink)


def test_a_rate_limited_stream_is_busy(openai_server):
    openai_server.fail(429, times=None, retry_after=FAST)

    with pytest.raises(GenerationError) as caught:
        generator(openai_server, max_retries=1).answer("How?", passages(1), on_text=print)
    assert caught.value.busy


@pytest.mark.parametrize(
    ("pieces", "shown"),
    [
        (["<th", "ink>a</th", "ink>  b", "c"], "bc"),
        ([" ", "No"], "No"),
        ([" <", "t"], "<t"),  # not a thinking block after all
        (["<think>never closed"], ""),
        (["Plain ", "<think> in the middle"], "Plain <think> in the middle"),
    ],
)
def test_thinking_filter(pieces, shown):
    visible = ThinkingFilter()
    assert "".join(visible.feed(p) for p in pieces) + visible.close() == shown
