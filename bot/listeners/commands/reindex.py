"""``/reindex [docset]``: admins re-index one doc set, or all of them; progress goes to a
DM from the bot.

The command is acknowledged first, with no text, before any Slack or Redis call (Slack
wants the ack within 3 s); the outcome reaches the caller through ``respond()``, shown
only to them.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import blocks
from bot.jobs import QueueUnavailableError, ReindexJob, new_job_id
from bot.services import BotServices

log = logging.getLogger(__name__)

NOT_ADMIN_TEXT = "Only workspace admins and the bot's configured admins can re-index the docs."
QUEUE_DOWN_TEXT = "The job queue is unavailable right now; please try again in a minute."
ALREADY_RUNNING_TEXT = (
    "A re-index is already running; its progress is in my DM to whoever started it."
)
FAILED_TEXT = "Something went wrong starting the re-index; nothing changed. Please try again."


def is_admin(user_id: str, *, services: BotServices, client: WebClient) -> bool:
    if user_id in services.settings.admin_ids:
        return True
    try:
        user = client.users_info(user=user_id)["user"]
    except SlackApiError as error:
        log.warning("users.info failed for %s: %s", user_id, error.response.get("error"))
        return False
    return bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))


def register(app: App, services: BotServices) -> None:
    @app.command("/reindex")
    def on_reindex(ack: Ack, command: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        services.metrics.events_received.labels(kind="command").inc()
        try:
            text = start_reindex(
                command["user_id"], command.get("text", ""), services=services, client=client
            )
        except Exception:
            log.exception("/reindex from %s failed", command.get("user_id"))
            text = FAILED_TEXT
        try:
            respond(text=text, response_type="ephemeral")
        except Exception as error:  # the caller may be gone; the DM still tells the story
            log.warning("could not answer /reindex from %s: %s", command.get("user_id"), error)


def start_reindex(
    user_id: str, argument: str = "", *, services: BotServices, client: WebClient
) -> str:
    """Check, lock and queue a re-index of the doc set named by ``argument`` ("" for every
    doc set) for ``user_id``, as ``/reindex`` and the App Home button do; returns what to
    tell them. Raises on unexpected errors (the lock is then free again)."""
    if not is_admin(user_id, services=services, client=client):
        return NOT_ADMIN_TEXT
    docsets = services.settings.docsets
    name = argument.strip()
    if name and name not in {d.name for d in docsets}:
        known = ", ".join(f"`{d.name}`" for d in docsets)
        return f"There is no doc set named `{name}`. Doc sets: {known}; `/reindex` alone does all."
    job_id = new_job_id()
    try:
        acquired = services.reindex_lock.acquire(job_id)
    except QueueUnavailableError as error:
        log.error("could not take the re-index lock: %s", error)
        return QUEUE_DOWN_TEXT
    if not acquired:
        return ALREADY_RUNNING_TEXT
    try:
        queued = _start(job_id, name, user_id=user_id, services=services, client=client)
    except Exception:
        services.reindex_lock.release(job_id)
        raise
    if not queued:
        return QUEUE_DOWN_TEXT
    what = f"doc set `{name}`" if name else "the docs"
    if not name and len(docsets) > 1:
        what = "every doc set (" + ", ".join(f"`{d.name}`" for d in docsets) + ")"
    return f"Re-indexing {what}. I'll post progress in a DM."


def _start(
    job_id: str, docset: str, *, user_id: str, services: BotServices, client: WebClient
) -> bool:
    """Post the progress DM and queue the job; ``False`` when the queue is down (the lock
    is then freed and the DM says so). On other errors the lock is the caller's to free."""
    progress = client.chat_postMessage(
        channel=user_id,
        text="Re-index queued…",
        blocks=blocks.reindex_progress_blocks("queued", 0, 0, files=None, chunks=None),
    )
    job = ReindexJob(
        job_id=job_id,
        user=user_id,
        channel=str(progress["channel"]),
        docset=docset,
        recreate=False,
        progress_ts=str(progress["ts"]),
        enqueued_at=time.time(),
    )
    try:
        services.queue.enqueue(job)
    except QueueUnavailableError as error:
        log.error("could not enqueue the re-index: %s", error)
        services.reindex_lock.release(job_id)
        client.chat_update(
            channel=job.channel,
            ts=job.progress_ts,
            text="The job queue is unavailable; the re-index did not start.",
            blocks=blocks.reindex_failed_blocks("The job queue is unavailable; nothing changed."),
        )
        return False
    services.metrics.jobs_enqueued.labels(kind="reindex").inc()
    return True
