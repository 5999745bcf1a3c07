"""AnswerStats: one contract, run against Redis and the in-memory backend."""

from __future__ import annotations

import logging
import time

import pytest
import redis

from bot.answer_stats import (
    DAY_KEY,
    DEFAULT_TTL_DAYS,
    GAPS_KEY,
    AnswerStats,
    WeekStats,
    day_of,
    normalise_question,
)
from rag_core.errors import InputError

DAY_S = 86_400


@pytest.fixture
def stats(redis_or_memory) -> AnswerStats:
    client, prefix = redis_or_memory
    return AnswerStats(client, prefix=prefix)


def test_answers_are_counted_by_kind_and_gaps_grouped_most_asked_first(stats: AnswerStats):
    now = time.time()
    stats.record_answer(kind="generated", question="How do I install Milvus Lite?", at=now)
    stats.record_answer(kind="extractive", question="What is BM25?", at=now)
    stats.record_answer(kind="not_covered", question="How do I  rotate  the API key?", at=now)
    stats.record_answer(kind="not_covered", question="how do i rotate the api key", at=now)
    stats.record_answer(kind="not_covered", question="<@UBOT> Is there a Windows build?", at=now)

    week = stats.week(now)

    assert (week.questions, week.answered, week.not_covered) == (5, 2, 3)
    assert week.gaps == (("how do i rotate the api key", 2), ("is there a windows build", 1))
    assert week.available


def test_the_week_is_the_last_seven_utc_days(stats: AnswerStats):
    now = time.time()
    for days_ago in (0, 3, 6, 7, 30):
        at = now - days_ago * DAY_S
        stats.record_answer(kind="not_covered", question=f"gap {days_ago} days ago", at=at)
        stats.record_vote("up", at=at)

    week = stats.week(now)

    assert (week.questions, week.not_covered, week.up) == (3, 3, 3)
    assert {q for q, _ in week.gaps} == {"gap 0 days ago", "gap 3 days ago", "gap 6 days ago"}


def test_a_changed_vote_moves_from_one_count_to_the_other(stats: AnswerStats):
    now = time.time()
    stats.record_vote("up", at=now)
    stats.record_vote("down", replaces="up", at=now)  # the same user changed their mind
    stats.record_vote("down", replaces="down", at=now)  # clicked 👎 again: no change
    stats.record_vote("down", at=now)

    assert (stats.week(now).up, stats.week(now).down) == (0, 2)
    with pytest.raises(InputError):
        stats.record_vote("meh")


def test_gaps_are_capped_to_the_most_asked(stats: AnswerStats):
    now = time.time()
    for n in range(15):
        for _ in range(n % 3 + 1):
            stats.record_answer(kind="not_covered", question=f"question {n}", at=now)

    gaps = stats.week(now, gap_count=4).gaps

    assert [count for _, count in gaps] == [3, 3, 3, 3]
    assert len(gaps) == 4


def test_normalising_keeps_the_words_and_drops_noise():
    assert normalise_question("  What IS\tBM25 ?? ") == "what is bm25"
    assert normalise_question("<@U123|ragbot> hi!") == "hi"
    assert len(normalise_question("x" * 1000)) == 300


def test_redis_keys_are_per_day_and_expire(redis_client, redis_prefix):
    stats = AnswerStats(redis_client, prefix=redis_prefix)
    now = time.time()
    stats.record_answer(kind="not_covered", question="Where are the logs?", at=now)

    day = day_of(now)
    for key in (f"{redis_prefix}{DAY_KEY}{day}", f"{redis_prefix}{GAPS_KEY}{day}"):
        assert 0 < redis_client.ttl(key) <= DEFAULT_TTL_DAYS * DAY_S
    # another process (the app) reads what a worker counted
    assert AnswerStats(redis_client, prefix=redis_prefix).week(now).not_covered == 1


def test_redis_down_counts_nothing_and_says_so(unreachable_redis_url, caplog):
    stats = AnswerStats(redis.Redis.from_url(unreachable_redis_url, socket_connect_timeout=0.5))
    with caplog.at_level(logging.WARNING, logger="bot.answer_stats"):
        stats.record_answer(kind="generated", question="Anything?")
        stats.record_vote("up")
        week = stats.week()
    assert week == WeekStats(available=False)
    warnings = [r for r in caplog.records if r.name == "bot.answer_stats"]
    assert len(warnings) == 1  # once per outage, not per call
