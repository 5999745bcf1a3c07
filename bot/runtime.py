"""One place builds the long-lived objects a ``ragbot serve`` or ``ragbot worker`` process
shares: the Redis client (or none), the services, the job ledger and the health checks."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis

from bot.answer_records import AnswerRecords
from bot.answer_stats import AnswerStats
from bot.conversation_state import reindex_lock, thread_registry
from bot.dedup import EventDeduplicator
from bot.feedback import FeedbackStore
from bot.health import Health, redis_check
from bot.index_status import IndexStatusStore
from bot.jobs import JobQueue
from bot.ledger import JobLedger
from bot.metrics import BotMetrics
from bot.queue import InMemoryJobLedger, InMemoryJobQueue, RedisJobLedger, RedisJobQueue
from bot.ratelimit import RateLimiter
from bot.services import BotServices
from bot.settings import BotSettings
from bot.shared_answers import shared_answers
from rag_core.errors import ConfigError

if TYPE_CHECKING:
    from bot.worker_pool import WorkerPool

REDIS_SOCKET_TIMEOUT_S = 10.0  # longer than the worker's blocking read
REDIS_CONNECT_TIMEOUT_S = 3.0
REDIS_HEALTH_CHECK_INTERVAL_S = 30


@dataclass(slots=True)
class Runtime:
    """What one process shares: Redis (or nothing), the services, the job ledger, its
    health, and the worker threads it runs itself (single-process mode)."""

    redis: redis.Redis | None
    services: BotServices
    ledger: JobLedger
    health: Health = field(default_factory=Health)
    worker_pools: list[WorkerPool] = field(default_factory=list)

    def stop_workers(self, grace_s: float) -> bool:
        """Drain the in-process workers within ``grace_s`` seconds (see
        :meth:`WorkerPool.drain`); True when every job in hand finished."""
        deadline = time.monotonic() + grace_s
        finished = [pool.drain(max(0.0, deadline - time.monotonic())) for pool in self.worker_pools]
        return all(finished)


def connect_redis(
    url: str,
    *,
    socket_timeout_s: float | None = None,
    connect_timeout_s: float | None = None,
) -> redis.Redis:
    """One client (a connection pool) per process; redis-py reconnects after an outage.
    Timeouts in seconds default to :data:`REDIS_SOCKET_TIMEOUT_S` and
    :data:`REDIS_CONNECT_TIMEOUT_S`. A malformed ``url`` raises ``ValueError``."""
    return redis.Redis.from_url(
        url,
        socket_timeout=REDIS_SOCKET_TIMEOUT_S if socket_timeout_s is None else socket_timeout_s,
        socket_connect_timeout=(
            REDIS_CONNECT_TIMEOUT_S if connect_timeout_s is None else connect_timeout_s
        ),
        health_check_interval=REDIS_HEALTH_CHECK_INTERVAL_S,
    )


CLI_SOCKET_TIMEOUT_S = 5.0  # an operator's command fails in seconds, not minutes


def connect_cli_redis(settings: object, *, needed_for: str) -> redis.Redis:
    """The Redis client of an operator command (``ragbot jobs``, ``ragbot feedback``):
    short timeouts, and a :class:`~rag_core.errors.ConfigError` saying what the command
    needs Redis for (``needed_for``) when ``RAGBOT_REDIS_URL`` is unset or malformed."""
    url = settings.redis_url if isinstance(settings, BotSettings) else ""
    if not url:
        raise ConfigError(f"RAGBOT_REDIS_URL is not set: {needed_for}.")
    try:
        return connect_redis(
            url, socket_timeout_s=CLI_SOCKET_TIMEOUT_S, connect_timeout_s=REDIS_CONNECT_TIMEOUT_S
        )
    except ValueError as error:
        raise ConfigError(f"RAGBOT_REDIS_URL is not a Redis URL: {error}") from error


def build_runtime(settings: BotSettings) -> Runtime:
    """The runtime of ``settings``: Redis-backed when ``RAGBOT_REDIS_URL`` is set, else
    in memory. Opens no connection yet (redis-py connects on first use)."""
    client = connect_redis(settings.redis_url) if settings.redis_url else None
    prefix = settings.redis_prefix
    stale_ms = int(settings.job_stale_after_s * 1000)
    if client is not None:
        queue = RedisJobQueue(
            client, prefix=prefix, max_attempts=settings.job_max_attempts, stale_after_ms=stale_ms
        )
        ledger: JobLedger = RedisJobLedger(client, prefix=prefix)
    else:
        queue = InMemoryJobQueue(max_attempts=settings.job_max_attempts, stale_after_ms=stale_ms)
        ledger = InMemoryJobLedger()
    services = build_services(settings, client, queue)
    runtime = Runtime(redis=client, services=services, ledger=ledger)
    if client is not None:
        runtime.health.add_check("redis", redis_check(queue))
    return runtime


def build_services(
    settings: BotSettings, client: redis.Redis | None, queue: JobQueue
) -> BotServices:
    """The collaborators the listeners and workers share, on ``client`` (``None``: in
    memory), with fresh metrics that watch ``queue``."""
    prefix = settings.redis_prefix
    services = BotServices(
        settings=settings,
        queue=queue,
        dedup=EventDeduplicator(client, prefix=prefix, ttl_s=settings.dedup_ttl_s),
        rate_limiter=RateLimiter(
            client, prefix=prefix, limit=settings.rate_limit, window_s=settings.rate_window_s
        ),
        feedback=FeedbackStore(client, prefix=prefix),
        answers=AnswerRecords(client, prefix=prefix),
        shares=shared_answers(client, prefix=prefix),
        threads=thread_registry(client, prefix=prefix),
        reindex_lock=reindex_lock(client, prefix=prefix),
        metrics=BotMetrics(),
        stats=AnswerStats(client, prefix=prefix),
        index_status=IndexStatusStore(client, prefix=prefix),
    )
    services.metrics.watch_queue(queue)
    return services
