"""``/reindex`` end to end: who may run it, where its progress goes, how it fails, and
what a re-index does to cached answers. The command is acknowledged at once with an
empty body; its outcome reaches the caller through ``respond()``."""

from __future__ import annotations

from pathlib import Path

from bot.listeners.commands.reindex import ALREADY_RUNNING_TEXT, NOT_ADMIN_TEXT
from tests.fixtures.bot_stack import ADMIN_USER
from tests.fixtures.slack_api import SlackApiStandIn
from tests.fixtures.slack_events import (
    ACK_BUDGET_S,
    Ack,
    SlackEvents,
    command_reply,
    dm_versions,
    wait_for_answer,
    wait_for_dm,
    wait_quiet,
)


def reindex(
    slack_events: SlackEvents, slack_api: SlackApiStandIn, text: str, *, user: str
) -> tuple[Ack, str]:
    return command_reply(slack_events, slack_api, "/reindex", text, user=user)


def test_non_admins_and_unknown_doc_sets_are_refused_privately(
    bot_stack, slack_events, slack_api, new_user
):
    refused, refusal = reindex(slack_events, slack_api, "", user=new_user())
    unknown, escape = reindex(slack_events, slack_api, "../../etc", user=ADMIN_USER)

    assert refused.status == 200 and refused.seconds < ACK_BUDGET_S
    assert refused.body == "" and unknown.body == ""
    assert refusal == NOT_ADMIN_TEXT
    assert escape == (
        "There is no doc set named `../../etc`. Doc sets: `docs`; `/reindex` alone does all."
    )
    wait_quiet(slack_api, quiet_s=1.0)
    assert slack_api.calls_for("chat.postMessage") == []
    assert bot_stack.redis.xlen(bot_stack.stream) == 0


def test_workspace_admin_reindexes_with_progress_in_one_dm(
    bot_stack, slack_events, slack_api, new_user
):
    admin = new_user()
    slack_api.add_user(admin, is_admin=True)

    # The first progress update waits until the second /reindex has been answered, so
    # the first re-index is surely still running then.
    held = slack_api.hold("chat.update", match={"channel": admin})
    started, start_reply = reindex(slack_events, slack_api, "", user=admin)
    held.wait_arrived(timeout=30)
    _, second_reply = reindex(slack_events, slack_api, "", user=ADMIN_USER)
    held.release()

    assert started.status == 200 and started.seconds < ACK_BUDGET_S
    assert start_reply == "Re-indexing the docs. I'll post progress in a DM."
    assert second_reply == ALREADY_RUNNING_TEXT
    versions = wait_for_dm(slack_api, admin, "Reindex finished")
    assert versions[0]["text"] == "Re-index queued…"
    progress = [v for v in versions if "Reindexing:" in str(v["blocks"])]
    assert len(progress) >= 2, versions
    assert len({v["ts"] for v in versions[1:]}) == 1
    assert versions[-1]["text"].startswith("Re-index done: 3 files")
    assert dm_versions(slack_api, ADMIN_USER) == []

    _, again = reindex(slack_events, slack_api, "", user=ADMIN_USER)  # the lock is free again
    assert again.startswith("Re-indexing the docs.")
    wait_for_dm(slack_api, ADMIN_USER, "Reindex finished")


def test_failed_reindex_says_why_and_the_old_index_keeps_answering(
    bot_stack, slack_events, slack_api, new_user
):
    docs = Path(bot_stack.variables["RAGBOT_DOCS_PATH"])
    docs.rename(docs.with_name("docs-away"))  # the folder vanished from the workers' disk
    try:
        _, reply = reindex(slack_events, slack_api, "docs", user=ADMIN_USER)
        versions = wait_for_dm(slack_api, ADMIN_USER, "Reindex failed")
    finally:
        docs.with_name("docs-away").rename(docs)

    assert reply == "Re-indexing doc set `docs`. I'll post progress in a DM."
    assert f"Doc set docs: the folder {docs} does not exist" in versions[-1]["text"]
    assert "previous index is still serving" in str(versions[-1]["blocks"])

    sent = slack_events.mention("What does the Helm chart set?", user=new_user())
    answer = wait_for_answer(slack_api, sent)
    assert "Sources: [1]" in answer["text"]


def test_answer_cache_serves_repeats_until_a_reindex(
    bot_stack, bot_config, slack_events, slack_api, openai_server, new_user
):
    question = "Which file does MilvusClient create for Milvus Lite?"
    first = wait_for_answer(slack_api, slack_events.mention(question, user=new_user()))
    assert len(openai_server.requests) == 1

    repeat = wait_for_answer(
        slack_api, slack_events.mention(f"  {question.lower()}", user=new_user())
    )
    assert len(openai_server.requests) == 1
    assert repeat["text"] == first["text"]
    assert repeat["blocks"][-1] != first["blocks"][-1]  # its own answer id for feedback

    # A re-index of changed docs publishes a new version, which the cache keys include.
    # (An unchanged corpus keeps its version, and its cached answers stay right.)
    docs = Path(bot_config["RAGBOT_DOCS_PATH"])
    (docs / "changelog.md").write_text("# Changelog\n\nVersion 2 adds hybrid search.\n", "utf-8")
    slack_events.command("/reindex", "", user=ADMIN_USER)
    wait_for_dm(slack_api, ADMIN_USER, "Reindex finished")
    wait_for_answer(slack_api, slack_events.mention(question, user=new_user()))
    assert len(openai_server.requests) == 2
