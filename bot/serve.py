"""Start-up wiring for ``ragbot serve`` and ``ragbot worker``: clients built once, passed in.

With ``RAGBOT_REDIS_URL`` the app only enqueues and separate ``ragbot worker``
processes answer. Without it everything runs in one process: in-memory queue,
de-duplication and rate limits, and a worker thread that loads the models.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass

import redis
from slack_sdk import WebClient

from bot.app import build_app, build_web_client
from bot.conversation_state import ReindexLock, ThreadRegistry
from bot.dedup import EventDeduplicator
from bot.feedback import FeedbackStore
from bot.http_server import SlackHttpServer
from bot.jobs import JobLedger
from bot.queue import InMemoryJobLedger, InMemoryJobQueue, RedisJobLedger, RedisJobQueue
from bot.ratelimit import RateLimiter
from bot.services import BotServices
from bot.settings import BotSettings
from rag_core.errors import ConfigError

log = logging.getLogger(__name__)

REDIS_SOCKET_TIMEOUT_S = 10.0  # longer than the worker's blocking read
REDIS_CONNECT_TIMEOUT_S = 3.0


@dataclass(slots=True)
class Runtime:
    """What one process shares: Redis (or nothing), the services and the job ledger."""

    redis: redis.Redis | None
    services: BotServices
    ledger: JobLedger


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
    return Runtime(redis=client, services=services, ledger=ledger)


def serve(settings: BotSettings, *, http: bool, host: str, port: int) -> int:
    """Run the Slack app until interrupted."""
    if http and not settings.slack_signing_secret:
        raise ConfigError("SLACK_SIGNING_SECRET is not set; HTTP mode needs it.")
    if not http and not settings.slack_app_token:
        raise ConfigError("SLACK_APP_TOKEN is not set; Socket Mode needs it (or use --http).")
    runtime = build_runtime(settings)
    client = build_web_client(settings)
    app = build_app(settings, runtime.services, client=client)
    stop = threading.Event()
    if runtime.redis is None:
        start_inprocess_worker(settings, runtime, client, stop=stop)
    try:
        if http:
            server = SlackHttpServer(app, host=host, port=port, healthy=runtime.services.queue.ping)
            signal.signal(
                signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start()
            )
            log.info("serving Slack events on http://%s:%d/slack/events", host, server.port)
            server.serve_forever()
        else:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            SocketModeHandler(app, settings.slack_app_token).start()
    finally:
        stop.set()
    return 0


def start_inprocess_worker(
    settings: BotSettings, runtime: Runtime, client: WebClient, *, stop: threading.Event
) -> threading.Thread:
    """The embedded default: one worker thread in the app process."""
    from bot.worker_setup import build_worker

    worker = build_worker(settings, runtime, client, name="inprocess")
    thread = threading.Thread(target=worker.run, kwargs={"stop": stop}, daemon=True)
    thread.start()
    return thread
