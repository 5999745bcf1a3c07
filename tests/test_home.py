"""The App Home tab: its view (checked against Slack's view limits) and, end to end,
``app_home_opened`` -> ``views.publish`` and the admin's Reindex button."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
import redis

from bot.answer_stats import AnswerStats, WeekStats
from bot.conversation_state import reindex_lock
from bot.home import HOME_REINDEX, home_view
from bot.index_status import IndexStatus, IndexStatusStore, IndexStatusUnavailable
from bot.jobs import ReindexJob, new_job_id
from bot.reindexing import ReindexHandler, record_served_index
from rag_core.build_lock import FileBuildLocks
from rag_core.components import load_models, open_stores
from rag_core.docset_index import DocSetIndexer
from tests.fixtures.bot_stack import ADMIN_USER, bot_settings
from tests.fixtures.slack_events import wait_for_dm, wait_quiet
from tests.fixtures.slack_views import check_view

NOW = 1_750_000_000.0
INDEX = IndexStatus(
    version="docs__v20250101_abc", chunks=1234, documents=56, built_at=NOW - 3600, built_by="U42"
)
WEEK = WeekStats(
    questions=40, answered=30, not_covered=10, up=7, down=2, gaps=(("how do i <rotate> keys", 4),)
)


def text_of(view: dict) -> str:
    return str(view["blocks"])


def buttons(view: dict) -> list[str]:
    return [
        element["action_id"]
        for block in view["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
    ]


def test_home_view_shows_index_week_and_gaps_within_slack_limits():
    view = home_view(week=WEEK, index=[INDEX], admin=False, now=NOW)

    check_view(view, surface="home")
    text = text_of(view)
    assert "56 documents, 1,234 chunks" in text and "docs__v20250101_abc" in text
    assert "<@U42>" in text and f"<!date^{int(NOW - 3600)}^" in text
    assert "*Questions*\\n40" in text and "30 (75%)" in text and "👍 7" in text
    assert "how do i &lt;rotate&gt; keys (4×)" in text
    assert buttons(view) == []


def test_admins_get_the_reindex_button_and_a_notice_on_top():
    view = home_view(week=WEEK, index=[INDEX], admin=True, notice="Re-indexing.", now=NOW)

    check_view(view, surface="home")
    assert buttons(view) == [HOME_REINDEX]
    assert view["blocks"][1]["text"]["text"] == "Re-indexing."


@pytest.mark.parametrize(
    ("index", "readable", "week", "expected"),
    [
        ([], True, WeekStats(), ["No index has been reported yet", "every question found"]),
        ([], False, WeekStats(available=False), ["Redis is unavailable", "Unavailable"]),
    ],
)
def test_home_view_says_in_words_what_it_cannot_show(index, readable, week, expected):
    view = home_view(week=week, index=index, index_readable=readable, now=NOW)

    check_view(view, surface="home")
    for words in expected:
        assert words in text_of(view)


def test_many_long_gaps_stay_within_slack_limits():
    gaps = tuple((f"question {n} " + "x" * 400, 100 - n) for n in range(50))
    view = home_view(week=WeekStats(questions=50, not_covered=50, gaps=gaps), index=[], now=NOW)
    check_view(view, surface="home")


# -- end to end ---------------------------------------------------------------------------


def published(slack_api, user: str) -> dict:
    [call] = slack_api.wait_for("views.publish", 1, timeout=10)
    assert call.args["user_id"] == user
    view = slack_api.home_view(user)
    assert view is not None
    return view


def test_opening_home_publishes_last_weeks_stats_and_the_index(
    in_thread_bot, events_to, slack_api, redis_client, new_user
):
    bot = in_thread_bot()
    prefix = bot.settings.redis_prefix
    stats = AnswerStats(redis_client, prefix=prefix)  # what the workers counted
    stats.record_answer(kind="generated", question="How do I install Milvus Lite?")
    stats.record_answer(kind="not_covered", question="Does it run on Windows?")
    stats.record_answer(kind="not_covered", question="does it run on windows")
    stats.record_vote("down")
    IndexStatusStore(redis_client, prefix=prefix).put(
        IndexStatus(version="bot_v1", chunks=9, documents=3, built_at=time.time(), built_by="U9")
    )
    events = events_to(bot.url)
    user = new_user()

    messages_tab = events.home_opened(user=user, tab="messages")
    ack = events.home_opened(user=user)
    view = published(slack_api, user)

    assert messages_tab.status == ack.status == 200
    text = text_of(view)
    assert "3 documents, 9 chunks" in text and "<@U9>" in text
    assert "*Questions*\\n3" in text and "👎 1" in text
    assert "does it run on windows (2×)" in text
    assert buttons(view) == []  # not an admin: users.info does not know them


def test_admin_reindexes_from_home_with_progress_in_a_dm(
    in_thread_bot, events_to, slack_api, new_user
):
    bot = in_thread_bot()
    events = events_to(bot.url)
    events.home_opened(user=ADMIN_USER)
    view = published(slack_api, ADMIN_USER)
    assert buttons(view) == [HOME_REINDEX]

    click = events.click_in_view(HOME_REINDEX, "all", user=ADMIN_USER, view=view)

    assert click.status == 200
    calls = slack_api.wait_for("views.publish", 2, timeout=10)
    assert calls[1].args["user_id"] == ADMIN_USER
    again = slack_api.home_view(ADMIN_USER)
    assert (
        again["id"] == view["id"] and "Re-indexing the docs." in again["blocks"][1]["text"]["text"]
    )
    versions = wait_for_dm(slack_api, ADMIN_USER, "Reindex finished")
    assert versions[0]["text"] == "Re-index queued…"

    someone = new_user()  # a non-admin's forged click is refused in words
    events.click_in_view(HOME_REINDEX, "all", user=someone, view=view)
    slack_api.wait_for("views.publish", 3, timeout=10)
    wait_quiet(slack_api, quiet_s=0.5)
    refused = slack_api.home_view(someone)
    assert "Only workspace admins" in refused["blocks"][1]["text"]["text"]
    assert [
        c for c in slack_api.calls_for("chat.postMessage") if c.args["channel"] == someone
    ] == []


# -- what the workers record for the tab ----------------------------------------------------


def test_a_finished_reindex_is_recorded_with_who_started_it(
    bot_index, slack_client, redis_client, redis_prefix, tmp_path
):
    settings = bot_settings(bot_index)
    stores = open_stores(settings)
    status = IndexStatusStore(redis_client, prefix=redis_prefix)
    handler = ReindexHandler(
        indexer=DocSetIndexer(
            settings, load_models(settings).embedder, FileBuildLocks(tmp_path / "locks")
        ),
        stores=stores,
        client=slack_client,
        lock=reindex_lock(redis_client, prefix=redis_prefix),
        index_status=status,
    )
    job = ReindexJob(job_id=new_job_id(), user="U7", channel="D7")

    handler.handle(job, heartbeat=lambda: None)

    [recorded] = status.statuses()
    documents = len(list(Path(settings.docs_path).rglob("*.md")))
    assert (recorded.built_by, recorded.documents) == ("U7", documents) and recorded.chunks > 0
    assert recorded.docset == "docs"
    record_served_index(status, stores)  # a worker starting later keeps who built it
    assert status.statuses() == [recorded]
    handler.handle(ReindexJob(job_id=new_job_id(), user="", channel=""), heartbeat=lambda: None)
    assert status.statuses() == [recorded], "a refresh that changed nothing keeps the record"
    fresh = IndexStatusStore(None)  # a worker finding an index built by `ragbot index`
    record_served_index(fresh, stores)
    [found] = fresh.statuses()
    assert found.version == recorded.version
    assert (found.documents, found.built_by, found.chunks) == (None, "", recorded.chunks)
    stores.close()


def test_index_status_unreadable_is_told_apart_from_nothing_recorded(
    redis_client, redis_prefix, unreachable_redis_url
):
    assert IndexStatusStore(redis_client, prefix=redis_prefix).statuses() == []
    down = IndexStatusStore(redis.Redis.from_url(unreachable_redis_url, socket_connect_timeout=0.5))
    with pytest.raises(IndexStatusUnavailable):
        down.statuses()
    down.put(INDEX)  # logged, not raised


def test_home_view_names_each_doc_set_and_its_commit():
    wiki = IndexStatus(
        version="kb_wiki__v20250101_def",
        chunks=40,
        documents=None,
        built_at=NOW - 60,
        docset="wiki",
        commit="0123456789abcdef0123456789abcdef01234567",
        commit_at=NOW - 7200,
    )
    view = home_view(week=WEEK, index=[INDEX, wiki], now=NOW)

    check_view(view, surface="home")
    text = text_of(view)
    assert "• *docs*: 56 documents, 1,234 chunks" in text
    assert f"• *wiki*: 40 chunks, commit `0123456` of <!date^{int(NOW - 7200)}^" in text


def test_each_doc_set_keeps_its_latest_status_stamped(redis_or_memory):
    client, prefix = redis_or_memory
    store = IndexStatusStore(client, prefix=prefix)
    before = time.time()
    store.put(dataclasses.replace(INDEX, docset="zeta"))
    store.put(INDEX)
    newer = dataclasses.replace(INDEX, version="docs__v20250102_def", chunks=1300)
    store.put(newer)
    found = store.statuses()
    assert [(s.docset, s.version) for s in found] == [
        (INDEX.docset, newer.version),
        ("zeta", INDEX.version),
    ]
    assert all(s.recorded_at >= before for s in found)
    store.record_served(dataclasses.replace(newer, built_by="", documents=None))
    assert store.statuses()[0].built_by == "U42", "the same version keeps who built it"
