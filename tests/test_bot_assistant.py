"""The assistant pane, end to end: suggested prompts when a thread starts, the thread
named after its first question, and follow-ups in it answered as follow-ups."""

from __future__ import annotations

from bot.intake import MAX_TITLE_CHARS, thread_title
from bot.listeners.events.assistant import PROMPTS_TITLE
from tests.fixtures.slack_events import ACK_BUDGET_S, bot_messages, wait_for_answer, wait_quiet

DM = "D5"


def test_a_new_assistant_thread_gets_the_suggested_prompts(
    in_thread_bot, events_to, slack_api, new_user
):
    bot = in_thread_bot(suggested_prompts="How do I install it?| What port does it use? |")
    events = events_to(bot.url)
    thread_ts = events.new_ts()

    ack = events.assistant_thread_started(user=new_user(), channel=DM, thread_ts=thread_ts)

    assert ack.status == 200 and ack.seconds < ACK_BUDGET_S
    [call] = slack_api.wait_for("assistant.threads.setSuggestedPrompts")
    assert (call.args["channel_id"], call.args["thread_ts"]) == (DM, thread_ts)
    assert call.args["title"] == PROMPTS_TITLE
    assert slack_api.suggested_prompts(DM, thread_ts) == [
        {"title": "How do I install it?", "message": "How do I install it?"},
        {"title": "What port does it use?", "message": "What port does it use?"},
    ]
    wait_quiet(slack_api, quiet_s=0.5)
    assert slack_api.calls_for("chat.postMessage") == []


def test_first_question_names_the_thread_and_the_next_is_a_follow_up(
    in_thread_bot, events_to, slack_api, openai_server, new_user
):
    bot = in_thread_bot()
    events = events_to(bot.url)
    user = new_user()
    root = events.new_ts()
    slack_api.seed_message(DM, root, "New chat", user=user)

    first = events.message(
        "How do I install Milvus Lite?", user=user, channel=DM, channel_type="im", thread_ts=root
    )
    wait_for_answer(slack_api, first)
    [title] = slack_api.calls_for("assistant.threads.setTitle")
    assert (title.args["channel_id"], title.args["thread_ts"]) == (DM, root)
    assert slack_api.title(DM, root) == "How do I install Milvus Lite?"
    assert not any(
        r.json["messages"][0]["content"].startswith("Rewrite") for r in openai_server.requests
    )

    openai_server.reply = lambda request: (
        "Which file does Milvus Lite create?"
        if request["messages"][0]["content"].startswith("Rewrite")
        else "It creates the file on first use [1]."
    )
    followup = events.message(
        "and which file does it create?", user=user, channel=DM, channel_type="im", thread_ts=root
    )
    wait_for_answer(slack_api, followup)
    wait_quiet(slack_api, quiet_s=1.0)
    assert len(slack_api.calls_for("assistant.threads.setTitle")) == 1
    assert len(bot_messages(slack_api, DM, root)) == 2
    condense = openai_server.requests[-2].json
    assert condense["messages"][0]["content"].startswith("Rewrite")
    assert "How do I install Milvus Lite?" in condense["messages"][-1]["content"]


def test_a_failed_title_does_not_stop_the_answer(in_thread_bot, events_to, slack_api, new_user):
    bot = in_thread_bot()
    events = events_to(bot.url)
    user = new_user()
    root = events.new_ts()
    slack_api.seed_message(DM, root, "New chat", user=user)
    slack_api.fail_with("assistant.threads.setTitle", "invalid_thread_ts")

    sent = events.message(
        "What does hybrid search fuse?", user=user, channel=DM, channel_type="im", thread_ts=root
    )

    assert "Sources: [1]" in wait_for_answer(slack_api, sent)["text"]
    assert slack_api.title(DM, root) is None


def test_thread_titles_are_one_short_line():
    assert thread_title("  how do\n I   install it? ") == "how do I install it?"
    long = "word " * 40
    cut = thread_title(long)
    assert len(cut) <= MAX_TITLE_CHARS and cut.endswith("word…")
    assert thread_title("x" * 200).startswith("x" * (MAX_TITLE_CHARS - 1))
