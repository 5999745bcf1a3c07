"""@ragbot in a channel (or a thread): answer in the thread."""

from __future__ import annotations

from typing import Any

from slack_bolt import App

from bot.intake import IncomingQuestion, Intake
from bot.services import BotServices


def register(app: App, services: BotServices, *, intake: Intake) -> None:
    @app.event("app_mention")
    def on_mention(event: dict[str, Any], body: dict[str, Any], context: dict[str, Any]) -> None:
        """Bolt acknowledged the event already; hand it over without any network call."""
        services.metrics.events_received.labels(kind="app_mention").inc()
        if event.get("bot_id"):
            return
        incoming = IncomingQuestion.from_event(event, body)
        intake.submit(lambda: incoming, bot_user_id=context["bot_user_id"], event=event)
