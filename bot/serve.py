"""``ragbot serve``: the Slack app, over HTTP or Socket Mode, until SIGTERM or SIGINT.

With ``RAGBOT_REDIS_URL`` the app only enqueues and separate ``ragbot worker``
processes answer. Without it everything runs in one process: in-memory queue,
de-duplication and rate limits, and a worker thread that loads the models.

On SIGTERM (or SIGINT) the app turns unready and stops taking events, then, within
``RAGBOT_DRAIN_GRACE_S`` in all, :func:`drain_app` lets the listeners Bolt already
acknowledged events for hand them to intake, intake queue them, and the in-process
worker finish its job.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Executor

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient

from bot.app import build_app, build_intake, build_listener_executor, build_web_client
from bot.health import Health, milvus_check
from bot.http_front import HttpFront
from bot.intake import Intake
from bot.lifecycle import finish_executor, wait_for_termination
from bot.metrics_server import start_exporter
from bot.runtime import Runtime, build_runtime
from bot.settings import BotSettings
from rag_core.errors import ConfigError

log = logging.getLogger(__name__)


def serve(settings: BotSettings, *, http: bool, host: str, port: int) -> int:
    """Run the Slack app until interrupted, then drain it (see :func:`drain_app`)."""
    if http and not settings.slack_signing_secret:
        raise ConfigError("SLACK_SIGNING_SECRET is not set; HTTP mode needs it.")
    if not http and not settings.slack_app_token:
        raise ConfigError("SLACK_APP_TOKEN is not set; Socket Mode needs it (or use --http).")
    runtime = build_runtime(settings)
    metrics, health = runtime.services.metrics, runtime.health
    client = build_web_client(settings, metrics)
    intake = build_intake(settings, runtime.services)
    listeners = build_listener_executor()
    exporter = None
    try:
        app = build_app(
            settings, runtime.services, client=client, intake=intake, listener_executor=listeners
        )
        if runtime.redis is None:
            start_inprocess_worker(settings, runtime, client)
        if http:
            front = HttpFront(app, health=health, metrics=metrics, host=host, port=port)
            front.run()  # ready once listening; returns after draining on SIGTERM
        else:
            # /metrics and the probes stay up while the app drains.
            exporter = start_exporter(settings.metrics_port, metrics, health)
            serve_socket_mode(app, settings, health)
    finally:
        drain_app(listeners, intake, runtime, grace_s=settings.drain_grace_s)
        if exporter is not None:
            exporter.stop()
        health.close()
    return 0


def drain_app(listeners: Executor, intake: Intake, runtime: Runtime, *, grace_s: float) -> bool:
    """After the app stopped taking events: let Bolt's listeners finish (each hands its
    acknowledged event to intake), then intake queue what it holds, then the in-process
    workers finish, all within ``grace_s`` seconds. False when something was cut short
    (logged at error level)."""
    deadline = time.monotonic() + grace_s

    def left() -> float:
        return max(0.0, deadline - time.monotonic())

    finished = True
    if not finish_executor(listeners, left()):
        log.error("listeners did not finish in %.0f s; some events were not handled", grace_s)
        finished = False
    if not intake.shutdown(left()):
        log.error("intake did not finish in %.0f s; some events were not handled", grace_s)
        finished = False
    return runtime.stop_workers(left()) and finished


def serve_socket_mode(app: App, settings: BotSettings, health: Health) -> None:
    """Socket Mode until SIGTERM or SIGINT; then the connection is closed."""
    handler = SocketModeHandler(app, settings.slack_app_token)
    handler.connect()
    health.set_ready()
    wait_for_termination()
    health.set_draining()
    handler.close()


def start_inprocess_worker(settings: BotSettings, runtime: Runtime, client: WebClient) -> None:
    """The embedded default: one supervised worker thread in the app process, drained by
    :meth:`Runtime.stop_workers`. This process opens Milvus, so it checks it too.

    The engine is imported here, not at the top, so that an app process with Redis (whose
    workers run elsewhere) never loads pymilvus or the model libraries.
    """
    from bot.worker_setup import start_worker_pool

    pool = start_worker_pool(settings, runtime, client, name="inprocess")
    runtime.worker_pools.append(pool)
    runtime.health.add_check("milvus", milvus_check(pool.workers[0].ask.pipeline.stores))
