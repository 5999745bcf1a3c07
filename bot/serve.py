"""Start-up wiring for ``ragbot serve`` and ``ragbot worker``: clients built once, passed in.

With ``RAGBOT_REDIS_URL`` the app only enqueues and separate ``ragbot worker``
processes answer. Without it everything runs in one process: in-memory queue,
de-duplication and rate limits, and a worker thread that loads the models.

On SIGTERM (or SIGINT) ``ragbot serve`` turns unready, stops taking requests, finishes
the ones in flight, then lets the in-process worker finish its job before it returns.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis
from slack_bolt import App
from slack_sdk import WebClient

from bot.app import build_app, build_intake, build_web_client
from bot.conversation_state import ReindexLock, ThreadRegistry
from bot.dedup import EventDeduplicator
from bot.feedback import FeedbackStore
from bot.health import Health, milvus_check, redis_check
from bot.http_front import HttpFront, wait_for_termination
from bot.ledger import JobLedger
from bot.metrics_server import start_exporter
from bot.queue import InMemoryJobLedger, InMemoryJobQueue, RedisJobLedger, RedisJobQueue
from bot.ratelimit import RateLimiter
from bot.services import BotServices
from bot.settings import BotSettings
from rag_core.errors import ConfigError

if TYPE_CHECKING:
    from bot.worker_pool import WorkerPool

log = logging.getLogger(__name__)

REDIS_SOCKET_TIMEOUT_S = 10.0  # longer than the worker's blocking read
REDIS_CONNECT_TIMEOUT_S = 3.0


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


def connect_redis(url: str) -> redis.Redis:
    """One client (a connection pool) per process; redis-py reconnects after an outage."""
    return redis.Redis.from_url(
        url,
        socket_timeout=REDIS_SOCKET_TIMEOUT_S,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
        health_check_interval=30,
    )


def build_runtime(settings: BotSettings) -> Runtime:
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
    services = BotServices(
        settings=settings,
        queue=queue,
        dedup=EventDeduplicator(client, prefix=prefix, ttl_s=settings.dedup_ttl_s),
        rate_limiter=RateLimiter(
            client, prefix=prefix, limit=settings.rate_limit, window_s=settings.rate_window_s
        ),
        feedback=FeedbackStore(client, prefix=prefix),
        threads=ThreadRegistry(client, prefix=prefix),
        reindex_lock=ReindexLock(client, prefix=prefix),
    )
    services.metrics.watch_queue(queue)
    runtime = Runtime(redis=client, services=services, ledger=ledger)
    if client is not None:
        runtime.health.add_check("redis", redis_check(queue))
    return runtime


def serve(settings: BotSettings, *, http: bool, host: str, port: int) -> int:
    """Run the Slack app until interrupted."""
    if http and not settings.slack_signing_secret:
        raise ConfigError("SLACK_SIGNING_SECRET is not set; HTTP mode needs it.")
    if not http and not settings.slack_app_token:
        raise ConfigError("SLACK_APP_TOKEN is not set; Socket Mode needs it (or use --http).")
    runtime = build_runtime(settings)
    client = build_web_client(settings, runtime.services.metrics)
    intake = build_intake(settings, runtime.services)
    app = build_app(settings, runtime.services, client=client, intake=intake)
    if runtime.redis is None:
        start_inprocess_worker(settings, runtime, client)
    try:
        if http:
            front = HttpFront(
                app,
                health=runtime.health,
                metrics=runtime.services.metrics,
                host=host,
                port=port,
            )
            front.run()  # ready once listening; returns after draining on SIGTERM
        else:
            metrics, health = runtime.services.metrics, runtime.health
            exporter = start_exporter(settings.metrics_port, metrics, health)
            try:
                serve_socket_mode(app, settings, health)
            finally:
                if exporter is not None:
                    exporter.stop()
    finally:
        # Events already acknowledged are queued (or their askers told) before the
        # in-process worker drains the queue.
        deadline = time.monotonic() + settings.drain_grace_s
        if not intake.shutdown(settings.drain_grace_s):
            log.error(
                "intake did not finish in %.0f s; some events were not handled",
                settings.drain_grace_s,
            )
        runtime.stop_workers(max(0.0, deadline - time.monotonic()))
    return 0


def serve_socket_mode(app: App, settings: BotSettings, health: Health) -> None:
    """Socket Mode until SIGTERM or SIGINT; then the connection is closed."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    handler = SocketModeHandler(app, settings.slack_app_token)
    handler.connect()
    health.set_ready()
    wait_for_termination()
    health.set_draining()
    handler.close()


def start_inprocess_worker(settings: BotSettings, runtime: Runtime, client: WebClient) -> None:
    """The embedded default: one supervised worker thread in the app process, drained by
    :meth:`Runtime.stop_workers`. This process opens Milvus, so it checks it too."""
    from bot.worker_setup import start_worker_pool

    pool = start_worker_pool(settings, runtime, client, name="inprocess")
    runtime.worker_pools.append(pool)
    runtime.health.add_check("milvus", milvus_check(pool.workers[0].ask.pipeline.store))
