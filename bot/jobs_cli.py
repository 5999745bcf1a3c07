"""``ragbot jobs``: what the queue holds, and dead letters put back on it.

``ragbot jobs`` shows the queue depth, the jobs workers hold (consumer, idle time,
deliveries) and the dead letters (id, kind, channel, error, attempts, when).
``ragbot jobs retry ID`` re-queues one dead letter and ``ragbot jobs retry --all-dead``
all of them, each as a new job with fresh attempts. ``--json`` prints one JSON object.
Redis being unset, unreachable or refusing is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import redis

from bot.jobs import DeadLetter, PendingJob, QueueUnavailableError
from bot.queue import RedisJobQueue
from bot.runtime import connect_cli_redis
from rag_core.errors import InputError
from rag_core.settings import Settings

ERROR_COLUMN = 60


def add_jobs_command(commands: argparse._SubParsersAction) -> None:
    jobs = commands.add_parser(
        "jobs", help="queue depth, pending jobs and dead letters (needs RAGBOT_REDIS_URL)"
    )
    jobs.add_argument("--json", action="store_true", help="print one JSON object")
    jobs.add_argument("--count", type=int, default=20, help="rows per list (default 20)")
    jobs.set_defaults(handler=cmd_jobs)
    actions = jobs.add_subparsers(dest="jobs_action", metavar="ACTION")
    retry = actions.add_parser("retry", help="put dead letters back on the queue")
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("message_id", nargs="?", help="a dead letter's id (see `ragbot jobs`)")
    which.add_argument("--all-dead", action="store_true", help="every dead letter")
    retry.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON object"
    )
    retry.set_defaults(handler=cmd_retry)


def cmd_jobs(args: argparse.Namespace, settings: Settings) -> int:
    with _queue(settings) as queue:
        stats = queue.stats()
        pending = queue.pending_jobs(args.count)
        dead = queue.dead_letters(args.count)
    if args.json:
        report = {
            **asdict(stats),
            "pending_jobs": [asdict(job) for job in pending],
            "dead_letters": [dead_letter_row(letter) for letter in dead],
        }
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return 0
    print(f"queue: {stats.queued} queued, {stats.pending} pending, {stats.dead} dead")
    if pending:
        print(f"\npending (oldest first, {len(pending)} shown):")
        print(_table(["ID", "CONSUMER", "IDLE", "DELIVERIES"], map(_pending_cells, pending)))
    if dead:
        print(f"\ndead letters (newest first, {len(dead)} shown):")
        headers = ["ID", "KIND", "CHANNEL", "ATTEMPTS", "FAILED (UTC)", "ERROR"]
        print(_table(headers, (_dead_cells(dead_letter_row(letter)) for letter in dead)))
    return 0


def cmd_retry(args: argparse.Namespace, settings: Settings) -> int:
    with _queue(settings) as queue:
        moved = queue.requeue_dead(None if args.all_dead else args.message_id)
    if not moved and not args.all_dead:
        raise InputError(f"No dead letter has the id {args.message_id} (see `ragbot jobs`).")
    if getattr(args, "json", False):
        rows = [{"message_id": old, "new_message_id": new} for old, new in moved]
        print(json.dumps({"requeued": rows}, indent=2))
    elif not moved:
        print("no dead letters to re-queue")
    else:
        for old, new in moved:
            print(f"re-queued {old} as {new}")
    return 0


def dead_letter_row(letter: DeadLetter) -> dict[str, Any]:
    """A dead letter as a flat dict: the payload's kind, job id and channel pulled out."""
    try:
        job = json.loads(letter.payload)
    except ValueError:
        job = {}
    job = job if isinstance(job, dict) else {}
    return {
        "message_id": letter.message_id,
        "job_id": str(job.get("job_id", "")),
        "kind": str(job.get("kind", "")),
        "channel": str(job.get("channel", "")),
        "error": letter.error,
        "attempts": letter.attempts,
        "failed_at": _iso(letter.failed_at),
    }


@contextmanager
def _queue(settings: Settings) -> Iterator[RedisJobQueue]:
    """The Redis queue of ``settings``; any Redis failure becomes one clear error."""
    client = connect_cli_redis(settings, needed_for="`ragbot jobs` reads the Redis queue")
    try:
        yield RedisJobQueue(client, prefix=settings.redis_prefix)
    except (QueueUnavailableError, redis.exceptions.RedisError) as error:
        cause = error.__cause__ if isinstance(error, QueueUnavailableError) else error
        where = _where(client)
        raise QueueUnavailableError(f"Redis at {where} is unavailable: {cause or error}") from error
    finally:
        client.close()


def _where(client: redis.Redis) -> str:
    """host:port (or socket path) of ``client``, never its password."""
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return str(kwargs["path"])
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"


def _iso(unix_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix_s)) if unix_s else ""


def _pending_cells(job: PendingJob) -> list[str]:
    return [job.message_id, job.consumer, f"{job.idle_ms / 1000:.1f}s", str(job.deliveries)]


def _dead_cells(row: dict[str, Any]) -> list[str]:
    error = " ".join(str(row["error"]).split())
    if len(error) > ERROR_COLUMN:
        error = error[: ERROR_COLUMN - 1] + "…"
    return [
        row["message_id"],
        row["kind"],
        row["channel"],
        str(row["attempts"]),
        row["failed_at"],
        error,
    ]


def _table(headers: list[str], rows: Iterable[list[str]]) -> str:
    cells = [headers, *rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  "
        + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )
