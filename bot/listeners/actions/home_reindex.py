"""The admin's Reindex button on the App Home tab: starts a re-index like ``/reindex``
(progress in a DM) and re-publishes the tab saying what happened."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.home import HOME_REINDEX
from bot.listeners.commands.reindex import FAILED_TEXT, start_reindex
from bot.listeners.events.home import publish_home
from bot.mrkdwn import escape_mrkdwn
from bot.services import BotServices

log = logging.getLogger(__name__)


def register(app: App, services: BotServices) -> None:
    @app.action(HOME_REINDEX)
    def on_home_reindex(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        services.metrics.events_received.labels(kind="block_action").inc()
        user_id = body["user"]["id"]
        try:
            text = start_reindex(user_id, "", services=services, client=client)
        except Exception:
            log.exception("re-index from the home tab of %s failed", user_id)
            text = FAILED_TEXT
        publish_home(
            user_id,
            services=services,
            client=client,
            notice=f":arrows_counterclockwise: {escape_mrkdwn(text)}",
        )
