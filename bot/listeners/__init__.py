"""Every Slack listener, registered in one place."""

from __future__ import annotations

from slack_bolt import App

from bot.listeners.actions import feedback
from bot.listeners.commands import reindex
from bot.listeners.events import mention, message
from bot.services import BotServices


def register(app: App, services: BotServices) -> None:
    mention.register(app, services)
    message.register(app, services)
    reindex.register(app, services)
    feedback.register(app, services)
