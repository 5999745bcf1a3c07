"""``ragbot jobs``: the real command against the real Redis queue."""

from __future__ import annotations

import json

import pytest

from bot.cli import main
from bot.jobs import AskJob, ReindexJob, new_job_id
from bot.queue import RedisJobQueue


@pytest.fixture
def env(monkeypatch, tmp_path, redis_url, redis_prefix):
    monkeypatch.chdir(tmp_path)  # no .env file
    monkeypatch.setenv("RAGBOT_REDIS_URL", redis_url)
    monkeypatch.setenv("RAGBOT_REDIS_PREFIX", redis_prefix)


@pytest.fixture
def queue(redis_client, redis_prefix) -> RedisJobQueue:
    return RedisJobQueue(redis_client, prefix=redis_prefix)


def ask_job(channel: str = "C1") -> AskJob:
    return AskJob(new_job_id(), channel, "1.0", "1.0", "U1", "what is milvus?")


def bury(queue: RedisJobQueue, job, error: str) -> str:
    queue.enqueue(job)
    delivery = queue.take("w-dead", block_ms=0)
    assert delivery is not None and delivery.job == job
    queue.fail(delivery, error)
    return delivery.message_id


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_lists_depth_pending_and_dead_letters(env, queue, capsys):
    dead_job = ask_job("C42")
    dead_id = bury(queue, dead_job, "Slack said channel_not_found")
    queue.enqueue(ask_job())
    assert queue.take("worker-a", block_ms=0) is not None
    queue.enqueue(ask_job())

    code, out, _ = run(capsys, "jobs", "--json")
    assert code == 0
    report = json.loads(out)
    assert (report["queued"], report["pending"], report["dead"]) == (1, 1, 1)
    [pending] = report["pending_jobs"]
    assert pending["consumer"] == "worker-a" and pending["deliveries"] == 1
    assert pending["idle_ms"] >= 0
    [dead] = report["dead_letters"]
    assert dead["message_id"] == dead_id and dead["job_id"] == dead_job.job_id
    assert (dead["kind"], dead["channel"], dead["attempts"]) == ("ask", "C42", 1)
    assert dead["error"] == "Slack said channel_not_found" and dead["failed_at"].endswith("Z")

    code, out, _ = run(capsys, "jobs")
    assert code == 0
    assert "queue: 1 queued, 1 pending, 1 dead" in out
    assert "worker-a" in out and dead_id in out and "channel_not_found" in out


def test_retry_one_dead_letter(env, queue, capsys):
    first, second = ask_job(), ReindexJob(new_job_id(), "U1", "C1", "docs")
    first_id = bury(queue, first, "boom")
    bury(queue, second, "bang")

    code, out, _ = run(capsys, "jobs", "retry", first_id)
    assert code == 0 and f"re-queued {first_id} as " in out
    stats = queue.stats()
    assert (stats.queued, stats.dead) == (1, 1)
    delivery = queue.take("w", block_ms=0)
    assert delivery is not None and delivery.job == first and delivery.attempts == 1
    assert [d.error for d in queue.dead_letters()] == ["bang"]

    code, _, err = run(capsys, "jobs", "retry", first_id)  # already re-queued
    assert code == 2 and err.startswith("error: No dead letter has the id")


def test_retry_all_dead_with_json(env, queue, capsys):
    jobs = [ask_job(f"C{i}") for i in range(3)]
    ids = [bury(queue, job, f"error {i}") for i, job in enumerate(jobs)]

    code, out, _ = run(capsys, "jobs", "retry", "--all-dead", "--json")
    assert code == 0
    assert [row["message_id"] for row in json.loads(out)["requeued"]] == ids
    assert queue.stats().dead == 0 and queue.stats().queued == 3
    taken = [queue.take("w", block_ms=0) for _ in jobs]
    assert sorted(d.job.job_id for d in taken if d) == sorted(j.job_id for j in jobs)

    code, out, _ = run(capsys, "jobs", "retry", "--all-dead")
    assert code == 0 and "no dead letters" in out


def test_retry_needs_an_id_or_all_dead(env, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["jobs", "retry"])
    assert exit_info.value.code == 2


def test_redis_down_is_one_line_and_exit_2(monkeypatch, tmp_path, unreachable_redis_url, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAGBOT_REDIS_URL", unreachable_redis_url)
    for argv in (["jobs"], ["jobs", "retry", "--all-dead"]):
        code, out, err = run(capsys, *argv)
        assert code == 2 and out == ""
        assert err.startswith("error: Redis at 127.0.0.1:") and "unavailable" in err
        assert err.count("\n") == 1


def test_no_redis_url_is_a_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAGBOT_REDIS_URL", raising=False)
    code, _, err = run(capsys, "jobs")
    assert code == 2 and "RAGBOT_REDIS_URL is not set" in err
