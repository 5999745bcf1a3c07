"""👍 / 👎 on an answer: stored, and thanked privately."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import blocks
from bot.feedback import Vote
from bot.services import BotServices
from rag_core.errors import RagbotError

log = logging.getLogger(__name__)

VOTES: dict[str, Vote] = {"feedback_up": "up", "feedback_down": "down"}


def register(app: App, services: BotServices) -> None:
    @app.action(re.compile(r"^feedback_(up|down)$"))
    def on_feedback(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient
    ) -> None:
        ack()
        services.metrics.events_received.labels(kind="block_action").inc()
        vote = VOTES[action["action_id"]]
        user_id = body["user"]["id"]
        try:
            services.feedback.record(action.get("value", ""), user_id, vote)
        except RagbotError as error:  # a button without an answer id: nothing to store
            log.warning("feedback from %s not recorded: %s", user_id, error)
            return
        channel = (body.get("channel") or {}).get("id") or body.get("container", {}).get(
            "channel_id"
        )
        message = body.get("message") or {}
        try:
            client.chat_postEphemeral(
                channel=channel,
                user=user_id,
                thread_ts=message.get("thread_ts") or message.get("ts"),
                text=blocks.feedback_ack_text(vote),
            )
        except SlackApiError as error:
            log.warning("could not thank %s: %s", user_id, error.response.get("error"))
