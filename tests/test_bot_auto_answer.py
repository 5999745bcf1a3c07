"""Answer-everything channels (``RAGBOT_AUTO_ANSWER_CHANNELS``), end to end: top-level
questions there are answered without a mention; elsewhere the bot still waits for one."""

from __future__ import annotations

import time

from bot.listeners.events.message import is_auto_question
from bot.settings import load_bot_settings
from tests.fixtures.slack_api import BOT_USER_ID
from tests.fixtures.slack_events import ACK_BUDGET_S, bot_messages, wait_for_answer, wait_quiet

AUTO = "CAUTO"


def test_top_level_question_in_an_auto_channel_is_answered_in_its_thread(
    in_thread_bot, events_to, slack_api, openai_server, new_user
):
    bot = in_thread_bot(auto_answer_channels=f" {AUTO}, COTHER")
    events = events_to(bot.url)

    sent = events.message(
        "How do I connect to Milvus Lite from Python?", user=new_user(), channel=AUTO
    )

    assert sent.ack.status == 200 and sent.ack.seconds < ACK_BUDGET_S
    answer = wait_for_answer(slack_api, sent)
    wait_quiet(slack_api, quiet_s=1.0)
    assert "Sources: [1]" in answer["text"]
    assert bot_messages(slack_api, AUTO, sent.ts) == [answer]
    [eyes] = slack_api.calls_for("reactions.add")
    assert (eyes.args["timestamp"], eyes.args["name"]) == (sent.ts, "eyes")
    assert slack_api.reactions(AUTO, sent.ts) == set()
    assert len(openai_server.requests) == 1


def test_other_messages_in_auto_channels_and_elsewhere_are_left_alone(
    in_thread_bot, events_to, slack_api, openai_server, new_user
):
    bot = in_thread_bot(auto_answer_channels=AUTO)
    events = events_to(bot.url)
    user = new_user()
    parent = events.new_ts()
    slack_api.seed_message(AUTO, parent, "a thread the bot is not in", user=user)

    ignored = [
        events.message("How do I install Milvus Lite?", user=user, channel="C1"),
        events.message("and the port?", user=user, channel=AUTO, thread_ts=parent),
        events.message("joined", user=user, channel=AUTO, subtype="channel_join"),
        events.message("from a bot", user=user, channel=AUTO, bot_id="B2"),
        events.message("", user=user, channel=AUTO, subtype="file_share", files=[{"id": "F1"}]),
    ]

    assert all(sent.ack.status == 200 for sent in ignored)
    wait_quiet(slack_api, quiet_s=1.5)
    assert slack_api.calls_for("chat.postMessage") == []
    assert slack_api.calls_for("reactions.add") == []
    assert openai_server.requests == []


def test_a_mention_in_an_auto_channel_is_answered_once(
    in_thread_bot, events_to, slack_api, openai_server, new_user
):
    bot = in_thread_bot(auto_answer_channels=AUTO)
    events = events_to(bot.url)
    user = new_user()
    text = f"<@{BOT_USER_ID}> What does hybrid search fuse?"

    as_message = events.message(text, user=user, channel=AUTO)
    events.event(
        {
            "type": "app_mention",
            "user": user,
            "text": text,
            "ts": as_message.ts,
            "channel": AUTO,
            "event_ts": as_message.ts,
        }
    )

    wait_for_answer(slack_api, as_message)
    wait_quiet(slack_api, quiet_s=1.5)
    assert len(bot_messages(slack_api, AUTO, as_message.ts)) == 1
    assert len(openai_server.requests) == 1


def test_a_question_the_docs_do_not_cover_gets_a_shrug_and_no_message(
    in_thread_bot, events_to, slack_api, openai_server, new_user
):
    """Needs the worker's not-covered handling for auto jobs (bot/answering.py)."""
    bot = in_thread_bot(auto_answer_channels=AUTO, min_rerank_score=1.0)
    events = events_to(bot.url)

    sent = events.message(
        "What is the airspeed of an unladen swallow?", user=new_user(), channel=AUTO
    )

    deadline = time.monotonic() + 30
    while "shrug" not in slack_api.reactions(AUTO, sent.ts):
        assert time.monotonic() < deadline, slack_api.calls
        time.sleep(0.05)
    wait_quiet(slack_api, quiet_s=1.0)
    assert slack_api.reactions(AUTO, sent.ts) == {"shrug"}  # :eyes: came off
    assert bot_messages(slack_api, AUTO, sent.ts) == []
    assert slack_api.calls_for("chat.postMessage") == []
    assert openai_server.requests == []


def test_auto_question_rules():
    class Services:
        settings = load_bot_settings(auto_answer_channels=AUTO)

    def auto(**event: object) -> bool:
        base = {"type": "message", "channel": AUTO, "user": "U1", "ts": "1.0", "text": "how?"}
        return is_auto_question({**base, **event}, bot_user_id=BOT_USER_ID, services=Services)

    assert auto()
    assert auto(subtype="file_share")
    assert not auto(channel="C1")
    assert not auto(thread_ts="0.5")
    assert not auto(subtype="message_changed")
    assert not auto(bot_id="B1")
    assert not auto(user=BOT_USER_ID)
    assert not auto(text=f"<@{BOT_USER_ID}> how?")
