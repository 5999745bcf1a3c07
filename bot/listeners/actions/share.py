""" "Share in channel" on a private answer: post it for everyone, once.

The answer comes from :attr:`BotServices.answers` (the worker kept it by job id); the
claim that makes it "once" from :attr:`BotServices.shares`. The clicker is told in
words, privately, when the answer expired, was shared already (with a link) or Slack
refused the post. After the share, the private copy is deleted through the click's
``response_url``.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import blocks
from bot.answer_records import AnswerRecord
from bot.private_answers import SHARE_ACTION, asked_line
from bot.services import BotServices
from bot.shared_answers import SharedPost
from bot.slack_retry import slack_error_code

log = logging.getLogger(__name__)

EXPIRED_TEXT = "That answer has expired; ask again."
NO_ACCESS = frozenset({"not_in_channel", "channel_not_found", "is_archived"})


def already_shared_text(post: SharedPost) -> str:
    if not post.ts:
        return "That answer is being shared right now."
    return f"That answer was already shared: <{post.link()}|see it in the channel>."


def refused_text(error: str) -> str:
    hint = (
        "Invite me to the channel with `/invite @ragbot`, then share again."
        if error in NO_ACCESS
        else "Please try again in a minute."
    )
    return f"I couldn't share the answer: Slack refused it (`{error}`). {hint}"


def shared_blocks(record: AnswerRecord) -> list[blocks.Block]:
    """Who asked what, then the answer as thread answers show it (👍/👎 included)."""
    answer = blocks.answer_blocks(record.text, record.citations, answer_id=record.job_id)
    heading = blocks.section(asked_line(record.user, record.question))
    return [heading, *answer] if len(answer) < blocks.MAX_BLOCKS else answer


def register(app: App, services: BotServices) -> None:
    @app.action(SHARE_ACTION)
    def on_share(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, respond: Respond
    ) -> None:
        ack()
        services.metrics.events_received.labels(kind="block_action").inc()
        user = body["user"]["id"]
        job_id = action.get("value", "")
        record = services.answers.get(job_id)
        if record is None:
            _tell(respond, client, body, EXPIRED_TEXT)
            return
        earlier = services.shares.claim(job_id)
        if earlier is not None:
            _tell(respond, client, body, already_shared_text(earlier))
            return
        try:
            posted = client.chat_postMessage(
                channel=record.channel,
                text=f"<@{record.user}> asked: {record.question}\n\n"
                + blocks.answer_fallback_text(record.text, record.citations),
                blocks=shared_blocks(record),
            )
        except SlackApiError as error:
            services.shares.release(job_id)
            code = slack_error_code(error)
            log.warning("could not share answer %s for %s: %s", job_id, user, code)
            _tell(respond, client, body, refused_text(code))
            return
        services.shares.record(job_id, SharedPost(str(posted["channel"]), str(posted["ts"])))
        log.info("answer %s shared by %s in %s", job_id, user, record.channel)
        if body.get("response_url"):
            try:
                respond(delete_original=True)
            except Exception as error:  # the private copy just stays
                log.info("could not delete the private copy of %s: %r", job_id, error)


def _tell(respond: Respond, client: WebClient, body: dict[str, Any], text: str) -> None:
    """A private word to the clicker: through the click's response_url, else ephemeral."""
    user = body["user"]["id"]
    try:
        if body.get("response_url"):
            respond(text=text, response_type="ephemeral", replace_original=False)
            return
        channel = (body.get("channel") or {}).get("id") or body.get("container", {}).get(
            "channel_id"
        )
        client.chat_postEphemeral(channel=channel, user=user, text=text)
    except Exception as error:  # nothing more to try
        log.warning("could not tell %s about a share: %r", user, error)
