"""Private answers: ``/ask``, the "Ask ragbot about this" shortcut, "Share in channel".

:class:`~bot.private_answers.PrivateAnswers` is driven directly with the real
``WebClient`` against the Slack stand-in; the listeners end to end through the bot's
HTTP endpoint (``in_thread_bot``), with answer records put in its Redis as the worker
keeps them.
"""

from __future__ import annotations

import re
import time
import uuid

import pytest
import redis

from bot.answer_records import AnswerRecord, AnswerRecords, SourceRecord
from bot.blocks import FEEDBACK_DOWN, FEEDBACK_UP
from bot.intake import IncomingQuestion
from bot.jobs import AskJob
from bot.listeners.actions.share import EXPIRED_TEXT
from bot.listeners.commands.ask import USAGE_TEXT, WORKING_TEXT
from bot.listeners.shortcuts.ask_about import CALLBACK_ID, NO_TEXT
from bot.posting import LastWord
from bot.private_answers import SHARE_ACTION, PrivateAnswers, with_share_button
from bot.shared_answers import InMemorySharedAnswers, RedisSharedAnswers, SharedPost
from bot.slack_retry import SlackRejected, SlackRetry
from rag_core.types import Answer, AnswerKind, Citation
from tests.fixtures.slack_api import BOT_USER_ID
from tests.fixtures.slack_events import ACK_BUDGET_S, wait_quiet

CITATION = Citation(1, "Milvus Lite", "https://docs.example/milvus-lite", "milvus-lite.md", "")
ANSWER = Answer(
    question="How do I connect to Milvus Lite?",
    text="Pass a file path to `MilvusClient` [1].",
    kind=AnswerKind.GENERATED,
    citations=[CITATION],
)


def private_job(slack_api, *, channel: str = "C1", user: str = "U1", name: str = "") -> AskJob:
    return AskJob(
        job_id=uuid.uuid4().hex,
        channel=channel,
        thread_ts="",
        message_ts="",
        user=user,
        text=ANSWER.question,
        private=True,
        response_url=slack_api.response_url(name or uuid.uuid4().hex[:8]),
    )


@pytest.fixture
def private_answers(slack_client) -> PrivateAnswers:
    return PrivateAnswers(slack_client, SlackRetry(window_s=3, base_delay_s=0.05, max_delay_s=0.1))


def action_ids(message_blocks: list[dict]) -> list[str]:
    return [
        element["action_id"]
        for block in message_blocks
        if block["type"] == "actions"
        for element in block["elements"]
    ]


def share_value(message_blocks: list[dict]) -> str:
    [value] = [
        element["value"]
        for block in message_blocks
        if block["type"] == "actions"
        for element in block["elements"]
        if element["action_id"] == SHARE_ACTION
    ]
    return value


# ---- PrivateAnswers against the stand-in ------------------------------------------------
def test_answer_is_ephemeral_to_the_asker_with_a_share_button(private_answers, slack_api):
    job = private_job(slack_api)

    private_answers.deliver(job, ANSWER, guard=LastWord())

    [call] = slack_api.calls_for("chat.postEphemeral")
    assert (call.args["channel"], call.args["user"]) == ("C1", "U1")
    assert "thread_ts" not in call.args
    assert "MilvusClient" in call.args["text"] and "Sources: [1]" in call.args["text"]
    assert action_ids(call.args["blocks"]) == [FEEDBACK_UP, FEEDBACK_DOWN, SHARE_ACTION]
    assert share_value(call.args["blocks"]) == job.job_id
    assert [e["user"] for e in slack_api.ephemerals] == ["U1"]
    assert slack_api.calls_for("chat.postMessage") == []
    assert slack_api.calls_for("response_url") == []


@pytest.mark.parametrize("error", ["not_in_channel", "channel_not_found"])
def test_without_access_to_the_channel_the_answer_goes_through_response_url(
    private_answers, slack_api, error
):
    job = private_job(slack_api, name="no-access")
    slack_api.fail_with("chat.postEphemeral", error)

    private_answers.deliver(job, ANSWER, guard=LastWord())

    [reply] = slack_api.calls_for("response_url")
    assert reply.args["path"].endswith("/no-access")
    assert reply.args["response_type"] == "ephemeral"
    assert reply.args["replace_original"] is False
    assert share_value(reply.args["blocks"]) == job.job_id
    assert slack_api.calls_for("chat.postMessage") == []


def test_expired_response_url_falls_back_to_a_direct_message(private_answers, slack_api):
    job = private_job(slack_api, name="expired")
    slack_api.fail_with("chat.postEphemeral", "not_in_channel")
    slack_api.expire_response_url("expired")

    private_answers.deliver(job, ANSWER, guard=LastWord())

    [reply] = slack_api.calls_for("response_url")
    assert reply.status == 404
    [dm] = slack_api.calls_for("chat.postMessage")
    assert dm.args["channel"] == "U1"
    assert SHARE_ACTION not in action_ids(dm.args["blocks"])  # nothing to share from a DM
    assert FEEDBACK_UP in action_ids(dm.args["blocks"])


def test_transient_failures_are_retried_and_refusals_raised(private_answers, slack_api):
    job = private_job(slack_api)
    slack_api.fail_http("chat.postEphemeral", 500, times=2)
    private_answers.deliver(job, ANSWER, guard=LastWord())
    assert [c.status for c in slack_api.calls_for("chat.postEphemeral")] == [500, 500, 200]

    slack_api.fail_with("chat.postEphemeral", "invalid_blocks")
    with pytest.raises(SlackRejected) as refused:
        private_answers.deliver(job, ANSWER, guard=LastWord())
    assert refused.value.error == "invalid_blocks"


def test_errors_are_told_privately_and_refusals_through_response_url(private_answers, slack_api):
    job = private_job(slack_api, name="refused")

    private_answers.tell(job, "Nothing is indexed yet.", guard=LastWord())
    [call] = slack_api.calls_for("chat.postEphemeral")
    assert call.args["text"] == "Nothing is indexed yet."
    assert SHARE_ACTION not in str(call.args["blocks"])

    assert private_answers.tell_refused(job, "invalid_blocks")
    [reply] = slack_api.calls_for("response_url")
    assert "`invalid_blocks`" in reply.args["text"]
    assert slack_api.calls_for("chat.postMessage") == []


def test_share_button_joins_the_feedback_buttons_or_gets_a_block_of_its_own():
    with_feedback = [{"type": "actions", "block_id": "feedback", "elements": [{"a": 1}]}]
    assert len(with_share_button(with_feedback, "j1")[0]["elements"]) == 2
    assert with_feedback[0]["elements"] == [{"a": 1}]  # the input is left as it was
    full = [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}] * 50
    shared = with_share_button(full, "j1")
    assert len(shared) == 50 and shared[-1]["block_id"] == "share"


# ---- the "shared once" claims --------------------------------------------------------------
@pytest.fixture(params=["memory", "redis"])
def claims(request, redis_url):
    if request.param == "memory":
        yield InMemorySharedAnswers()
        return
    client = redis.Redis.from_url(redis_url)
    prefix = f"ragbot-test:{uuid.uuid4().hex[:8]}:"
    yield RedisSharedAnswers(client, prefix=prefix, ttl_s=60)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


def test_an_answer_is_claimed_for_sharing_once(claims):
    assert claims.claim("job1") is None
    assert claims.claim("job1") == SharedPost("", "")  # under way
    claims.record("job1", SharedPost("C1", "1700000000.000100"))
    earlier = claims.claim("job1")
    assert earlier == SharedPost("C1", "1700000000.000100")
    assert earlier.link() == "https://slack.com/archives/C1/p1700000000000100"
    claims.release("job2")  # unknown: nothing happens
    assert claims.claim("job2") is None
    claims.release("job2")
    assert claims.claim("job2") is None  # a failed share can be tried again


def test_private_questions_have_their_own_dedup_keys():
    incoming = IncomingQuestion.asked_privately(
        request_id="command:t1", channel="C1", user="U1", text="q", response_url="u"
    )
    assert incoming.dedup_keys == ("event:command:t1",)
    assert (incoming.ts, incoming.thread_ts, incoming.private) == ("", "", True)


# ---- end to end ----------------------------------------------------------------------------
def put_record(bot, record: AnswerRecord) -> None:
    client = redis.Redis.from_url(bot.settings.redis_url)
    try:
        AnswerRecords(client, prefix=bot.settings.redis_prefix).put(record)
    finally:
        client.close()


def a_record(user: str, *, channel: str = "C1") -> AnswerRecord:
    return AnswerRecord(
        job_id=uuid.uuid4().hex,
        channel=channel,
        thread_ts="",
        user=user,
        question="How do I connect to Milvus Lite?",
        text="Pass a file path to `MilvusClient` [1].",
        kind="generated",
        sources=(SourceRecord.of(CITATION),),
        private=True,
    )


def wait_for_response(slack_api, name: str, count: int = 1, timeout_s: float = 20.0) -> list:
    deadline = time.monotonic() + timeout_s
    while True:
        found = [c for c in slack_api.calls_for("response_url") if c.args["path"].endswith(name)]
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, f"{count} posts to response_url {name} expected"
        time.sleep(0.05)


def test_share_posts_the_answer_once_and_deletes_the_private_copy(
    in_thread_bot, events_to, slack_api, new_user
):
    bot = in_thread_bot()
    events = events_to(bot.url)
    user = new_user()
    record = a_record(user)
    put_record(bot, record)
    ephemeral_ts = events.new_ts()

    def click(name: str):
        return events.click(
            SHARE_ACTION,
            record.job_id,
            user=user,
            channel="C1",
            message_ts=ephemeral_ts,
            response_url=slack_api.response_url(name),
        )

    first = click("share-1")
    assert first.status == 200 and first.seconds < ACK_BUDGET_S
    [delete] = wait_for_response(slack_api, "share-1")
    [post] = slack_api.wait_for("chat.postMessage")
    assert post.args["channel"] == "C1" and "thread_ts" not in post.args
    assert post.args["blocks"][0]["text"]["text"].startswith(f"<@{user}> asked: _How do I")
    assert action_ids(post.args["blocks"]) == [FEEDBACK_UP, FEEDBACK_DOWN]  # no Share again
    assert post.args["blocks"][-1]["elements"][0]["value"] == record.job_id
    assert "MilvusClient" in post.args["text"]
    assert delete.args["delete_original"] is True

    click("share-2")
    [again] = wait_for_response(slack_api, "share-2")
    assert again.args["response_type"] == "ephemeral"
    assert "already shared" in again.args["text"]
    [digits] = re.findall(r"<https://slack\.com/archives/C1/p(\d+)\|", again.args["text"])
    shared = slack_api.message("C1", f"{digits[:-6]}.{digits[-6:]}")
    assert shared is not None and shared["blocks"] == post.args["blocks"]
    wait_quiet(slack_api, quiet_s=0.5)
    assert len(slack_api.calls_for("chat.postMessage")) == 1


def test_share_of_an_expired_answer_or_refused_post_is_explained(
    in_thread_bot, events_to, slack_api, new_user
):
    bot = in_thread_bot()
    events = events_to(bot.url)
    user = new_user()

    events.click(
        SHARE_ACTION,
        uuid.uuid4().hex,
        user=user,
        channel="C1",
        message_ts=events.new_ts(),
        response_url=slack_api.response_url("gone"),
    )
    [gone] = wait_for_response(slack_api, "gone")
    assert gone.args["text"] == EXPIRED_TEXT
    assert slack_api.calls_for("chat.postMessage") == []

    record = a_record(user, channel="CPRIVATE")
    put_record(bot, record)
    slack_api.fail_with("chat.postMessage", "not_in_channel", match={"channel": "CPRIVATE"})
    for name in ("refused", "retried"):
        events.click(
            SHARE_ACTION,
            record.job_id,
            user=user,
            channel="CPRIVATE",
            message_ts=events.new_ts(),
            response_url=slack_api.response_url(name),
        )
        wait_for_response(slack_api, name)
    [refused] = wait_for_response(slack_api, "refused")
    assert "`not_in_channel`" in refused.args["text"] and "/invite" in refused.args["text"]
    [retried] = wait_for_response(slack_api, "retried")  # the claim was given back
    assert retried.args.get("delete_original") is True
    assert len(slack_api.calls_for("chat.postMessage")) == 2


def test_ask_without_a_question_gets_the_usage_hint_in_the_ack(
    in_thread_bot, events_to, slack_api, new_user
):
    bot = in_thread_bot()
    events = events_to(bot.url)

    ack = events.command("/ask", "   ", user=new_user(), response_url=slack_api.response_url())

    assert ack.status == 200 and ack.seconds < ACK_BUDGET_S
    assert ack.text == USAGE_TEXT
    wait_quiet(slack_api, quiet_s=0.5)
    assert slack_api.calls_for("chat.postEphemeral") == []
    assert slack_api.calls_for("response_url") == []


def test_shortcut_on_a_message_without_text_says_so_privately(
    in_thread_bot, events_to, slack_api, new_user
):
    bot = in_thread_bot()
    events = events_to(bot.url)
    message = {"type": "message", "user": "U2", "ts": events.new_ts(), "text": ""}

    ack = events.shortcut(
        CALLBACK_ID, message, user=new_user(), response_url=slack_api.response_url("no-text")
    )

    assert ack.status == 200 and ack.seconds < ACK_BUDGET_S
    [reply] = wait_for_response(slack_api, "no-text")
    assert reply.args["text"] == NO_TEXT and reply.args["response_type"] == "ephemeral"


# These need the worker to hand private jobs to PrivateAnswers (bot/answering.py).
def wait_for_ephemeral(slack_api, user: str, timeout_s: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        found = [e for e in slack_api.ephemerals if e["user"] == user]
        if found:
            return found[-1]
        assert time.monotonic() < deadline, f"no ephemeral for {user}"
        time.sleep(0.05)


def test_ask_answers_only_the_asker_with_a_share_button(
    in_thread_bot, events_to, slack_api, new_user
):
    bot = in_thread_bot()
    events = events_to(bot.url)
    user = new_user()

    ack = events.command(
        "/ask", "How do I connect to Milvus Lite from Python?", user=user, channel="C1"
    )
    assert ack.status == 200 and ack.seconds < ACK_BUDGET_S
    assert ack.text == WORKING_TEXT

    answer = wait_for_ephemeral(slack_api, user)
    wait_quiet(slack_api, quiet_s=1.0)
    assert answer["channel"] == "C1" and not answer.get("thread_ts")
    job_id = share_value(answer["blocks"])
    assert FEEDBACK_UP in action_ids(answer["blocks"])
    assert slack_api.calls_for("chat.postMessage") == []  # nobody else sees anything
    assert slack_api.calls_for("reactions.add") == []  # no message to react to

    events.click(
        SHARE_ACTION,
        job_id,
        user=user,
        channel="C1",
        message_ts=answer["ts"],
        response_url=slack_api.response_url("shared"),
    )
    [post] = slack_api.wait_for("chat.postMessage")
    assert post.args["channel"] == "C1"
    assert f"<@{user}> asked" in post.args["blocks"][0]["text"]["text"]


def test_shortcut_answers_the_chosen_message_privately(
    in_thread_bot, events_to, slack_api, new_user
):
    bot = in_thread_bot()
    events = events_to(bot.url)
    user = new_user()
    message = {
        "type": "message",
        "user": "U2",
        "ts": events.new_ts(),
        "text": f"<@{BOT_USER_ID}> what does hybrid search fuse?",
    }

    ack = events.shortcut(CALLBACK_ID, message, user=user, channel="C9")

    assert ack.status == 200 and ack.seconds < ACK_BUDGET_S
    answer = wait_for_ephemeral(slack_api, user)
    assert answer["channel"] == "C9"
    assert share_value(answer["blocks"])
    assert slack_api.calls_for("chat.postMessage") == []
