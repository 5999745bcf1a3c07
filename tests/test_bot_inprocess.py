"""``ragbot serve --http`` alone, without Redis: the app answers in its own process.

Its queue, de-duplication and rate limits live in memory and its worker is a thread; it
opens its Milvus Lite file itself (no other process may), so the index is built through
``/reindex`` in that same process.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.bot_stack import ADMIN_USER, BotProcesses, process_env
from tests.fixtures.slack_events import bot_messages, command_reply, wait_for_answer, wait_for_dm


@pytest.fixture(scope="module")
def lone_app(
    tmp_path_factory: pytest.TempPathFactory, bot_config: dict[str, str]
) -> Iterator[BotProcesses]:
    folder = tmp_path_factory.mktemp("bot-inprocess")
    variables = {
        **bot_config,
        "RAGBOT_REDIS_URL": "",
        "RAGBOT_MILVUS_URI": str(folder / "milvus" / "ragbot.db"),
    }
    processes = BotProcesses(process_env(variables), log_dir=folder, cwd=folder)
    processes.start_app()
    try:
        processes.wait_ready()
        yield processes
    finally:
        processes.stop()


def test_app_without_redis_indexes_and_answers_by_itself(lone_app, events_to, slack_api, new_user):
    events = events_to(lone_app.url)
    user = new_user()

    before = events.mention("How do I install Milvus Lite?", user=user)
    assert "Nothing is indexed yet" in wait_for_answer(slack_api, before)["text"]

    _, reply = command_reply(events, slack_api, "/reindex", "", user=ADMIN_USER)
    assert reply.startswith("Re-indexing the docs.")
    wait_for_dm(slack_api, ADMIN_USER, "Reindex finished")
    sent = events.mention("How do I install Milvus Lite?", user=user)
    answer = wait_for_answer(slack_api, sent)

    assert "Sources: [1]" in answer["text"]
    assert bot_messages(slack_api, sent.channel, sent.ts) == [answer]
    assert "Traceback" not in lone_app.log("app")
    assert set(lone_app.processes) == {"app"}
