"""The assistant pane: a new assistant thread gets the configured suggested prompts.

Questions typed there arrive as DM ``message`` events (see :mod:`.message`), and the
first one names the thread (:meth:`bot.intake.Intake.accept`).
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.services import BotServices
from bot.slack_retry import slack_error_code

log = logging.getLogger(__name__)

PROMPTS_TITLE = "Try asking"


def suggested_prompts(prompts: list[str]) -> list[dict[str, str]]:
    """Slack's prompt objects: the button's ``title`` and the ``message`` it sends."""
    return [{"title": prompt, "message": prompt} for prompt in prompts]


def register(app: App, services: BotServices) -> None:
    @app.event("assistant_thread_started")
    def on_thread_started(event: dict[str, Any], client: WebClient) -> None:
        """Bolt acknowledged the event already; one try, failures only logged."""
        services.metrics.events_received.labels(kind="assistant_thread_started").inc()
        thread = event.get("assistant_thread") or {}
        prompts = services.settings.suggested_prompt_list
        if not prompts or not thread.get("channel_id"):
            return
        try:
            client.assistant_threads_setSuggestedPrompts(
                channel_id=thread["channel_id"],
                thread_ts=thread.get("thread_ts"),
                prompts=suggested_prompts(prompts),
                title=PROMPTS_TITLE,
            )
        except SlackApiError as error:
            log.warning(
                "could not suggest prompts in %s: %s",
                thread.get("channel_id"),
                slack_error_code(error),
            )
