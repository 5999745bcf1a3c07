"""Messages: DMs to the bot, and replies in threads the bot has answered in.

Channel messages that mention the bot are left to the ``app_mention`` listener
(the de-duplication would drop the second copy anyway).
"""

from __future__ import annotations

from typing import Any

from slack_bolt import App

from bot.intake import IncomingQuestion, Intake
from bot.services import BotServices
from bot.text import mentions

# Edits, deletions, joins and the like are not questions.
QUESTION_SUBTYPES = {None, "file_share", "thread_broadcast"}


def is_question(event: dict[str, Any], *, bot_user_id: str, services: BotServices) -> bool:
    """Reads the thread registry (Redis) for thread replies: call it off Bolt's threads."""
    if event.get("subtype") not in QUESTION_SUBTYPES or event.get("bot_id"):
        return False
    if not event.get("user") or event.get("user") == bot_user_id:
        return False
    if event.get("channel_type") == "im":
        return True
    thread_ts = event.get("thread_ts")
    if not thread_ts or thread_ts == event.get("ts"):
        return False
    if mentions(event.get("text", ""), bot_user_id):
        return False
    return services.threads.contains(event["channel"], thread_ts)


def register(app: App, services: BotServices, *, intake: Intake) -> None:
    @app.event("message")
    def on_message(event: dict[str, Any], body: dict[str, Any], context: dict[str, Any]) -> None:
        """Bolt acknowledged the event already; whether it is a question is decided on
        the intake threads (it may need Redis)."""
        services.metrics.events_received.labels(kind="message").inc()
        bot_user_id = context["bot_user_id"]

        def describe() -> IncomingQuestion | None:
            if is_question(event, bot_user_id=bot_user_id, services=services):
                return IncomingQuestion.from_event(event, body)
            return None

        intake.submit(describe, bot_user_id=bot_user_id, event=event)
