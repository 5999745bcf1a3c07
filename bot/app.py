"""``build_app``: the Bolt app with every listener registered. No side effects at import."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import App, BoltResponse
from slack_bolt.error import BoltError
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from bot.intake import INTAKE_THREADS
from bot.listeners import register
from bot.services import BotServices
from bot.settings import BotSettings
from rag_core.errors import ConfigError

log = logging.getLogger(__name__)

LISTENER_THREADS = 16


def build_web_client(settings: BotSettings) -> WebClient:
    """The Slack Web API client: retries on 429 (honouring Retry-After), 5xx and resets."""
    if not settings.slack_bot_token:
        raise ConfigError("SLACK_BOT_TOKEN is not set: create the Slack app (see README).")
    return WebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        timeout=15,
        retry_handlers=[
            RateLimitErrorRetryHandler(max_retry_count=3),
            ConnectionErrorRetryHandler(max_retry_count=2),
            ServerErrorRetryHandler(max_retry_count=2),
        ],
    )


def build_app(settings: BotSettings, services: BotServices, *, client: WebClient) -> App:
    """The Bolt app; ``auth.test`` runs once here to learn the bot's own user id.

    Events are acknowledged before their listener runs (``process_before_response`` off);
    question listeners only hand the event to :data:`~bot.intake.INTAKE_THREADS` intake
    threads, so Bolt's :data:`LISTENER_THREADS` stay free for slash commands and button
    clicks, which are acknowledged from inside their listener.
    """
    try:
        app = _bolt_app(settings, client)
    except BoltError as error:  # auth.test refused the token
        raise ConfigError(f"Slack refused SLACK_BOT_TOKEN: {error}") from error
    intake = ThreadPoolExecutor(max_workers=INTAKE_THREADS, thread_name_prefix="slack-intake")
    register(app, services, intake=intake)

    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> BoltResponse | None:
        log.exception("listener failed", exc_info=error, extra={"type": body.get("type")})
        return None

    return app


def _bolt_app(settings: BotSettings, client: WebClient) -> App:
    return App(
        client=client,
        signing_secret=settings.slack_signing_secret,  # "" (not None): Bolt reads no env
        request_verification_enabled=bool(settings.slack_signing_secret),
        process_before_response=False,
        listener_executor=ThreadPoolExecutor(
            max_workers=LISTENER_THREADS, thread_name_prefix="slack-listener"
        ),
        logger=logging.getLogger("bot.bolt"),
    )
