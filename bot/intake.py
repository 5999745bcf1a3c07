"""Accepting a question from Slack: de-duplicate, check, rate-limit, enqueue, react.

Runs on the intake threads after Bolt has acknowledged the event, so nothing here is on
Slack's 3-second clock. The promise: every question the app acknowledged is either
answered once (by a worker) or its asker is told in words why not.

* Replies intake owes the user (empty question, too long, files only, rate limited) are
  queued as :class:`~bot.jobs.NoticeJob` and posted by a worker, with Slack retries.
* The :eyes: reaction on the question is the only Slack call on the way in, made after
  the job is queued and best effort: if it fails the answer still comes.
* While Redis is unavailable (unreachable, ``OOM``, ``READONLY``) de-duplication and the
  rate limit let everything through (a rare double answer beats a lost question) and
  the enqueue fails: intake then posts :data:`QUEUE_DOWN_TEXT` itself and forgets the
  event's de-duplication keys, so Slack's retry of it is handled, not dropped.
* Intake threads never sleep on Slack's ``Retry-After``: their client has no retry
  handlers, so one rate-limited channel never holds up the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from bot.bounded_pool import BoundedThreadPool
from bot.jobs import AskJob, NoticeJob, QueueUnavailableError, job_kind, new_job_id
from bot.posting import WORKING_REACTION
from bot.private_answers import post_to_response_url
from bot.services import BotServices
from bot.slack_retry import slack_error_code
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
BUSY_TEXT = "I'm getting more questions than I can take in right now; please ask again shortly."
INTAKE_THREADS = 8
"""Threads accepting questions: few, so a burst of events leaves the GIL to the HTTP
threads acknowledging the next ones (Slack wants every ack within 3 s)."""
INTAKE_BACKLOG = 2000
"""Events waiting for an intake thread; past it, askers are told to ask again."""
MAX_TITLE_CHARS = 80  # an assistant thread's title, in the pane's history list
PRIVATE_REPLY_TIMEOUT_S = 5


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
    private: bool = False  # answer only the asker; ``ts`` and ``thread_ts`` are then ""
    response_url: str = ""  # where private replies go when the bot cannot post there
    auto: bool = False  # a top-level message in an answer-everything channel
    sets_title: bool = False  # the first question of an assistant thread: names it

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

    @classmethod
    def asked_privately(
        cls,
        *,
        request_id: str,
        channel: str,
        user: str,
        text: str,
        response_url: str,
        team: str = "",
    ) -> IncomingQuestion:
        """``/ask`` or the message shortcut: no message of the asker's to answer under.
        ``request_id`` is unique per request (e.g. ``command:{trigger_id}``)."""
        return cls(
            event_id=request_id,
            channel=channel,
            ts="",
            thread_ts="",
            user=user,
            text=text,
            team=team,
            private=True,
            response_url=response_url,
        )

    @property
    def dedup_keys(self) -> tuple[str, ...]:
        """The event id (Slack's retries) and the message (a mention's ``message`` twin)."""
        keys = (f"event:{self.event_id}",) if self.event_id else ()
        return (*keys, f"msg:{self.channel}:{self.ts}") if self.ts or not keys else keys


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


class Intake:
    """Accepts questions on its own bounded threads, after Bolt acknowledged their events.

    ``client`` is for intake's best-effort calls only (the reaction, the queue-down
    reply): it must not retry on 429 (see :func:`bot.app.build_intake_client`).
    When ``backlog`` events already wait, a new one is not queued: a separate thread
    tells its asker :data:`BUSY_TEXT` (and counts ``intake_refused{reason="overloaded"}``);
    if even that backlog is full, or after :meth:`shutdown`, the event is logged at
    error level with its channel, message and user (``reason="shut_down"`` once shut).
    """

    def __init__(
        self,
        services: BotServices,
        client: WebClient,
        *,
        threads: int = INTAKE_THREADS,
        backlog: int = INTAKE_BACKLOG,
    ) -> None:
        self._services = services
        self._client = client
        self._pool = BoundedThreadPool(threads=threads, backlog=backlog, name="slack-intake")
        self._overflow = BoundedThreadPool(threads=1, backlog=backlog, name="slack-intake-busy")

    def submit(
        self,
        describe: Callable[[], IncomingQuestion | None],
        *,
        bot_user_id: str,
        event: dict[str, Any],
    ) -> None:
        """Accept the question ``describe()`` finds (``None``: not a question) in the
        background. Never blocks: listeners call it on Bolt's threads. ``event`` (the
        Slack event) names the message in the log when it cannot be handled at all."""

        def accept() -> None:
            if (incoming := describe()) is not None:
                self.accept(incoming, bot_user_id=bot_user_id)

        if self._pool.try_submit(accept):
            return
        if self._pool.closed:
            self._drop(event, "intake is shut down", reason="shut_down")
            return

        def refuse() -> None:
            if (incoming := describe()) is not None:
                log.warning("intake overloaded; asking %s to ask again", incoming.user)
                self._services.metrics.intake_refused.labels(reason="overloaded").inc()
                self._post(incoming, BUSY_TEXT)

        if not self._overflow.try_submit(refuse):
            self._drop(event, "intake overloaded", reason="overloaded")

    def _drop(self, event: dict[str, Any], why: str, *, reason: str) -> None:
        """An acknowledged event nobody will handle: logged with its channel, message and
        user (they are not told), and counted."""
        channel, ts, user = event.get("channel", ""), event.get("ts", ""), event.get("user", "")
        log.error(
            "%s: message %s in %s from %s was acknowledged but not handled",
            why,
            ts,
            channel,
            user,
            extra={"channel": channel},
        )
        self._services.metrics.intake_refused.labels(reason=reason).inc()

    def wait_idle(self, timeout_s: float = 30.0) -> bool:
        """Block until every event handed over so far is handled; ``False`` on timeout.
        Tests wait on it between sending events and reading the queue."""
        started = time.monotonic()
        done = self._pool.wait_idle(timeout_s)
        left = max(0.0, timeout_s - (time.monotonic() - started))
        return self._overflow.wait_idle(left) and done

    def shutdown(self, timeout_s: float = 30.0) -> bool:
        """Handle what is already queued, then stop; ``False`` if ``timeout_s`` ran out."""
        started = time.monotonic()
        done = self._pool.shutdown(timeout_s)
        return self._overflow.shutdown(max(0.0, timeout_s - (time.monotonic() - started))) and done

    def accept(self, incoming: IncomingQuestion, *, bot_user_id: str) -> str | None:
        """Queue an answer or a notice for ``incoming``; returns that job's id, or None
        for a duplicate or when the queue is down (the asker was then told directly)."""
        services = self._services
        keys = incoming.dedup_keys
        if not services.dedup.first_time(*keys):
            services.metrics.events_duplicate.inc()
            log.info("duplicate event ignored: %s", " ".join(keys), extra={"keys": list(keys)})
            return None
        try:
            job = self._job_for(incoming, bot_user_id)
            if job is None:  # an auto-answer channel's message that is no question
                return None
            if isinstance(job, NoticeJob) and incoming.private:
                self._post(incoming, job.text)  # the response_url: the asker alone
                return None
            queued = self._enqueue(job)
        except Exception:  # a bug must not turn Slack's retry of the event into a duplicate
            services.dedup.release(*keys)
            raise
        if not queued:
            self._queue_down(incoming, job)
            return None
        services.metrics.jobs_enqueued.labels(kind=job_kind(job)).inc()
        log.info(
            "%s queued: job %s for %s in %s",
            job_kind(job),
            job.job_id,
            incoming.user,
            incoming.channel,
            extra={"job_id": job.job_id, "channel": incoming.channel},
        )
        if isinstance(job, AskJob) and incoming.ts:
            self._react(incoming)
        if isinstance(job, AskJob) and incoming.sets_title:
            self._set_title(incoming, job.text)
        return job.job_id

    def _enqueue(self, job: AskJob | NoticeJob) -> bool:
        try:
            self._services.queue.enqueue(job)
        except QueueUnavailableError as error:
            log.error("could not queue %s %s: %s", job_kind(job), job.job_id, error)
            self._services.metrics.intake_refused.labels(reason="queue_down").inc()
            return False
        return True

    def _job_for(self, incoming: IncomingQuestion, bot_user_id: str) -> AskJob | NoticeJob | None:
        """The answer to queue, or the notice saying why there will be none; ``None`` for
        an auto-answer channel's message without a question (nobody asked the bot)."""
        services = self._services
        question = question_from_text(incoming.text, bot_user_id=bot_user_id)
        limit = services.settings.max_question_chars
        if incoming.auto and not 0 < len(question) <= limit:
            return None
        if not question:
            reason = "files_only" if incoming.has_files else "empty"
            services.metrics.intake_refused.labels(reason=reason).inc()
            return _notice(incoming, FILES_ONLY_TEXT if incoming.has_files else EMPTY_QUESTION_TEXT)
        if len(question) > limit:
            services.metrics.intake_refused.labels(reason="too_long").inc()
            return _notice(incoming, too_long_text(len(question), limit))
        decision = services.rate_limiter.allow(incoming.user)
        if not decision.allowed:
            services.metrics.rate_limited.inc()
            text = rate_limited_text(decision.retry_after_s)
            return _notice(incoming, text, ephemeral=True)
        return AskJob(
            job_id=new_job_id(),
            channel=incoming.channel,
            thread_ts=incoming.thread_ts,
            message_ts=incoming.ts,
            user=incoming.user,
            text=question,
            team=incoming.team,
            is_followup=incoming.is_followup,
            enqueued_at=time.time(),
            private=incoming.private,
            response_url=incoming.response_url,
            auto=incoming.auto,
        )

    def _queue_down(self, incoming: IncomingQuestion, job: AskJob | NoticeJob) -> None:
        """Tell the asker directly (a notice says its own words, an answer the queue is
        down) and forget the event, so Slack's retry of it is handled, not dropped."""
        if isinstance(job, NoticeJob):
            self._post(incoming, job.text, ephemeral=job.ephemeral)
        else:
            self._post(incoming, QUEUE_DOWN_TEXT)
        self._services.dedup.release(*incoming.dedup_keys)

    def _react(self, incoming: IncomingQuestion) -> None:
        """The working indicator; the worker removes it once the answer is posted."""
        try:
            self._client.reactions_add(
                channel=incoming.channel, timestamp=incoming.ts, name=WORKING_REACTION
            )
        except Exception as error:  # best effort: the answer comes either way
            log.warning(
                "could not react to %s in %s: %s", incoming.ts, incoming.channel, _why(error)
            )

    def _set_title(self, incoming: IncomingQuestion, question: str) -> None:
        """Name the assistant thread after its first question; best effort, one try."""
        try:
            self._client.assistant_threads_setTitle(
                channel_id=incoming.channel,
                thread_ts=incoming.thread_ts,
                title=thread_title(question),
            )
        except Exception as error:  # the answer comes either way
            log.warning("could not title thread %s: %s", incoming.thread_ts, _why(error))

    def _post(self, incoming: IncomingQuestion, text: str, *, ephemeral: bool = False) -> None:
        """Best effort, one try; a failure is logged at error level (the asker is not told).
        A private question's reply goes to its ``response_url``, seen by the asker alone."""
        try:
            if incoming.private:
                _respond_privately(incoming.response_url, text)
            elif ephemeral:
                self._client.chat_postEphemeral(
                    channel=incoming.channel,
                    user=incoming.user,
                    thread_ts=incoming.thread_ts,
                    text=text,
                )
            else:
                self._client.chat_postMessage(
                    channel=incoming.channel, thread_ts=incoming.thread_ts, text=text
                )
        except Exception as error:  # network errors too: nothing may escape the intake thread
            log.error(
                "could not tell %s in %s why %s got no answer: %s",
                incoming.user,
                incoming.channel,
                incoming.ts,
                _why(error),
                extra={"channel": incoming.channel},
            )


def _notice(incoming: IncomingQuestion, text: str, *, ephemeral: bool = False) -> NoticeJob:
    return NoticeJob(
        job_id=new_job_id(),
        channel=incoming.channel,
        thread_ts=incoming.thread_ts,
        user=incoming.user,
        text=text,
        ephemeral=ephemeral,
        enqueued_at=time.time(),
    )


def thread_title(question: str, limit: int = MAX_TITLE_CHARS) -> str:
    """``question`` on one line, cut at a word to ``limit`` characters ("…" when cut)."""
    line = " ".join(question.split())
    if len(line) <= limit:
        return line
    cut = line[: limit - 1].rsplit(" ", 1)[0] or line[: limit - 1]
    return f"{cut}…"


def _respond_privately(response_url: str, text: str) -> None:
    """One ephemeral post to a slash command's or shortcut's ``response_url``."""
    if not response_url:
        raise ValueError("a private question without a response_url")
    webhook = WebhookClient(response_url, timeout=PRIVATE_REPLY_TIMEOUT_S, retry_handlers=[])
    post_to_response_url(webhook, {"text": text})


def _why(error: Exception) -> str:
    """Slack's error code, or the exception for network failures."""
    if isinstance(error, SlackApiError):
        return slack_error_code(error)
    return f"{type(error).__name__}: {error}"
