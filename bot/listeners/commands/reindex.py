"""``/reindex [path]``: admins re-index the docs; progress goes to a DM from the bot."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from slack_bolt import Ack, App
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


def resolve_docs_path(argument: str, docs_root: Path) -> Path | None:
    """The folder to index, or None when ``argument`` points outside the docs root."""
    root = docs_root.resolve()
    candidate = (root / argument.strip()).resolve() if argument.strip() else root
    return candidate if candidate == root or candidate.is_relative_to(root) else None


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
    def on_reindex(ack: Ack, command: dict[str, Any], client: WebClient) -> None:
        """Every reply to the command itself is its ack: shown only to whoever typed it."""
        user_id = command["user_id"]
        if not is_admin(user_id, services=services, client=client):
            ack(text=NOT_ADMIN_TEXT)
            return
        root = services.settings.docs_path
        target = resolve_docs_path(command.get("text", ""), root)
        if target is None:
            ack(text=f"Only the docs folder ({root}) or folders under it can be indexed.")
            return
        job_id = new_job_id()
        try:
            acquired = services.reindex_lock.acquire(job_id)
        except QueueUnavailableError as error:
            log.error("could not take the re-index lock: %s", error)
            ack(text=QUEUE_DOWN_TEXT)
            return
        if not acquired:
            ack(text=ALREADY_RUNNING_TEXT)
            return
        ack(text=f"Re-indexing `{target}`. I'll post progress in a DM.")
        try:
            _start(job_id, target, user_id=user_id, services=services, client=client)
        except Exception:
            services.reindex_lock.release(job_id)
            raise


def _start(
    job_id: str, target: Path, *, user_id: str, services: BotServices, client: WebClient
) -> None:
    """Post the progress DM and queue the job; the lock is the caller's to free on errors."""
    progress = client.chat_postMessage(
        channel=user_id,
        text="Re-index queued…",
        blocks=blocks.reindex_progress_blocks("queued", 0, 0, files=None, chunks=None),
    )
    job = ReindexJob(
        job_id=job_id,
        user=user_id,
        channel=str(progress["channel"]),
        path=str(target),
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
