"""``ragbot feedback export``: 👍'd answers as JSONL that ``ragbot eval`` reads, from
votes in real Redis, and the round trip from a click in Slack to retrieval metrics."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bot.answer_records import AnswerRecord, SourceRecord
from bot.cli import main
from bot.feedback import FeedbackStore
from bot.feedback_cli import parse_since
from rag_core.errors import InputError
from rag_core.evaluation import load_questions
from tests.fixtures.bot_stack import DOCS
from tests.fixtures.slack_events import wait_for_answer
from tests.test_bot_feedback_limits import feedback_value

DAY_S = 86_400


def record(job_id: str, question: str, *paths: str) -> AnswerRecord:
    sources = tuple(
        SourceRecord(n, f"Title {n}", f"https://docs.example.com/{p}", p)
        for n, p in enumerate(paths, start=1)
    )
    return AnswerRecord(
        job_id=job_id,
        channel="C1",
        thread_ts="1.0",
        user="U0",
        question=question,
        text=f"An answer to {question} [1]",
        kind="generated",
        sources=sources,
        index_version="docs__v1",
    )


@pytest.fixture
def env(monkeypatch, tmp_path, redis_url, redis_prefix):
    monkeypatch.chdir(tmp_path)  # no .env file
    monkeypatch.setenv("RAGBOT_REDIS_URL", redis_url)
    monkeypatch.setenv("RAGBOT_REDIS_PREFIX", redis_prefix)


def export(capsys, *options: str) -> tuple[int, list[dict], str]:
    code = main(["feedback", "export", *options])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def test_exports_one_line_per_helpful_answer_with_its_cited_paths(
    env, redis_client, redis_prefix, capsys, tmp_path
):
    store = FeedbackStore(redis_client, prefix=redis_prefix)
    liked = record("A1", "How do I install Milvus Lite?", "milvus-lite.md", "deploy/kubernetes.md")
    store.record("A1", "U1", "up", answer=liked)
    store.record("A1", "U2", "up", answer=liked)
    store.record("A1", "U3", "down", answer=liked)
    store.add_reason("A1", "U3", "too long")
    store.record("A2", "U1", "down", answer=record("A2", "What is BM25?", "hybrid-search.md"))
    store.record("A3", "U1", "up", answer=record("A3", "Hello?"))  # cited nothing
    store.record("A4", "U1", "up")  # its answer record had expired: no question

    code, rows, err = export(capsys)

    assert code == 0 and "wrote 1 question (from 6 votes)" in err
    [row] = rows
    assert row["question"] == "How do I install Milvus Lite?"
    assert row["relevant"] == ["deploy/kubernetes.md", "milvus-lite.md"]
    assert (row["votes_up"], row["votes_down"], row["reasons"]) == (2, 1, ["too long"])
    assert row["answer"].startswith("An answer to") and row["index_version"] == "docs__v1"
    assert row["answer_id"] == "A1" and row["sources"][0]["path"] == "milvus-lite.md"

    output = tmp_path / "eval.jsonl"
    code, _, _ = export(capsys, "--since", "1d", "--output", str(output))
    [question] = load_questions(output)  # what `ragbot eval` reads
    assert question.question == "How do I install Milvus Lite?"
    assert question.relevant == frozenset({"milvus-lite.md", "deploy/kubernetes.md"})


def test_since_leaves_out_older_votes(env, redis_client, redis_prefix, capsys):
    store = FeedbackStore(redis_client, prefix=redis_prefix)
    store.record("A1", "U1", "up", answer=record("A1", "Old question?", "milvus-lite.md"))
    redis_client.zadd(f"{redis_prefix}feedback:log", {"A1:U1": time.time() - 10 * DAY_S})
    store.record("A2", "U1", "up", answer=record("A2", "New question?", "milvus-lite.md"))

    _, recent, _ = export(capsys, "--since", "7d")
    _, everything, _ = export(capsys)

    assert [row["question"] for row in recent] == ["New question?"]
    assert len(everything) == 2


def test_since_takes_durations_and_iso_dates():
    now = 1_750_000_000.0
    assert parse_since("", now=now) == 0.0
    assert parse_since("7d", now=now) == now - 7 * DAY_S
    assert parse_since("12H", now=now) == now - 12 * 3600
    assert parse_since("2w", now=now) == now - 14 * DAY_S
    assert parse_since("2025-01-31", now=now) == 1_738_281_600.0  # UTC midnight
    assert parse_since("2025-01-31T01:00:00+01:00", now=now) == 1_738_281_600.0
    with pytest.raises(InputError, match="neither a duration"):
        parse_since("last week", now=now)


def test_without_redis_it_fails_in_one_line(monkeypatch, tmp_path, capsys, unreachable_redis_url):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAGBOT_REDIS_URL", "")
    assert main(["feedback", "export"]) == 2
    assert "RAGBOT_REDIS_URL is not set" in capsys.readouterr().err

    monkeypatch.setenv("RAGBOT_REDIS_URL", unreachable_redis_url)
    assert main(["feedback", "export"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Redis is unavailable") and err.count("\n") == 1


def test_a_thumbs_up_in_slack_becomes_an_eval_question(
    in_thread_bot, events_to, slack_api, bot_index, new_user, monkeypatch, tmp_path, capsys
):
    bot = in_thread_bot()
    events = events_to(bot.url)
    sent = events.mention("How do I install Milvus Lite?", user=new_user())
    answer = wait_for_answer(slack_api, sent)
    events.click(
        "feedback_up",
        feedback_value(answer),
        user=new_user(),
        channel=sent.channel,
        message_ts=answer["ts"],
    )
    slack_api.wait_for("chat.postEphemeral", 1)
    monkeypatch.chdir(tmp_path)
    for name, value in {**bot_index, "RAGBOT_REDIS_PREFIX": bot.settings.redis_prefix}.items():
        monkeypatch.setenv(name, value)
    exported = tmp_path / "helpful.jsonl"

    assert main(["feedback", "export", "--since", "1h", "--output", str(exported)]) == 0
    [row] = [json.loads(line) for line in exported.read_text().splitlines()]
    assert row["question"] == "How do I install Milvus Lite?"
    docs = Path(bot_index["RAGBOT_DOCS_PATH"])  # other tests may add documents to it
    indexed = {path.relative_to(docs).as_posix() for path in docs.rglob("*.md")}
    assert row["relevant"] and set(row["relevant"]) <= indexed | set(DOCS)
    capsys.readouterr()
    assert main(["eval", str(exported), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 1 and report["modes"]


@pytest.fixture
def store(redis_or_memory) -> FeedbackStore:
    client, prefix = redis_or_memory
    return FeedbackStore(client, prefix=prefix)


def test_each_users_latest_vote_is_exported_with_its_reason(store: FeedbackStore):
    answer = record("A1", "Where are the logs?", "deploy/kubernetes.md")
    assert store.record("A1", "U1", "up", answer=answer) is None
    assert store.record("A1", "U1", "down", answer=answer) == "up"  # the vote it replaced
    assert store.add_reason("A1", "U1", " stale\n page ")
    assert not store.add_reason("A1", "U2", "never voted")
    store.record("A1", "U2", "up", answer=answer)
    assert not store.add_reason("A1", "U2", "a reason explains a 👎 only")
    cutoff = time.time()
    store.record("A2", "U1", "up", question="Asked only")

    votes = store.since()

    assert [(v.answer_id, v.user_id, v.vote) for v in votes] == [
        ("A1", "U1", "down"),
        ("A1", "U2", "up"),
        ("A2", "U1", "up"),
    ]
    assert votes[0].reason == "stale page" and votes[1].reason == ""
    assert votes[0].sources == answer.sources and votes[0].index_version == "docs__v1"
    assert [v.answer_id for v in store.since(cutoff)] == ["A2"]
    assert store.counts("A1") == {"up": 1, "down": 1}
