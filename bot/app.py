"""``build_app``: the Bolt app with every listener registered. No side effects at import."""

from __future__ import annotations

import logging
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from slack_bolt import App, BoltResponse
from slack_bolt.error import BoltError
from slack_sdk import WebClient
from slack_sdk.http_retry import RetryHandler
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from bot.intake import INTAKE_THREADS, Intake
from bot.listeners import register
from bot.metered_client import MeteredWebClient, meter_listener_clients
from bot.metrics import BotMetrics
from bot.services import BotServices
from bot.settings import BotSettings
from rag_core.errors import ConfigError

log = logging.getLogger(__name__)

LISTENER_THREADS = 16
SLACK_TIMEOUT_S = 15
INTAKE_SLACK_TIMEOUT_S = 5


def build_web_client(settings: BotSettings, metrics: BotMetrics) -> WebClient:
    """The Slack Web API client: retries on 429 (honouring Retry-After), 5xx and resets;
    the errors it raises are counted per method and error code."""
    return _metered_client(
        settings,
        metrics,
        timeout_s=SLACK_TIMEOUT_S,
        retry_handlers=[
            RateLimitErrorRetryHandler(max_retry_count=3),
            ConnectionErrorRetryHandler(max_retry_count=2),
            ServerErrorRetryHandler(max_retry_count=2),
        ],
    )


def build_intake_client(settings: BotSettings, metrics: BotMetrics) -> WebClient:
    """The client of intake's best-effort calls (the :eyes: reaction, the queue-down reply):
    no retry handlers, so an intake thread never sleeps on a 429's Retry-After or a
    back-off, and a short timeout, so a slow Slack holds it up for seconds at most."""
    return _metered_client(settings, metrics, timeout_s=INTAKE_SLACK_TIMEOUT_S, retry_handlers=[])


def _metered_client(
    settings: BotSettings,
    metrics: BotMetrics,
    *,
    timeout_s: int,
    retry_handlers: list[RetryHandler],
) -> WebClient:
    if not settings.slack_bot_token:
        raise ConfigError("SLACK_BOT_TOKEN is not set: create the Slack app (see README).")
    return MeteredWebClient(
        metrics=metrics,
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        timeout=timeout_s,
        retry_handlers=retry_handlers,
    )


def build_app(
    settings: BotSettings,
    services: BotServices,
    *,
    client: WebClient,
    intake: Intake,
    listener_executor: Executor,
) -> App:
    """The Bolt app; ``auth.test`` runs once here to learn the bot's own user id.

    Events are acknowledged before their listener runs (``process_before_response`` off);
    question listeners only hand the event to :data:`~bot.intake.INTAKE_THREADS` intake
    threads, so Bolt's :data:`LISTENER_THREADS` stay free for slash commands and button
    clicks, which are acknowledged from inside their listener.

    Listeners run on ``listener_executor`` (see :func:`build_listener_executor`). Whoever
    passes it and ``intake`` owns both: once the app stops taking events, shut the
    executor down first (waiting, so acknowledged events reach intake), then the intake
    (:meth:`~bot.intake.Intake.shutdown`).
    """
    try:
        app = _bolt_app(settings, client, listener_executor)
    except BoltError as error:  # auth.test refused the token
        raise ConfigError(f"Slack refused SLACK_BOT_TOKEN: {error}") from error
    meter_listener_clients(app, services.metrics)
    register(app, services, intake=intake)

    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> BoltResponse | None:
        log.exception("listener failed", exc_info=error, extra={"type": body.get("type")})
        return None

    return app


def build_intake(settings: BotSettings, services: BotServices) -> Intake:
    """The intake threads of one app process, on :func:`build_intake_client`."""
    return Intake(services, build_intake_client(settings, services.metrics), threads=INTAKE_THREADS)


def build_listener_executor() -> ThreadPoolExecutor:
    """The :data:`LISTENER_THREADS` threads Bolt runs listeners on after the ack."""
    return ThreadPoolExecutor(max_workers=LISTENER_THREADS, thread_name_prefix="slack-listener")


def _bolt_app(settings: BotSettings, client: WebClient, listener_executor: Executor) -> App:
    return App(
        client=client,
        signing_secret=settings.slack_signing_secret,  # "" (not None): Bolt reads no env
        request_verification_enabled=bool(settings.slack_signing_secret),
        process_before_response=False,
        listener_executor=listener_executor,
        logger=logging.getLogger("bot.bolt"),
    )
