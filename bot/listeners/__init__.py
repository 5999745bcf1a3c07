"""Every Slack listener, registered in one place."""

from __future__ import annotations

from slack_bolt import App

from bot.intake import Intake
from bot.listeners.actions import feedback
from bot.listeners.commands import reindex
from bot.listeners.events import mention, message
from bot.services import BotServices


def register(app: App, services: BotServices, *, intake: Intake) -> None:
    """``intake``: the threads that accept questions once their events are acknowledged."""
    mention.register(app, services, intake=intake)
    message.register(app, services, intake=intake)
    reindex.register(app, services)
    feedback.register(app, services)
