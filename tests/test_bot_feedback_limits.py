"""👍/👎 clicks on answers (what a vote keeps, the 👎 reason modal), and the per-user
question rate limit, end to end."""

from __future__ import annotations

import json
import time

import pytest
from slack_sdk.errors import SlackApiError

from bot.answer_stats import AnswerStats
from bot.blocks import FEEDBACK_BLOCK_ID, FEEDBACK_DOWN, FEEDBACK_UP, feedback_ack_text
from bot.feedback import FeedbackStore
from bot.listeners.views.feedback_reason import (
    FEEDBACK_REASON,
    NOT_SAVED_TEXT,
    REASON_BLOCK,
    REASON_INPUT,
    reason_modal,
)
from tests.fixtures.bot_stack import DOCS
from tests.fixtures.slack_events import ACK_BUDGET_S, bot_messages, wait_for_answer, wait_quiet
from tests.fixtures.slack_views import new_trigger_id


def test_feedback_click_is_stored_and_thanked_privately(
    bot_stack, slack_events, slack_api, new_user
):
    asker, voter = new_user(), new_user()
    sent = slack_events.mention("How are rerankers scored?", user=asker)
    answer = wait_for_answer(slack_api, sent)
    answer_id = feedback_value(answer)
    store = FeedbackStore(bot_stack.redis, prefix=bot_stack.prefix)

    def click(action_id: str):
        return slack_events.click(
            action_id,
            answer_id,
            user=voter,
            channel=sent.channel,
            message_ts=answer["ts"],
            thread_ts=sent.ts,
        )

    up = click(FEEDBACK_UP)
    slack_api.wait_for("chat.postEphemeral", 1)
    assert up.status == 200 and up.seconds < ACK_BUDGET_S
    assert store.counts(answer_id) == {"up": 1, "down": 0}
    [thanks] = slack_api.ephemerals
    assert thanks["user"] == voter and thanks["thread_ts"] == sent.ts
    assert thanks["text"] == feedback_ack_text("up")

    click(FEEDBACK_DOWN)
    slack_api.wait_for("chat.postEphemeral", 2)
    assert store.counts(answer_id) == {"up": 0, "down": 1}  # the same voter changed their mind
    assert [entry.vote for entry in store.recent(2)] == ["down", "up"]
    assert bot_messages(slack_api, sent.channel, sent.thread_ts) == [answer]  # not edited


def test_rate_limited_user_is_told_privately_and_others_are_not_slowed(
    bot_stack, slack_events, slack_api, new_user
):
    eager, patient = new_user(), new_user()
    asked = [slack_events.mention(f"Question {n} on Milvus Lite?", user=eager) for n in range(4)]
    other = slack_events.mention("What does BM25 match?", user=patient)

    assert all(s.ack.status == 200 for s in [*asked, other])
    slack_api.wait_for("chat.postEphemeral", 1, timeout=10)
    [notice] = slack_api.ephemerals
    [refused] = [s for s in asked if s.ts == notice["thread_ts"]]  # listeners run in parallel
    allowed = [s for s in asked if s is not refused]
    for sent in [*allowed, other]:
        wait_for_answer(slack_api, sent)
    wait_quiet(slack_api)

    assert notice["user"] == eager
    assert notice["text"].startswith("You're asking faster than I can keep up.")
    assert len(slack_api.ephemerals) == 1
    assert bot_messages(slack_api, refused.channel, refused.ts) == []
    marked = [c.args["timestamp"] for c in slack_api.calls_for("reactions.add")]
    assert sorted(marked) == sorted(s.ts for s in [*allowed, other])  # :eyes: on answered ones


def feedback_value(message: dict) -> str:
    """The answer id the message's 👍/👎 buttons carry."""
    [actions] = [b for b in message["blocks"] if b.get("block_id") == FEEDBACK_BLOCK_ID]
    return actions["elements"][0]["value"]


def test_thumbs_down_asks_why_and_the_vote_keeps_what_was_voted_on(
    bot_stack, slack_events, slack_api, new_user
):
    asker, voter, fickle = new_user(), new_user(), new_user()
    sent = slack_events.mention("How are rerankers scored?", user=asker)
    answer = wait_for_answer(slack_api, sent)
    answer_id = feedback_value(answer)
    store = FeedbackStore(bot_stack.redis, prefix=bot_stack.prefix)
    stats = AnswerStats(bot_stack.redis, prefix=bot_stack.prefix)
    before = stats.week()

    def click(action_id: str, user: str):
        return slack_events.click(
            action_id, answer_id, user=user, channel=sent.channel, message_ts=answer["ts"]
        )

    click(FEEDBACK_DOWN, voter)
    slack_api.wait_for("views.open", 1)
    slack_api.wait_for("chat.postEphemeral", 1)  # still thanked
    [modal] = slack_api.opened_views
    assert (modal["callback_id"], modal["private_metadata"]) == (FEEDBACK_REASON, answer_id)
    typed = {REASON_BLOCK: {REASON_INPUT: "  cites the   wrong page "}}
    submitted = slack_events.submit_view(modal, user=voter, values=typed)

    assert submitted.status == 200 and submitted.body == ""  # the modal closes
    [vote] = [e for e in store.since() if e.answer_id == answer_id]
    assert (vote.user_id, vote.vote, vote.reason) == (voter, "down", "cites the wrong page")
    assert vote.question == "How are rerankers scored?" and vote.answer
    assert vote.sources and vote.index_version and vote.channel == sent.channel
    assert {s.path for s in vote.sources} <= set(DOCS)

    # 👎 then 👍 before sending a reason: the reason has no 👎 to go on, and says so
    click(FEEDBACK_DOWN, fickle)
    slack_api.wait_for("views.open", 2)
    slack_api.wait_for("chat.postEphemeral", 2)  # the 👎 is stored before its thanks
    click(FEEDBACK_UP, fickle)
    slack_api.wait_for("chat.postEphemeral", 3)
    second = slack_api.opened_views[1]
    refused = slack_events.submit_view(second, user=fickle, values=typed)
    assert json.loads(refused.body) == {
        "response_action": "errors",
        "errors": {REASON_BLOCK: NOT_SAVED_TEXT},
    }
    after = stats.week()
    assert (after.up - before.up, after.down - before.down) == (1, 1)  # a changed mind is one


def test_a_failed_modal_still_counts_the_vote(bot_stack, slack_events, slack_api, new_user):
    sent = slack_events.mention("What does BM25 match?", user=new_user())
    answer = wait_for_answer(slack_api, sent)
    answer_id = feedback_value(answer)
    slack_api.fail_with("views.open", "expired_trigger_id")
    voter = new_user()

    slack_events.click(
        FEEDBACK_DOWN, answer_id, user=voter, channel=sent.channel, message_ts=answer["ts"]
    )

    slack_api.wait_for("chat.postEphemeral", 1)
    assert FeedbackStore(bot_stack.redis, prefix=bot_stack.prefix).counts(answer_id)["down"] == 1
    assert slack_api.opened_views == []


def test_views_open_takes_a_fresh_trigger_once_and_a_valid_modal(slack_client, slack_api):
    modal = reason_modal("A1")
    fresh = new_trigger_id()

    opened = slack_client.views_open(trigger_id=fresh, view=modal)

    assert opened["view"]["private_metadata"] == "A1" and opened["view"]["id"].startswith("V")
    refusals = {
        "exchanged_trigger_id": {"trigger_id": fresh, "view": modal},
        "expired_trigger_id": {"trigger_id": new_trigger_id(time.time() - 4), "view": modal},
        "invalid_trigger_id": {"trigger_id": "t", "view": modal},
        "invalid_arguments": {
            "trigger_id": new_trigger_id(),
            "view": {**modal, "title": {"type": "plain_text", "text": "x" * 25}},
        },
    }
    for error, args in refusals.items():
        with pytest.raises(SlackApiError) as refused:
            slack_client.views_open(**args)
        assert refused.value.response["error"] == error
    assert len(slack_api.opened_views) == 1
