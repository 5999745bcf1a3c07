"""The App Home tab: published afresh each time a user opens it."""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.home import home_view
from bot.index_status import IndexStatus, IndexStatusUnavailable
from bot.listeners.commands.reindex import is_admin
from bot.services import BotServices

log = logging.getLogger(__name__)


def register(app: App, services: BotServices) -> None:
    @app.event("app_home_opened")
    def on_home_opened(event: dict[str, Any], client: WebClient) -> None:
        """Bolt acknowledged the event already; the Messages tab needs nothing."""
        services.metrics.events_received.labels(kind="app_home_opened").inc()
        if event.get("tab") != "home" or not event.get("user"):
            return
        publish_home(event["user"], services=services, client=client)


def publish_home(
    user_id: str, *, services: BotServices, client: WebClient, notice: str = ""
) -> bool:
    """Build ``user_id``'s home view from the stats and the index status and publish it
    (``notice``: mrkdwn shown on top). Slack errors are logged; returns whether Slack
    took the view."""
    index: list[IndexStatus] = []
    readable = True
    try:
        index = services.index_status.statuses()
    except IndexStatusUnavailable as error:
        log.warning("index status unreadable for the home tab: %s", error)
        readable = False
    view = home_view(
        week=services.stats.week(),
        index=index,
        index_readable=readable,
        admin=is_admin(user_id, services=services, client=client),
        notice=notice,
        now=time.time(),
    )
    try:
        client.views_publish(user_id=user_id, view=view)
    except SlackApiError as error:
        log.warning("could not publish %s's home tab: %s", user_id, error.response.get("error"))
        return False
    return True
