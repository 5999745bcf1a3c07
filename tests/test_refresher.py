"""Doc set refreshes: when one is due, that workers share one schedule and one re-index at
a time, and a new commit reaching the answers through the queue and a real worker."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from bot.conversation_state import ReindexLock, reindex_lock
from bot.index_status import IndexStatusStore
from bot.jobs import ReindexJob
from bot.queue import RedisJobQueue
from bot.refresher import DocSetRefresher, refresh_schedule
from rag_core.docsets import DocSet
from tests.fixtures.bot_stack import bot_settings, env_name
from tests.fixtures.slack_events import wait_for_answer
from tests.test_docsets import commit_all, git, new_repo

HOURLY = DocSet("wiki", "git", "repo", "c_wiki", refresh_s=3600.0)
DAILY = DocSet("site", "sitemap", "https://x/sitemap.xml", "c_site", refresh_s=86400.0)
ON_DEMAND = DocSet("handbook", "folder", "handbook", "c_handbook")


def refresher(redis_client, prefix: str) -> tuple[DocSetRefresher, RedisJobQueue, ReindexLock]:
    queue = RedisJobQueue(redis_client, prefix=prefix)
    lock = reindex_lock(redis_client, prefix=prefix)
    schedule = refresh_schedule(redis_client, prefix=prefix)
    made = DocSetRefresher([HOURLY, DAILY, ON_DEMAND], queue=queue, lock=lock, schedule=schedule)
    return made, queue, lock


def queued(queue: RedisJobQueue) -> list[ReindexJob]:
    jobs = []
    while (delivery := queue.take("test", block_ms=10)) is not None:
        jobs.append(delivery.job)
        queue.ack(delivery)
    return jobs


def test_due_doc_sets_are_queued_one_at_a_time_on_a_shared_schedule(redis_client, redis_prefix):
    first, queue, lock = refresher(redis_client, redis_prefix)
    second, _, _ = refresher(redis_client, redis_prefix)  # another worker process
    now = time.time()

    assert [d.name for d in first.due(now)] == ["wiki", "site"]  # never refreshed
    assert first.run_once(now) == "wiki"
    assert second.run_once(now) is None  # the re-index lock is taken until the job ends
    [job] = queued(queue)
    assert (job.docset, job.user, job.progress_ts) == ("wiki", "", None)

    lock.release(job.job_id)  # the job finished
    assert second.run_once(now + 1) == "site"  # the other worker sees wiki's mark
    lock.release(queued(queue)[0].job_id)
    assert first.run_once(now + 60) is None  # nothing is due for another hour
    assert first.run_once(now + 3601) == "wiki"
    assert not DocSetRefresher([ON_DEMAND], queue=queue, lock=lock, schedule=None).active  # type: ignore[arg-type]


def test_a_new_commit_is_refreshed_into_the_answers(
    in_thread_bot, bot_index, events_to, slack_api, new_user, tmp_path, redis_client
):
    from rag_core.commands import run_index

    repo = new_repo(
        tmp_path / "origin",
        {"docs/otters.md": "# Otter backups\n\nOtters back up with `otter snapshot`.\n"},
    )
    config = tmp_path / "ragbot.toml"
    config.write_text(
        f'[docsets.wiki]\nsource = "{repo}"\ntype = "git"\nsubdir = "docs"\nrefresh = "1h"\n',
        "utf-8",
    )
    overrides = {
        "config": config,
        "collection": f"rf_{uuid.uuid4().hex[:8]}",
        "data_dir": tmp_path / "data",
    }
    run = run_index(
        bot_settings({**bot_index, **{env_name(k): str(v) for k, v in overrides.items()}})
    )
    assert run.failed == [], run.text
    bot = in_thread_bot(**overrides)
    settings = bot.settings
    (repo / "docs" / "seals.md").write_text(
        "# Seal sightings\n\nSeals are counted every Tuesday at the harbour.\n", "utf-8"
    )
    commit = commit_all(repo, "seals")
    prefix = settings.redis_prefix
    refresh = DocSetRefresher(  # as a worker process runs it beside its workers
        settings.docsets,
        queue=RedisJobQueue(redis_client, prefix=prefix),
        lock=reindex_lock(redis_client, prefix=prefix),
        schedule=refresh_schedule(redis_client, prefix=prefix),
    )
    status = IndexStatusStore(redis_client, prefix=prefix)

    deadline = time.monotonic() + 60
    while refresh.run_once(time.time() + 3601) != "wiki":  # an hour later, once the lock
        assert time.monotonic() < deadline  # of the worker's own first refresh is free
        time.sleep(0.2)
    while [s.commit for s in status.statuses()] != [commit]:
        assert time.monotonic() < deadline, status.statuses()
        time.sleep(0.2)

    sent = events_to(bot.url).mention("When are seals counted?", user=new_user(), channel="C1")
    answer = wait_for_answer(slack_api, sent)
    assert "Seal sightings" in str(answer["blocks"])
    assert git(repo, "rev-parse", "HEAD") == commit
    assert Path(settings.data_dir, "git", "wiki").is_dir()  # the clone is kept for next time


def test_a_schedule_remembers_when_each_refresh_began(redis_or_memory) -> None:
    client, prefix = redis_or_memory
    schedule = refresh_schedule(client, prefix=prefix)
    assert schedule.started("docs") == 0.0
    schedule.mark("docs", 1_764_561_234.125)
    assert schedule.started("docs") == 1_764_561_234.125
    assert schedule.started("other") == 0.0
    if client is not None:  # shared by every worker process
        assert refresh_schedule(client, prefix=prefix).started("docs") == 1_764_561_234.125
