"""👍 / 👎 on an answer: stored with what was voted on, counted for the home tab, and
thanked privately; a 👎 also opens the optional "what was wrong?" modal."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import blocks
from bot.feedback import Vote
from bot.listeners.views.feedback_reason import reason_modal
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
        answer_id = str(action.get("value") or "")
        if vote == "down" and answer_id:  # first: the trigger id is good for 3 s only
            open_reason_modal(client, str(body.get("trigger_id") or ""), answer_id, user_id)
        try:
            replaced = services.feedback.record(
                answer_id, user_id, vote, answer=services.answers.get(answer_id)
            )
        except RagbotError as error:  # a button without an answer id: nothing to store
            log.warning("feedback from %s not recorded: %s", user_id, error)
            return
        services.stats.record_vote(vote, replaces=replaced)
        thank(client, body, user_id, vote)


def open_reason_modal(client: WebClient, trigger_id: str, answer_id: str, user_id: str) -> None:
    """Best effort: a vote stands without a reason (an expired trigger is only logged)."""
    try:
        client.views_open(trigger_id=trigger_id, view=reason_modal(answer_id))
    except SlackApiError as error:
        log.warning("no reason modal for %s: %s", user_id, error.response.get("error"))


def thank(client: WebClient, body: dict[str, Any], user_id: str, vote: Vote) -> None:
    channel = (body.get("channel") or {}).get("id") or body.get("container", {}).get("channel_id")
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
