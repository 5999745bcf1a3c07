"""Doc sets in Slack, end to end through the real HTTP endpoint: each channel answers from
its own doc set, a DM from all of them with the sources naming theirs, and ``/reindex``
takes a doc set's name."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.fixtures.bot_stack import ADMIN_USER, bot_settings, env_name
from tests.fixtures.slack_events import command_reply, wait_for_answer, wait_for_dm
from tests.test_docsets import OTTER, TWO_DOC_SETS, ZEBRA, write

ZEBRA_TITLES = {"Installing zebrafish", "Connecting zebrafish"}
OTTER_TITLES = {"Otter backups", "Restoring otters"}


def source_elements(message: dict) -> list[str]:
    return [
        element["text"]
        for block in message["blocks"]
        if block["type"] == "context"
        for element in block["elements"]
        if "[" in element["text"]
    ]


def start_bot(in_thread_bot, bot_index, tmp_path: Path):
    from rag_core.commands import run_index

    write(tmp_path / "zebra", ZEBRA)
    write(tmp_path / "otter", OTTER)
    config = tmp_path / "ragbot.toml"
    config.write_text(TWO_DOC_SETS, encoding="utf-8")
    overrides = {
        "config": config,
        "collection": f"ds_{uuid.uuid4().hex[:8]}",
        "data_dir": tmp_path / "data",
    }
    variables = {**bot_index, **{env_name(k): str(v) for k, v in overrides.items()}}
    run = run_index(bot_settings(variables))
    assert run.failed == [], run.text
    return in_thread_bot(**overrides)


def test_channels_answer_from_their_own_doc_sets_and_dms_from_all(
    in_thread_bot, bot_index, events_to, slack_api, openai_server, new_user, tmp_path
):
    openai_server.reply = lambda request: "It is all in the docs [1][2][3][4]."
    bot = start_bot(in_thread_bot, bot_index, tmp_path)
    events = events_to(bot.url)
    question = "How do I back up otters and install zebrafish?"

    in_zebra = events.mention(question, user=new_user(), channel="C0ZEBRA01")
    in_otter = events.mention(question, user=new_user(), channel="C0OTTER01")
    elsewhere = events.mention(question, user=new_user(), channel="C0RANDOM1")
    in_dm = events.message(question, user=new_user(), channel="D0DOCSETS", channel_type="im")

    zebra_sources = " ".join(source_elements(wait_for_answer(slack_api, in_zebra)))
    otter_sources = " ".join(source_elements(wait_for_answer(slack_api, in_otter)))
    assert any(title in zebra_sources for title in ZEBRA_TITLES)
    assert not any(title in zebra_sources for title in OTTER_TITLES)
    assert "https://zebra.example/" in zebra_sources and "zebra:" not in zebra_sources
    assert any(title in otter_sources for title in OTTER_TITLES)
    assert not any(title in otter_sources for title in ZEBRA_TITLES)
    refused = wait_for_answer(slack_api, elsewhere)
    assert "No doc set answers questions here" in refused["text"]
    dm_sources = source_elements(wait_for_answer(slack_api, in_dm))
    assert len(dm_sources) == 4  # two documents of each doc set, each named
    assert sum("zebra: " in s for s in dm_sources) == sum("otter: " in s for s in dm_sources) == 2


def test_reindex_names_a_doc_set(in_thread_bot, bot_index, events_to, slack_api, tmp_path):
    bot = start_bot(in_thread_bot, bot_index, tmp_path)
    events = events_to(bot.url)

    one = command_reply(events, slack_api, "/reindex", "otter", user=ADMIN_USER)[1]
    versions = wait_for_dm(slack_api, ADMIN_USER, "Reindex finished")
    assert one == "Re-indexing doc set `otter`. I'll post progress in a DM."
    assert "Re-index done: 2 files" in versions[-1]["text"]
    assert any("otter: " in str(v["blocks"]) for v in versions if "Reindexing" in str(v))

    unknown = command_reply(events, slack_api, "/reindex", "seal", user=ADMIN_USER)[1]
    assert unknown == (
        "There is no doc set named `seal`. Doc sets: `zebra`, `otter`; `/reindex` alone does all."
    )
    every = command_reply(events, slack_api, "/reindex", "", user=ADMIN_USER)[1]
    assert every == "Re-indexing every doc set (`zebra`, `otter`). I'll post progress in a DM."
