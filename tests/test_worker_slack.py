"""Slack failing while a worker posts: transient failures are retried in the worker (the
pipeline runs once), permanent ones dead-letter the job at once, and a retry window
that runs out puts the job back on the queue. Real Redis, the scripted Slack stand-in."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from slack_sdk import WebClient

from bot.jobs import JobState
from bot.metrics import BotMetrics
from bot.slack_retry import SlackRetry, SlackUnavailable, without_sdk_retries
from bot.worker_setup import bot_user_of
from rag_core.errors import ConfigError
from tests.fixtures.slack_api import BOT_TOKEN, BOT_USER_ID
from tests.fixtures.worker_parts import (
    CHANNEL,
    CountingPipeline,
    bot_replies,
    build_worker,
    counter,
    question,
    redis_parts,
    tagged,
)

POST = "chat.postMessage"


@pytest.fixture
def parts(redis_client, redis_prefix):
    return redis_parts(redis_client, redis_prefix, stale_after_ms=60_000)


def run_one(slack_api, parts, *, window_s: float = 10.0):
    queue, ledger = parts
    metrics = BotMetrics()
    pipeline = CountingPipeline()
    worker = build_worker(
        slack_api,
        queue=queue,
        ledger=ledger,
        pipeline=pipeline,
        metrics=metrics,
        window_s=window_s,
    )
    job = question(slack_api)
    queue.enqueue(job)
    worker.run(stop=threading.Event(), burst=True)
    return job, pipeline, metrics


@pytest.mark.parametrize(
    "fault",
    ["rate_limited", "http_500", "dropped", "dropped_after_posting", "internal_error"],
)
def test_transient_slack_failures_give_one_answer_from_one_pipeline_run(
    slack_api, parts, fault: str
) -> None:
    if fault == "rate_limited":
        slack_api.rate_limit(POST, times=2, retry_after=1)
    elif fault == "http_500":
        slack_api.fail_http(POST, 500, times=3)
    elif fault == "dropped":
        slack_api.drop(POST, times=2)
    elif fault == "dropped_after_posting":  # it landed; only the answer was lost
        slack_api.drop(POST, times=1, after_effect=True)
    else:
        slack_api.fail_with(POST, "internal_error", times=2)
    started = time.monotonic()

    job, pipeline, metrics = run_one(slack_api, parts)

    [answer] = bot_replies(slack_api, job)
    assert tagged(answer) == job.job_id and "Answer to" in answer["text"]
    assert pipeline.runs == 1
    assert counter(metrics.jobs_finished, outcome="done") == 1
    queue, ledger = parts
    assert queue.depth() == 0 and ledger.record(job.job_id).state is JobState.DONE
    if fault == "rate_limited":
        assert time.monotonic() - started >= 2.0, "Retry-After was honoured"
    if fault == "dropped_after_posting":
        assert len(slack_api.calls_for("chat.update")) == 1
        assert ledger.record(job.job_id).posted_ts == answer["ts"]


@pytest.mark.parametrize("error", ["not_in_channel", "invalid_blocks", "token_revoked"])
def test_a_permanent_slack_error_dead_letters_the_job_at_once_and_the_asker_is_told(
    slack_api, parts, caplog: pytest.LogCaptureFixture, error: str
) -> None:
    slack_api.fail_with(POST, error, times=None, match={"channel": CHANNEL})
    caplog.set_level(logging.INFO)

    job, pipeline, metrics = run_one(slack_api, parts)

    queue, ledger = parts
    assert pipeline.runs == 1
    first, in_thread, direct = (call.args for call in slack_api.calls_for(POST))
    assert first["channel"] == in_thread["channel"] == CHANNEL
    assert error in in_thread["text"], "one plain try in the thread"
    assert direct["channel"] == job.user and error in direct["text"], "then a direct message"
    assert ("/invite" in direct["text"]) is (error == "not_in_channel")
    [dead] = queue.dead_letters()
    assert error in dead.error and dead.attempts == 1
    assert queue.depth() == 0 and ledger.record(job.job_id).state is JobState.FAILED
    assert counter(metrics.jobs_finished, outcome="dead") == 1
    refusals = [r for r in caplog.records if "dead:" in r.getMessage()]
    assert len(refusals) == 1 and refusals[0].exc_info is None


def test_a_reply_slack_refused_once_is_explained_in_the_thread(slack_api, parts) -> None:
    slack_api.fail_with(POST, "invalid_blocks", times=1)

    job, pipeline, _ = run_one(slack_api, parts)

    assert pipeline.runs == 1
    [told] = bot_replies(slack_api, job)
    assert "invalid_blocks" in told["text"] and tagged(told) == job.job_id
    assert len(slack_api.calls_for(POST)) == 2


def test_slack_down_past_the_window_puts_the_job_back_on_the_queue(slack_api, parts) -> None:
    slack_api.fail_http(POST, 503, times=None)

    job, _, metrics = run_one(slack_api, parts, window_s=0.3)

    queue, _ = parts
    assert counter(metrics.jobs_finished, outcome="retried") == 1
    assert queue.depth() == 1 and queue.dead_letters() == []
    assert bot_replies(slack_api, job) == []
    assert queue.take("w2", block_ms=0) is None, "held back for a while"


def test_the_retry_window_bounds_the_time_spent(slack_api) -> None:
    slack_api.fail_http("auth.test", 500, times=None)
    client = without_sdk_retries(WebClient(token=BOT_TOKEN, base_url=slack_api.base_url, timeout=5))
    assert client.retry_handlers == []
    retry = SlackRetry(window_s=1.0, base_delay_s=0.1, max_delay_s=0.4)
    started = time.monotonic()
    with pytest.raises(SlackUnavailable, match="internal_error"):
        retry.call("auth.test", client.auth_test)
    assert time.monotonic() - started < 1.5
    assert 3 <= len(slack_api.calls_for("auth.test")) <= 10


def test_a_refused_bot_token_stops_the_worker_at_start_with_the_reason(slack_api):
    client = WebClient(token=BOT_TOKEN, base_url=slack_api.base_url, timeout=5)
    assert bot_user_of(client) == BOT_USER_ID
    slack_api.fail_with("auth.test", "invalid_auth")
    with pytest.raises(ConfigError, match=r"SLACK_BOT_TOKEN \(auth.test: invalid_auth\)"):
        bot_user_of(client)
    tokenless = WebClient(token="", base_url=slack_api.base_url, timeout=5)
    with pytest.raises(ConfigError, match="not_authed"):
        bot_user_of(tokenless)
