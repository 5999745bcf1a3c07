"""Posting a job's message in its thread at most once, whatever happens to the worker.

Every message carries Slack message metadata naming its job
(``{"event_type": "ragbot_answer", "event_payload": {"job_id": ...}}``). Before a post
the ledger is told one is coming (``mark_posting``); after it, its ts is recorded. A
redelivered job, or one whose ledger shows an earlier attempt, first looks for its own
message (the ledger's ``posted_ts``, else the thread read with
``include_all_metadata``) and edits it with ``chat.update`` instead of posting again.
A post that failed in a way that may still have landed is looked for the same way
before it is sent again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.jobs import AskJob, NoticeJob
from bot.ledger import JobLedger
from bot.slack_retry import SlackRetry, slack_error_code

log = logging.getLogger(__name__)

ANSWER_EVENT_TYPE = "ragbot_answer"
WORKING_REACTION = "eyes"  # on a question from its intake until its answer is posted
MESSAGE_GONE_ERRORS = frozenset({"message_not_found", "cant_update_message"})
REPLIES_PAGE = 200
REPLIES_MAX_PAGES = 5
NO_ACCESS_ERRORS = frozenset({"not_in_channel", "channel_not_found", "is_archived"})
INVITE_HINT = "Invite me to the channel with `/invite @ragbot` and ask again."


class PostGuard(Protocol):
    """The delivery a post belongs to, as the worker sees it."""

    @property
    def redelivered(self) -> bool:
        """Whether an earlier delivery of the job may have posted already."""
        ...

    def check(self) -> None:
        """Raise :class:`~bot.jobs.LeaseLost` unless this worker still owns the job."""
        ...

    def wait(self, seconds: float) -> None:
        """Sleep between Slack retries (returns early when the job is handed back)."""
        ...


class LastWord:
    """The guard of a job's last word: nobody else will post for it any more."""

    redelivered = True

    def check(self) -> None:
        return None

    def wait(self, seconds: float) -> None:
        time.sleep(seconds)


def refused_texts(job: AskJob | NoticeJob, error: str) -> tuple[str, str]:
    """What to tell the asker when Slack refused the job's message with ``error``: in
    the thread, and in a direct message when the thread cannot be reached either."""
    hint = INVITE_HINT if error in NO_ACCESS_ERRORS else "The details are in the bot's logs."
    return (
        f"I couldn't post my reply here: Slack refused it (`{error}`).",
        f"I couldn't reply to your message in <#{job.channel}>: Slack refused it "
        f"(`{error}`). {hint}",
    )


def answer_metadata(job_id: str) -> dict[str, Any]:
    return {"event_type": ANSWER_EVENT_TYPE, "event_payload": {"job_id": job_id}}


def job_id_of(message: dict[str, Any]) -> str | None:
    """The job id in a message's ragbot metadata, if it has some."""
    metadata = message.get("metadata") or {}
    if metadata.get("event_type") != ANSWER_EVENT_TYPE:
        return None
    job_id = (metadata.get("event_payload") or {}).get("job_id")
    return str(job_id) if job_id else None


@dataclass(slots=True)
class ThreadPoster:
    """Posts (or re-posts as an edit) the one message of a job in its thread."""

    client: WebClient
    ledger: JobLedger
    retry: SlackRetry

    def post(
        self,
        *,
        job_id: str,
        channel: str,
        thread_ts: str,
        text: str,
        guard: PostGuard,
        blocks: list[dict[str, Any]] | None = None,
        retry_window_s: float | None = None,
        message_ts: str | None = None,
    ) -> str:
        """Post or update the job's message; returns its ts. ``retry_window_s`` replaces
        the retry window of :attr:`retry` (0: a single try). ``message_ts``: the job's
        message as the caller knows it (a stream it began), used when the ledger has none.

        Raises :class:`~bot.jobs.LeaseLost`, :class:`~bot.slack_retry.SlackRejected` or
        :class:`~bot.slack_retry.SlackUnavailable`; ledger failures raise
        :class:`~bot.jobs.QueueUnavailableError`.
        """
        record = self.ledger.record(job_id)
        ts = record.posted_ts or message_ts
        look = ts is None and (guard.redelivered or record.posting)
        announced = False
        content: dict[str, Any] = {"text": text, "metadata": answer_metadata(job_id)}
        if blocks is not None:
            content["blocks"] = blocks

        def attempt() -> str:
            nonlocal ts, look, announced
            if look:
                ts = self.find_post(channel, thread_ts, job_id)
                look = False
            guard.check()
            if ts is not None:
                try:
                    self.client.chat_update(channel=channel, ts=ts, **content)
                    return ts
                except SlackApiError as error:
                    if slack_error_code(error) not in MESSAGE_GONE_ERRORS:
                        raise
                    log.warning("message %s of job %s is gone; posting anew", ts, job_id)
                    ts = None
            if not announced:
                self.ledger.mark_posting(job_id)
                announced = True
            look = True  # if this post fails, it may still have landed
            response = self.client.chat_postMessage(channel=channel, thread_ts=thread_ts, **content)
            look = False
            return str(response["ts"])

        posted = self.retry.call(
            "chat.postMessage", attempt, wait=guard.wait, window_s=retry_window_s
        )
        if posted != record.posted_ts:
            self.ledger.record_posted(job_id, posted)
        return posted

    def find_post(self, channel: str, thread_ts: str, job_id: str) -> str | None:
        """The ts of the message of ``job_id`` in the thread, from its metadata."""
        cursor = ""
        for _ in range(REPLIES_MAX_PAGES):
            response = self.client.conversations_replies(
                channel=channel,
                ts=thread_ts,
                include_all_metadata=True,
                limit=REPLIES_PAGE,
                cursor=cursor or None,
            )
            for message in response.get("messages", []):
                if job_id_of(message) == job_id:
                    log.info("job %s already posted %s; updating it", job_id, message["ts"])
                    return str(message["ts"])
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or ""
            if not cursor:
                return None
        return None

    def notify(self, job: NoticeJob, guard: PostGuard) -> None:
        """Post a :class:`NoticeJob`: once in the thread, or privately to its user
        (ephemeral messages cannot be found or edited again, nor seen twice by others)."""
        if not job.ephemeral:
            self.post(
                job_id=job.job_id,
                channel=job.channel,
                thread_ts=job.thread_ts,
                text=job.text,
                guard=guard,
            )
            return
        self.retry.call(
            "chat.postEphemeral",
            lambda: self.client.chat_postEphemeral(
                channel=job.channel, user=job.user, thread_ts=job.thread_ts, text=job.text
            ),
            before_attempt=guard.check,
            wait=guard.wait,
        )

    def tell_refused(self, job: AskJob | NoticeJob, error: str) -> bool:
        """Slack refused the job's message for good: tell the asker in words, with one
        try in the thread (a plain message may pass where blocks did not), else one
        direct message. Returns whether either landed; failures are only logged."""
        in_thread, direct = refused_texts(job, error)
        try:
            self.post(
                job_id=job.job_id,
                channel=job.channel,
                thread_ts=job.thread_ts,
                text=in_thread,
                guard=LastWord(),
                retry_window_s=0,
            )
            return True
        except Exception as failure:
            log.warning("could not tell %s in the thread: %r", job.user, failure)
        try:
            self.client.chat_postMessage(channel=job.user, text=direct)
            return True
        except Exception as failure:
            log.warning("could not tell %s directly either: %r", job.user, failure)
        return False

    def unreact(self, channel: str, ts: str, name: str = WORKING_REACTION) -> None:
        """Remove the working indicator from the question; one try, failures ignored."""
        try:
            self.client.reactions_remove(channel=channel, timestamp=ts, name=name)
        except Exception as error:  # best-effort: the answer is already posted
            log.debug("could not remove :%s: from %s: %r", name, ts, error)
