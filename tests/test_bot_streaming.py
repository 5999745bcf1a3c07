"""Answers streamed into Slack as the chat model writes them, end to end: the app on its
real HTTP endpoint, a worker thread, the OpenAI stand-in streaming at a fixed token rate
and the Slack stand-in recording every chat.*Stream call. Faults (a stream refused,
expired, a worker killed mid-stream) are in :mod:`tests.test_faults`."""

from __future__ import annotations

from bot.answering import LLM_DOWN, STATUS_SEARCHING
from bot.posting import ANSWER_EVENT_TYPE
from tests.fixtures.slack_api import TEAM_ID
from tests.fixtures.slack_events import bot_messages, wait_for_answer, wait_quiet


def test_a_mention_is_streamed_then_finished_with_sources_and_buttons(
    in_thread_bot, events_to, slack_api, openai_server, new_user
):
    bot = in_thread_bot(stream_answers=True)
    openai_server.stream_rate(40)
    user = new_user()
    sent = events_to(bot.url).mention("How do I connect to Milvus Lite from Python?", user=user)

    answer = wait_for_answer(slack_api, sent)
    wait_quiet(slack_api)

    [start] = slack_api.calls_for("chat.startStream")
    assert start.args["thread_ts"] == sent.ts
    assert (start.args["recipient_user_id"], start.args["recipient_team_id"]) == (user, TEAM_ID)
    appends = slack_api.calls_for("chat.appendStream")
    assert appends, "the answer came in one piece, not streamed"
    [stop] = slack_api.calls_for("chat.stopStream")
    assert stop.args["metadata"]["event_type"] == ANSWER_EVENT_TYPE
    assert [b["type"] for b in stop.args["blocks"]][-1] == "actions"
    assert slack_api.calls.index(start) < slack_api.calls.index(stop)
    # The finished answer is written over the stream: one message, markdown, sources.
    assert bot_messages(slack_api, sent.channel, sent.thread_ts) == [answer]
    assert slack_api.was_streamed(sent.channel, answer["ts"])  # the stream's own message
    assert slack_api.calls_for("chat.postMessage") == []
    kinds = [b["type"] for b in answer["blocks"]]
    assert kinds[0] == "markdown" and kinds[-1] == "actions"
    assert "How do I connect to Milvus Lite from Python?" in answer["blocks"][0]["text"]
    assert "Sources: [1]" in answer["text"]
    assert answer["metadata"]["event_type"] == ANSWER_EVENT_TYPE
    streamed = "".join(c.args.get("markdown_text", "") for c in [start, *appends, stop])
    assert "Milvus Lite from Python" in streamed
    # Slack rate-limits chat.appendStream: text is buffered, not sent per token.
    tokens = len(openai_server.reply({"messages": []}).split())
    assert len(appends) < tokens
    assert slack_api.statuses(sent.channel, sent.thread_ts)[0] == STATUS_SEARCHING
    assert slack_api.reactions(sent.channel, sent.ts) == set()
    assert not slack_api.streaming(sent.channel, answer["ts"])


def test_cached_answers_and_follow_up_threads_are_posted_whole(
    in_thread_bot, events_to, slack_api, openai_server, new_user
):
    bot = in_thread_bot(stream_answers=True)
    events = events_to(bot.url)
    question = "What does hybrid search fuse?"
    first = events.mention(question, user=new_user())
    wait_for_answer(slack_api, first)
    wait_quiet(slack_api)
    slack_api.reset()

    again = events.mention(question, user=new_user())  # the answer cache has it
    answer = wait_for_answer(slack_api, again)
    wait_quiet(slack_api)

    assert slack_api.calls_for("chat.startStream") == []
    [post] = slack_api.calls_for("chat.postMessage")
    assert post.args["thread_ts"] == again.ts
    assert answer["blocks"][0]["type"] == "markdown"
    assert len(openai_server.requests) == 1


def test_a_model_failing_mid_stream_turns_the_half_answer_into_the_explanation(
    in_thread_bot, events_to, slack_api, openai_server, new_user
):
    bot = in_thread_bot(stream_answers=True)
    openai_server.stream_rate(40)
    openai_server.cut_stream(6, times=None)
    sent = events_to(bot.url).mention("How do I install Milvus Lite?", user=new_user())

    answer = wait_for_answer(slack_api, sent)
    wait_quiet(slack_api)

    [start] = slack_api.calls_for("chat.startStream")
    assert start.args["thread_ts"] == sent.ts
    assert bot_messages(slack_api, sent.channel, sent.thread_ts) == [answer]
    assert answer["text"] == LLM_DOWN
    assert slack_api.calls_for("chat.postMessage") == []
    assert not slack_api.streaming(sent.channel, answer["ts"])


def test_an_answer_longer_than_a_message_goes_on_in_the_thread(
    in_thread_bot, events_to, slack_api, openai_server, new_user
):
    bot = in_thread_bot(stream_answers=True)
    paragraph = "Milvus Lite keeps the whole collection in one local file [1]. " * 12
    openai_server.reply = lambda request: "\n\n".join([paragraph.strip()] * 40)  # ~30,000
    sent = events_to(bot.url).mention("Tell me everything about Milvus Lite", user=new_user())

    wait_for_answer(slack_api, sent)
    wait_quiet(slack_api, quiet_s=1.5)

    messages = bot_messages(slack_api, sent.channel, sent.thread_ts)
    assert len(messages) == 3
    assert len(slack_api.calls_for("chat.startStream")) == 1
    assert slack_api.was_streamed(sent.channel, messages[0]["ts"])  # the stream came first
    assert messages[0]["blocks"][-1]["type"] == "actions"  # buttons on the first
    bodies = [b["text"] for m in messages for b in m["blocks"] if b["type"] == "markdown"]
    assert " ".join(bodies).split() == "\n\n".join([paragraph.strip()] * 40).split()
    jobs = [m["metadata"]["event_payload"]["job_id"] for m in messages]
    assert jobs[1:] == [f"{jobs[0]}.2", f"{jobs[0]}.3"]
