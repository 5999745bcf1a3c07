"""Every Slack listener, registered in one place."""

from __future__ import annotations

from slack_bolt import App

from bot.intake import Intake
from bot.listeners.actions import feedback, home_reindex, share
from bot.listeners.commands import ask, reindex
from bot.listeners.events import assistant, home, mention, message
from bot.listeners.shortcuts import ask_about
from bot.listeners.views import feedback_reason
from bot.services import BotServices


def register(app: App, services: BotServices, *, intake: Intake) -> None:
    """``intake``: the threads that accept questions once their events are acknowledged."""
    mention.register(app, services, intake=intake)
    message.register(app, services, intake=intake)
    reindex.register(app, services)
    feedback.register(app, services)
    ask.register(app, services, intake=intake)
    ask_about.register(app, services, intake=intake)
    share.register(app, services)
    assistant.register(app, services)
    home.register(app, services)
    home_reindex.register(app, services)
    feedback_reason.register(app, services)
