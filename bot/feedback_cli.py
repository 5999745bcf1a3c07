"""``ragbot feedback export``: 👍'd answers as an evaluation file for ``ragbot eval``.

Each line is one answer at least one user found helpful: ``question`` and ``relevant``
(the paths, relative to the indexed folder, of the sources it cited) are what
:func:`rag_core.evaluation.load_questions` reads; the other keys (the answer, the votes,
any 👎 reasons, the index version) are ignored by it and kept for people reviewing the
file. Answers that cited nothing are left out: they have no relevant documents to score.
``--since 7d`` (or ``12h``, ``2w``, an ISO date or time, UTC when no zone is given)
limits it to recent votes. Feedback lives in Redis: without ``RAGBOT_REDIS_URL``, or
with Redis unreachable, the command fails with one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import redis

from bot.feedback import FeedbackEntry, FeedbackStore
from bot.runtime import connect_cli_redis
from rag_core.errors import InputError, StoreUnavailableError
from rag_core.settings import Settings

_AGO = re.compile(r"^\s*(\d+)\s*([hdw])\s*$", re.IGNORECASE)
_UNIT_S = {"h": 3600, "d": 86_400, "w": 7 * 86_400}


def add_feedback_command(commands: argparse._SubParsersAction) -> None:
    feedback = commands.add_parser("feedback", help="votes on answers (needs RAGBOT_REDIS_URL)")
    actions = feedback.add_subparsers(dest="feedback_action", metavar="ACTION", required=True)
    export = actions.add_parser("export", help="👍'd answers as JSONL questions for `ragbot eval`")
    export.add_argument(
        "--since", default="", help="only votes since: 7d, 12h, 2w or an ISO date (default: all)"
    )
    export.add_argument(
        "--output", "-o", type=Path, default=None, help="file to write (default: stdout)"
    )
    export.set_defaults(handler=cmd_export)


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    since = parse_since(args.since, now=time.time())
    entries = _read_votes(settings, since)
    rows = export_rows(entries)
    if args.output is None:
        _write(rows, sys.stdout)
    else:
        with args.output.open("w", encoding="utf-8") as out:
            _write(rows, out)
    where = args.output or "stdout"
    print(
        f"wrote {_count(len(rows), 'question')} (from {_count(len(entries), 'vote')}) to {where}",
        file=sys.stderr,
    )
    return 0


def parse_since(value: str, *, now: float) -> float:
    """Unix time of ``value``: "" (everything), ``Nh``/``Nd``/``Nw`` ago, or an ISO date
    or date-time (UTC unless it names a zone). Raises :class:`InputError`."""
    if not value.strip():
        return 0.0
    if match := _AGO.match(value):
        return now - int(match.group(1)) * _UNIT_S[match.group(2).lower()]
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError as error:
        raise InputError(
            f"--since {value!r} is neither a duration like 7d, 12h or 2w nor an ISO date "
            "like 2025-01-31."
        ) from error
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def export_rows(entries: Iterable[FeedbackEntry]) -> list[dict[str, Any]]:
    """One row per answer with at least one 👍 and cited sources, oldest vote first."""
    by_answer: dict[str, list[FeedbackEntry]] = {}
    for entry in entries:
        by_answer.setdefault(entry.answer_id, []).append(entry)
    rows = []
    for answer_id, votes in by_answer.items():
        ups = [v for v in votes if v.vote == "up"]
        described = next((v for v in reversed(votes) if v.question), None)
        if not ups or described is None:
            continue
        relevant = sorted({s.path for s in described.sources if s.path})
        if not relevant:
            continue
        rows.append(
            {
                "question": described.question,
                "relevant": relevant,
                "answer": described.answer,
                "answer_id": answer_id,
                "kind": described.kind,
                "index_version": described.index_version,
                "sources": [
                    {"number": s.number, "title": s.title, "url": s.url, "path": s.path}
                    for s in described.sources
                ],
                "votes_up": len(ups),
                "votes_down": len(votes) - len(ups),
                "reasons": [v.reason for v in votes if v.reason],
                "voted_at": _iso(max(v.at for v in votes)),
            }
        )
    return rows


def _read_votes(settings: Settings, since: float) -> list[FeedbackEntry]:
    client = connect_cli_redis(
        settings,
        needed_for="votes are kept in Redis (without it they live only in the running "
        "`ragbot serve` process)",
    )
    try:
        client.ping()  # the store reads an outage as "no votes": fail loudly here instead
        return FeedbackStore(client, prefix=settings.redis_prefix).since(since)
    except redis.exceptions.RedisError as error:
        raise StoreUnavailableError(f"Redis is unavailable, no votes read: {error}") from error
    finally:
        client.close()


def _write(rows: list[dict[str, Any]], out: TextIO) -> None:
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False) + "\n")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _iso(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
