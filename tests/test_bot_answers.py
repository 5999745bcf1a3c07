"""Questions end to end: signed events over HTTP to ``ragbot serve --http``, answered by
``ragbot worker`` processes with the tiny Qwen3 models, Milvus, Redis, the OpenAI
stand-in, and the real ``WebClient`` talking to the Slack stand-in."""

from __future__ import annotations

import re
import time

from bot.blocks import FEEDBACK_DOWN, FEEDBACK_UP, SOURCES_LABEL
from bot.intake import EMPTY_QUESTION_TEXT, FILES_ONLY_TEXT
from tests.fixtures.bot_stack import SOURCE_BASE_URL
from tests.fixtures.slack_api import (
    BOT_USER_ID,
    SIGNING_SECRET,
    event_callback_body,
    sign_request,
)
from tests.fixtures.slack_events import (
    ACK_BUDGET_S,
    Sent,
    bot_messages,
    wait_for_answer,
    wait_quiet,
)

SOURCE_LINK = re.compile(r"^<(https?://[^|>]+)\|\[(\d+)\] ([^>]+)>$")
A_FILE = {"id": "F1", "name": "screenshot.png", "mimetype": "image/png"}


def posts_in_thread(slack_api, sent: Sent) -> list:
    return [
        call
        for call in slack_api.calls_for("chat.postMessage")
        if call.args.get("channel") == sent.channel and call.args.get("thread_ts") == sent.ts
    ]


def assert_answer_message(message: dict, *, answer_id_pattern: str = r"^[0-9a-f]{32}$") -> None:
    """The answer as Markdown, then Sources whose ``<url|[n] title>`` numbers match the
    text, then 👍/👎."""
    blocks = message["blocks"]
    kinds = [block["type"] for block in blocks]
    assert kinds[0] == "markdown" and kinds[-1] == "actions", kinds
    answer_text = " ".join(b["text"] for b in blocks if b["type"] == "markdown")
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", answer_text)}
    sources = [b for b in blocks if b["type"] == "context"]
    elements = [e["text"] for block in sources for e in block["elements"]]
    assert elements[0] == SOURCES_LABEL
    links = [SOURCE_LINK.match(element) for element in elements[1:]]
    assert all(links), elements
    numbers = [int(link.group(2)) for link in links if link]
    assert numbers == list(range(1, len(numbers) + 1))
    assert cited and cited <= set(numbers), (cited, numbers)
    assert all(link.group(1).startswith(SOURCE_BASE_URL) for link in links if link)
    buttons = blocks[-1]["elements"]
    assert [b["action_id"] for b in buttons] == [FEEDBACK_UP, FEEDBACK_DOWN]
    assert re.match(answer_id_pattern, buttons[0]["value"])
    assert "Sources: [1]" in message["text"]  # the plain-text fallback carries them too


def test_mention_gets_one_threaded_answer_with_sources(
    bot_stack, slack_events, slack_api, openai_server, new_user
):
    sent = slack_events.mention("How do I connect to Milvus Lite from Python?", user=new_user())

    assert sent.ack.status == 200
    assert sent.ack.seconds < ACK_BUDGET_S
    answer = wait_for_answer(slack_api, sent)
    wait_quiet(slack_api)

    assert_answer_message(answer)
    assert "How do I connect to Milvus Lite from Python?" in answer["text"]
    assert bot_messages(slack_api, sent.channel, sent.thread_ts) == [answer]
    [post] = posts_in_thread(slack_api, sent)  # the answer, no placeholder before it
    assert slack_api.calls_for("chat.update") == []
    [eyes] = slack_api.calls_for("reactions.add")  # the working indicator, then removed
    assert (eyes.args["timestamp"], eyes.args["name"]) == (sent.ts, "eyes")
    assert slack_api.calls.index(eyes) < slack_api.calls.index(post)
    assert slack_api.reactions(sent.channel, sent.ts) == set()
    assert len(openai_server.requests) == 1
    assert not bot_stack.tracebacks()


def test_retried_and_doubled_deliveries_get_one_answer(
    bot_stack, slack_events, slack_api, openai_server, new_user
):
    user = new_user()
    sent = slack_events.mention("What does hybrid search fuse?", user=user, event_id="EvRetry1")
    event = {
        "type": "app_mention",
        "user": user,
        "text": f"<@{BOT_USER_ID}> What does hybrid search fuse?",
        "ts": sent.ts,
        "channel": sent.channel,
        "event_ts": sent.ts,
    }
    retries = [slack_events.event(event, event_id="EvRetry1", retry_num=n) for n in (1, 2, 3)]
    as_message = slack_events.event(
        {**event, "type": "message", "channel_type": "channel"}, event_id="EvRetry1-message"
    )

    assert all(a.status == 200 and a.seconds < ACK_BUDGET_S for a in [*retries, as_message])
    wait_for_answer(slack_api, sent)
    wait_quiet(slack_api, quiet_s=1.5)
    assert len(posts_in_thread(slack_api, sent)) == 1
    assert len(bot_messages(slack_api, sent.channel, sent.thread_ts)) == 1
    assert len(openai_server.requests) == 1


def test_followup_in_thread_uses_history_and_strangers_threads_are_ignored(
    bot_stack, slack_events, slack_api, openai_server, new_user
):
    user = new_user()
    first = slack_events.mention("How do I install Milvus Lite?", user=user)
    first_answer = wait_for_answer(slack_api, first)

    def reply(request: dict) -> str:
        system = request["messages"][0]["content"]
        if system.startswith("Rewrite"):
            return "Which file does Milvus Lite create when a client connects?"
        return "It creates the file on first use [1]."

    openai_server.reply = reply
    followup = slack_events.message("and which file does it create?", user=user, thread_ts=first.ts)
    answer = wait_for_answer(slack_api, followup)
    assert_answer_message(answer)
    assert len(bot_messages(slack_api, first.channel, first.ts)) == 2

    condense, generate = openai_server.requests[-2:]
    transcript = condense.json["messages"][-1]["content"]
    assert "User: How do I install Milvus Lite?" in transcript
    assert f"Assistant: {first_answer['text'].splitlines()[0]}" in transcript
    assert "Follow-up question: and which file does it create?" in transcript
    history = generate.json["messages"][1:-1]
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert history[0]["content"] == "How do I install Milvus Lite?"
    assert generate.json["messages"][-1]["content"].endswith(
        "Question: and which file does it create?"
    )

    stranger = slack_events.new_ts()
    slack_api.seed_message(first.channel, stranger, "a thread without the bot", user=user)
    ignored = slack_events.message("what about this?", user=user, thread_ts=stranger)
    assert ignored.ack.status == 200
    wait_quiet(slack_api, quiet_s=1.5)
    assert bot_messages(slack_api, first.channel, stranger) == []


def test_direct_message_is_answered(bot_stack, slack_events, slack_api, new_user):
    sent = slack_events.message(
        "How do I upgrade a Kubernetes deployment?",
        user=new_user(),
        channel="D42",
        channel_type="im",
    )

    answer = wait_for_answer(slack_api, sent)

    assert_answer_message(answer)
    assert answer["thread_ts"] == sent.ts


def test_oversized_empty_and_file_only_messages_get_replies_and_no_answer(
    bot_stack, slack_events, slack_api, openai_server, new_user
):
    user = new_user()
    huge = slack_events.mention("x" * 40_000, user=user)
    empty = slack_events.mention("", user=user)
    file_only = slack_events.mention("", user=user, files=[A_FILE])
    dm_file = slack_events.message(
        "", user=user, channel="D7", channel_type="im", subtype="file_share", files=[A_FILE]
    )

    assert all(s.ack.status == 200 for s in (huge, empty, file_only, dm_file))
    assert huge.ack.seconds < ACK_BUDGET_S
    replies = {s.ts: wait_for_answer(slack_api, s)["text"] for s in (huge, empty, file_only)}
    dm_reply = wait_for_answer(slack_api, dm_file)["text"]
    wait_quiet(slack_api)

    assert "40,000 characters long" in replies[huge.ts]
    assert "under 4,000 characters" in replies[huge.ts]
    assert replies[empty.ts] == EMPTY_QUESTION_TEXT
    assert replies[file_only.ts] == FILES_ONLY_TEXT
    assert dm_reply == FILES_ONLY_TEXT
    for sent in (huge, empty, file_only, dm_file):  # one reply each, posted by a worker
        assert len(bot_messages(slack_api, sent.channel, sent.thread_ts)) == 1
    assert slack_api.calls_for("reactions.add") == []  # no answer is coming
    assert openai_server.requests == []
    assert bot_stack.redis.xlen(bot_stack.stream) == 0  # the notices were acknowledged
    assert not bot_stack.tracebacks()


def test_forged_or_replayed_requests_are_refused(bot_stack, slack_events, slack_api, new_user):
    event = {"type": "app_mention", "user": new_user(), "channel": "C1"}
    event.update(text=f"<@{BOT_USER_ID}> hi", ts=slack_events.new_ts())
    body = event_callback_body(event, event_id="EvForged")
    json_type = {"Content-Type": "application/json"}
    forged = slack_events.send(body, {**json_type, **sign_request(body, "not-the-secret")})
    an_hour_ago = int(time.time()) - 3600
    replayed = sign_request(body, SIGNING_SECRET, timestamp=an_hour_ago)
    replay = slack_events.send(body, {**json_type, **replayed})
    unsigned = slack_events.send(body, json_type)

    assert [forged.status, replay.status, unsigned.status] == [401, 401, 401]
    wait_quiet(slack_api, quiet_s=1.0)
    assert slack_api.calls_for("chat.postMessage") == []
