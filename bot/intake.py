"""Accepting a question from Slack: de-duplicate, check, show progress, enqueue.

Runs in the app process after Bolt has acknowledged the event, so nothing here is
on Slack's 3-second clock; it still does no model work, only Redis and Slack calls.

While Redis is down, de-duplication and rate limits let everything through (a rare
double answer beats a lost question) and the enqueue fails: the placeholder then
reads :data:`QUEUE_DOWN_TEXT` and nothing is queued; redis-py reconnects by itself,
so the next question after Redis is back is answered as usual.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import blocks
from bot.jobs import AskJob, QueueUnavailableError, new_job_id
from bot.services import BotServices
from bot.text import question_from_text

log = logging.getLogger(__name__)

EMPTY_QUESTION_TEXT = (
    "Hi! Ask me anything about the docs, for example: "
    "_how do I connect to Milvus Lite from Python?_"
)
FILES_ONLY_TEXT = (
    "I can only read text questions for now, not attached files. "
    "Please type your question in the message."
)
QUEUE_DOWN_TEXT = "The question queue is unavailable right now; please try again in a minute."
INTAKE_THREADS = 8
"""Threads accepting questions: few, so a burst of events leaves the GIL to the HTTP
threads acknowledging the next ones (Slack wants every ack within 3 s)."""


def in_background(intake: Executor, action: Callable[[], object]) -> None:
    """Run ``action`` on the intake threads, after the event is acknowledged, so neither
    the ack nor Bolt's listener threads (which slash commands wait on) are held up.
    A failure is logged with its traceback: there is no caller left to raise it to."""

    def run() -> None:
        try:
            action()
        except Exception:
            log.exception("accepting a question failed")

    intake.submit(run)


@dataclass(frozen=True, slots=True)
class IncomingQuestion:
    """One Slack message that asks the bot something."""

    event_id: str
    channel: str
    ts: str
    thread_ts: str  # the thread to answer in (the message itself when it starts one)
    user: str
    text: str
    team: str = ""
    has_files: bool = False
    is_followup: bool = False

    @classmethod
    def from_event(cls, event: dict[str, Any], body: dict[str, Any]) -> IncomingQuestion:
        """From a ``message`` or ``app_mention`` event and its envelope."""
        return cls(
            event_id=str(body.get("event_id", "")),
            channel=event["channel"],
            ts=event["ts"],
            thread_ts=event.get("thread_ts") or event["ts"],
            user=event.get("user", ""),
            text=event.get("text", ""),
            team=str(body.get("team_id", "")),
            has_files=bool(event.get("files")),
            is_followup=bool(event.get("thread_ts")),
        )


def rate_limited_text(retry_after_s: int) -> str:
    return (
        "You're asking faster than I can keep up. Please wait "
        f"{max(1, retry_after_s)} s before your next question."
    )


def too_long_text(length: int, limit: int) -> str:
    return (
        f"That message is {length:,} characters long. Please ask a shorter question "
        f"(under {limit:,} characters), about one thing at a time."
    )


def accept_question(
    incoming: IncomingQuestion, *, services: BotServices, client: WebClient, bot_user_id: str
) -> str | None:
    """Queue the question for a worker; returns the job id, or None when nothing was queued."""
    keys = [f"msg:{incoming.channel}:{incoming.ts}"]
    if incoming.event_id:
        keys.insert(0, f"event:{incoming.event_id}")
    if not services.dedup.first_time(*keys):
        log.info("duplicate event ignored: %s", " ".join(keys), extra={"keys": keys})
        return None
    question = question_from_text(incoming.text, bot_user_id=bot_user_id)
    limit = services.settings.max_question_chars
    if not question:
        _reply(client, incoming, FILES_ONLY_TEXT if incoming.has_files else EMPTY_QUESTION_TEXT)
        return None
    if len(question) > limit:
        _reply(client, incoming, too_long_text(len(question), limit))
        return None
    decision = services.rate_limiter.allow(incoming.user)
    if not decision.allowed:
        _tell_privately(client, incoming, rate_limited_text(decision.retry_after_s))
        return None
    status_ts = _post_working(client, incoming)
    job = AskJob(
        job_id=new_job_id(),
        channel=incoming.channel,
        thread_ts=incoming.thread_ts,
        message_ts=incoming.ts,
        user=incoming.user,
        text=question,
        team=incoming.team,
        status_ts=status_ts,
        is_followup=incoming.is_followup,
        enqueued_at=time.time(),
    )
    try:
        services.queue.enqueue(job)
    except QueueUnavailableError as error:
        log.error("could not enqueue %s: %s", job.job_id, error)
        _show(client, incoming, status_ts, QUEUE_DOWN_TEXT)
        return None
    log.info(
        "question queued: job %s from %s in %s",
        job.job_id,
        incoming.user,
        incoming.channel,
        extra={"job_id": job.job_id, "channel": incoming.channel},
    )
    return job.job_id


def _post_working(client: WebClient, incoming: IncomingQuestion) -> str | None:
    try:
        response = client.chat_postMessage(
            channel=incoming.channel,
            thread_ts=incoming.thread_ts,
            text=blocks.WORKING_TEXT,
            blocks=blocks.working_blocks(),
        )
    except SlackApiError as error:
        # The worker posts the answer as a new message instead; nothing is lost.
        log.warning("could not post the working message: %s", error.response.get("error"))
        return None
    return str(response["ts"])


def _reply(client: WebClient, incoming: IncomingQuestion, text: str) -> None:
    try:
        client.chat_postMessage(channel=incoming.channel, thread_ts=incoming.thread_ts, text=text)
    except SlackApiError as error:
        log.warning("could not reply in %s: %s", incoming.channel, error.response.get("error"))


def _show(client: WebClient, incoming: IncomingQuestion, ts: str | None, text: str) -> None:
    if ts is None:
        _reply(client, incoming, text)
        return
    try:
        client.chat_update(
            channel=incoming.channel, ts=ts, text=text, blocks=blocks.error_blocks(text)
        )
    except SlackApiError as error:
        log.warning("could not update %s: %s", ts, error.response.get("error"))


def _tell_privately(client: WebClient, incoming: IncomingQuestion, text: str) -> None:
    try:
        client.chat_postEphemeral(
            channel=incoming.channel, user=incoming.user, thread_ts=incoming.thread_ts, text=text
        )
    except SlackApiError:
        _reply(client, incoming, text)
