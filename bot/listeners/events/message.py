"""Messages: DMs to the bot, replies in threads the bot has answered in, and top-level
messages in answer-everything channels (``RAGBOT_AUTO_ANSWER_CHANNELS``).

Channel messages that mention the bot are left to the ``app_mention`` listener
(the de-duplication would drop the second copy anyway). In the assistant pane (a DM
thread), the first question of a thread is no follow-up and names the thread.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from slack_bolt import App

from bot.intake import IncomingQuestion, Intake
from bot.services import BotServices
from bot.text import mentions

# Edits, deletions, joins and the like are not questions.
QUESTION_SUBTYPES = {None, "file_share", "thread_broadcast"}
AUTO_SUBTYPES = {None, "file_share"}


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


def is_auto_question(event: dict[str, Any], *, bot_user_id: str, services: BotServices) -> bool:
    """A person's top-level message, not mentioning the bot, in an auto-answer channel."""
    if event.get("channel") not in services.settings.auto_answer_channel_ids:
        return False
    if event.get("subtype") not in AUTO_SUBTYPES or event.get("bot_id"):
        return False
    if not event.get("user") or event.get("user") == bot_user_id or event.get("thread_ts"):
        return False
    return not mentions(event.get("text", ""), bot_user_id)


def starts_dm_thread(event: dict[str, Any], *, services: BotServices) -> bool:
    """A DM reply in a thread the bot has not answered in: an assistant thread's first
    question (reads the thread registry: call it off Bolt's threads)."""
    thread_ts = event.get("thread_ts")
    if event.get("channel_type") != "im" or not thread_ts or thread_ts == event.get("ts"):
        return False
    return not services.threads.contains(event["channel"], thread_ts)


def describe_message(
    event: dict[str, Any], body: dict[str, Any], *, bot_user_id: str, services: BotServices
) -> IncomingQuestion | None:
    """The question ``event`` asks the bot, or ``None``."""
    if is_question(event, bot_user_id=bot_user_id, services=services):
        incoming = IncomingQuestion.from_event(event, body)
        if starts_dm_thread(event, services=services):
            return replace(incoming, is_followup=False, sets_title=True)
        return incoming
    if is_auto_question(event, bot_user_id=bot_user_id, services=services):
        return replace(IncomingQuestion.from_event(event, body), auto=True)
    return None


def register(app: App, services: BotServices, *, intake: Intake) -> None:
    @app.event("message")
    def on_message(event: dict[str, Any], body: dict[str, Any], context: dict[str, Any]) -> None:
        """Bolt acknowledged the event already; whether it is a question is decided on
        the intake threads (it may need Redis)."""
        services.metrics.events_received.labels(kind="message").inc()
        bot_user_id = context["bot_user_id"]

        def describe() -> IncomingQuestion | None:
            return describe_message(event, body, bot_user_id=bot_user_id, services=services)

        intake.submit(describe, bot_user_id=bot_user_id, event=event)
