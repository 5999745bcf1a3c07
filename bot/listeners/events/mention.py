"""@ragbot in a channel (or a thread): answer in the thread."""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.intake import IncomingQuestion, accept_question, in_background
from bot.services import BotServices


def register(app: App, services: BotServices, *, intake: Executor) -> None:
    @app.event("app_mention")
    def on_mention(
        event: dict[str, Any], body: dict[str, Any], client: WebClient, context: dict[str, Any]
    ) -> None:
        if event.get("bot_id"):
            return
        incoming = IncomingQuestion.from_event(event, body)
        bot_user_id = context["bot_user_id"]
        in_background(
            intake,
            lambda: accept_question(
                incoming, services=services, client=client, bot_user_id=bot_user_id
            ),
        )
