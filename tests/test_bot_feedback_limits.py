"""👍/👎 clicks on answers, and the per-user question rate limit, end to end."""

from __future__ import annotations

from bot.blocks import FEEDBACK_DOWN, FEEDBACK_UP, feedback_ack_text
from bot.feedback import FeedbackStore
from tests.fixtures.slack_events import ACK_BUDGET_S, bot_messages, wait_for_answer, wait_quiet


def test_feedback_click_is_stored_and_thanked_privately(
    bot_stack, slack_events, slack_api, new_user
):
    asker, voter = new_user(), new_user()
    sent = slack_events.mention("How are rerankers scored?", user=asker)
    answer = wait_for_answer(slack_api, sent)
    answer_id = answer["blocks"][-1]["elements"][0]["value"]
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
