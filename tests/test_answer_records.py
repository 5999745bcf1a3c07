"""Answer records: one contract on real Redis and in memory, and what each backend adds."""

from __future__ import annotations

import dataclasses
import logging

import pytest
import redis

from bot.answer_records import AnswerRecord, AnswerRecords, SourceRecord
from rag_core.errors import ConfigError


def record(job_id: str, text: str = "Use a partition key.") -> AnswerRecord:
    source = SourceRecord(number=1, title="Partitions", url="https://d/p", path="p.md")
    return AnswerRecord(
        job_id=job_id,
        channel="C1",
        thread_ts="1700000000.000100",
        user="U1",
        question="How do partitions work?",
        text=text,
        kind="answered",
        sources=(source,),
        index_version="docs__v20250101000000_abcdef",
    )


@pytest.fixture
def records(redis_or_memory) -> AnswerRecords:
    client, prefix = redis_or_memory
    return AnswerRecords(client, prefix=prefix)


def test_a_record_comes_back_whole_and_a_later_one_replaces_it(records: AnswerRecords) -> None:
    first = record("job-1")
    records.put(first)
    assert records.get("job-1") == first
    again = dataclasses.replace(first, text="Use partition keys, not partitions.")
    records.put(again)
    assert records.get("job-1") == again
    assert records.get("job-2") is None
    assert records.get("") is None


def test_memory_keeps_the_last_records_only() -> None:
    records = AnswerRecords(None, memory_limit=2)
    for job in ("a", "b", "c"):
        records.put(record(job))
    assert [records.get(job) is not None for job in ("a", "b", "c")] == [False, True, True]
    with pytest.raises(ConfigError):
        AnswerRecords(None, memory_limit=0)


def test_redis_records_expire_and_an_unreadable_one_is_a_miss(
    redis_client: redis.Redis, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    records = AnswerRecords(redis_client, prefix=redis_prefix, ttl_s=3600)
    records.put(record("job-1"))
    assert 3590 < redis_client.ttl(f"{redis_prefix}answer:job-1") <= 3600
    redis_client.set(f"{redis_prefix}answer:job-2", b"\xff not json")
    with caplog.at_level(logging.WARNING, logger="bot.answer_records"):
        assert records.get("job-2") is None
    assert "job-2" in caplog.text


def test_redis_down_drops_the_record_without_failing(unreachable_redis_url: str) -> None:
    records = AnswerRecords(redis.Redis.from_url(unreachable_redis_url, socket_connect_timeout=0.5))
    records.put(record("job-1"))
    assert records.get("job-1") is None
