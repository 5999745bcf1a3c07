"""Failures users must not pay for twice: a worker dying mid-answer, and the chat model
failing (HTTP 500) or refusing (HTTP 429)."""

from __future__ import annotations

import time

from bot.answering import LLM_BUSY, LLM_DOWN
from bot.jobs import JobState
from bot.posting import job_id_of
from bot.queue import RedisJobLedger
from tests.fixtures.bot_stack import worker_process
from tests.fixtures.slack_events import bot_messages, wait_for_answer, wait_quiet


def wait_for_requests(openai_server, count: int, *, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while len(openai_server.requests) < count:
        assert time.monotonic() < deadline, f"the chat model got {len(openai_server.requests)}"
        time.sleep(0.05)


def job_owner(bot_stack) -> str:
    """The worker process holding the one job being worked on."""
    [pending] = bot_stack.redis.xpending_range(bot_stack.stream, "workers", "-", "+", 10)
    return worker_process(pending["consumer"].decode())


def test_job_of_a_killed_worker_is_answered_once_by_another(
    bot_stack, slack_events, slack_api, openai_server, new_user
):
    openai_server.delay(20)  # the first worker is stuck in the chat model when it dies
    sent = slack_events.mention("How do I roll out a Helm upgrade?", user=new_user())
    wait_for_requests(openai_server, 1)
    victim = job_owner(bot_stack)

    bot_stack.processes.kill(victim)
    try:
        answer = wait_for_answer(slack_api, sent, timeout_s=40)
        wait_quiet(slack_api, quiet_s=1.5)
    finally:
        bot_stack.processes.start_worker(victim)  # back to two for later tests

    assert "How do I roll out a Helm upgrade?" in answer["text"]
    assert bot_messages(slack_api, sent.channel, sent.thread_ts) == [answer]
    posts = [
        c for c in slack_api.calls_for("chat.postMessage") if c.args["channel"] == sent.channel
    ]
    assert len(posts) == 1, "the dead worker never posted; the survivor posted once"
    assert len(openai_server.requests) == 2
    job_id = answer["blocks"][-1]["elements"][0]["value"]
    assert job_id_of(answer) == job_id
    ledger = RedisJobLedger(bot_stack.redis, prefix=bot_stack.prefix)
    assert ledger.record(job_id).state == JobState.DONE
    assert bot_stack.redis.xpending_range(bot_stack.stream, "workers", "-", "+", 10) == []
    survivor = bot_stack.redis.hget(f"{bot_stack.prefix}job:{job_id}", "consumer")
    assert survivor is not None and worker_process(survivor.decode()) != victim
    assert bot_stack.redis.xlen(bot_stack.stream) == 0


def test_chat_model_errors_reach_the_thread_as_short_messages(
    bot_stack, slack_events, slack_api, openai_server, new_user
):
    user = new_user()
    openai_server.fail(500, times=2)  # the first try and the client's one retry
    down = slack_events.mention("What are index nodes for?", user=user)
    assert wait_for_answer(slack_api, down)["text"] == LLM_DOWN

    openai_server.fail(429, times=2, retry_after=0.001)
    busy = slack_events.mention("What are query nodes for?", user=user)
    assert wait_for_answer(slack_api, busy)["text"] == LLM_BUSY

    recovered = slack_events.mention("What are data nodes for?", user=user)
    assert "Sources: [1]" in wait_for_answer(slack_api, recovered)["text"]
    wait_quiet(slack_api)
    for sent in (down, busy, recovered):
        assert len(bot_messages(slack_api, sent.channel, sent.thread_ts)) == 1
    assert len(openai_server.requests) == 5
    assert not bot_stack.tracebacks()
