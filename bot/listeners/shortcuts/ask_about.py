"""The message shortcut "Ask ragbot about this": the chosen message is the question,
answered privately like ``/ask``."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, Respond

from bot.intake import IncomingQuestion, Intake
from bot.services import BotServices
from bot.text import question_from_text

log = logging.getLogger(__name__)

CALLBACK_ID = "ask_about_message"
NO_TEXT = "That message has no text I can read; try `/ask` with your question instead."


def register(app: App, services: BotServices, *, intake: Intake) -> None:
    @app.shortcut(CALLBACK_ID)
    def on_ask_about(
        ack: Ack, shortcut: dict[str, Any], context: dict[str, Any], respond: Respond
    ) -> None:
        ack()
        services.metrics.events_received.labels(kind="shortcut").inc()
        message = shortcut.get("message") or {}
        text = message.get("text", "")
        user = (shortcut.get("user") or {}).get("id", "")
        if not question_from_text(text, bot_user_id=context["bot_user_id"]):
            try:
                respond(text=NO_TEXT, response_type="ephemeral", replace_original=False)
            except Exception as error:  # the asker may be gone
                log.warning("could not tell %s the message has no text: %r", user, error)
            return
        incoming = IncomingQuestion.asked_privately(
            request_id=f"shortcut:{shortcut.get('trigger_id', '')}",
            channel=(shortcut.get("channel") or {}).get("id", ""),
            user=user,
            text=text,
            response_url=shortcut.get("response_url", ""),
            team=(shortcut.get("team") or {}).get("id", ""),
        )
        intake.submit(
            lambda: incoming,
            bot_user_id=context["bot_user_id"],
            event={"channel": incoming.channel, "ts": message.get("ts", ""), "user": user},
        )
