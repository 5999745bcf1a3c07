"""``/ask QUESTION``: an answer only the asker sees, with a button to share it.

Acknowledged at once (an empty question gets the usage hint in the ack itself); the
question then goes through intake like any other, as a private job whose answer the
worker posts ephemerally (:mod:`bot.private_answers`).
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from bot.intake import IncomingQuestion, Intake
from bot.services import BotServices

USAGE_TEXT = (
    "Ask me about the docs, and only you will see the answer: "
    "`/ask how do I connect to Milvus Lite from Python?`"
)
WORKING_TEXT = "Looking that up in the docs… only you will see the answer."


def register(app: App, services: BotServices, *, intake: Intake) -> None:
    @app.command("/ask")
    def on_ask(ack: Ack, command: dict[str, Any], context: dict[str, Any]) -> None:
        services.metrics.events_received.labels(kind="command").inc()
        text = command.get("text", "").strip()
        if not text:
            ack(text=USAGE_TEXT, response_type="ephemeral")
            return
        ack(text=WORKING_TEXT, response_type="ephemeral")
        incoming = IncomingQuestion.asked_privately(
            request_id=f"command:{command.get('trigger_id', '')}",
            channel=command.get("channel_id", ""),
            user=command.get("user_id", ""),
            text=text,
            response_url=command.get("response_url", ""),
            team=command.get("team_id", ""),
        )
        intake.submit(
            lambda: incoming,
            bot_user_id=context["bot_user_id"],
            event={"channel": incoming.channel, "ts": "/ask", "user": incoming.user},
        )
