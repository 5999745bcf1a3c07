"""The worker's half of a question: read the thread, run the pipeline, post once.

"Once" holds across worker crashes and Slack failures: :class:`~bot.posting.ThreadPoster`
finds an earlier post of the same job and edits it instead of posting again, and Slack
hiccups are retried in-process (:mod:`bot.slack_retry`) so the computed answer is posted
without running the pipeline a second time. A generated answer is streamed into the
thread while it is written (:mod:`bot.streaming`), with the assistant status showing
what is happening before that; the finished answer then replaces the stream. Once it is
posted, the :eyes: reaction intake put on the question comes off.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from slack_sdk import WebClient

from bot import blocks
from bot.answer_records import AnswerRecord, AnswerRecords
from bot.conversation_state import ThreadRegistry
from bot.jobs import AskJob, RetryJob
from bot.metrics import BotMetrics
from bot.posting import PostGuard, ThreadPoster
from bot.slack_retry import SlackRejected, SlackUnavailable
from bot.streaming import AnswerStream
from bot.text import question_from_text
from rag_core.docsets import DocSet, docsets_for_channel
from rag_core.errors import (
    GenerationError,
    IndexMismatchError,
    IndexNotFoundError,
    InputError,
    StoreUnavailableError,
)
from rag_core.pipeline import RagPipeline
from rag_core.types import Answer, AnswerKind, Turn

if TYPE_CHECKING:  # built by the worker's setup; only their types are needed here
    from bot.answer_stats import AnswerStats
    from bot.private_answers import PrivateAnswers

log = logging.getLogger(__name__)

SEARCH_DOWN_RETRYING = "I couldn't reach the search index; I'll retry."
SEARCH_DOWN_FINAL = "I couldn't reach the search index. Please try again in a few minutes."
LLM_BUSY = "The answer service is busy, try again in a minute."
LLM_DOWN = "The answer service is unavailable right now; please try again later."
NOT_INDEXED = "Nothing is indexed yet. An admin can run `/reindex` to index the docs."
INDEX_MISMATCH = (
    "The search index was built with a different embedding model. An admin needs to run `/reindex`."
)
UNEXPECTED = "Something went wrong while answering. The details are in the bot's logs."
EXTRACTIVE_NOTE = "Extractive answer: no language model is configured, so these are quotes."
HISTORY_RETRY_WINDOW_S = 30.0  # a follow-up without history beats none at all
NOT_COVERED_REACTION = "shrug"
STATUS_SEARCHING = "Searching the docs…"
STATUS_WRITING = "Writing the answer…"
LOADING_MESSAGES = ["Searching the docs…", "Ranking the best passages…", "Writing the answer…"]


class AssistantStatus:
    """The thread's assistant status ("Searching the docs…") while a job is worked on.

    Best effort, one try each: where Slack does not allow a status (outside assistant
    threads, or without the scope) the first refusal turns it off for the job. Slack
    clears the status by itself when the bot replies in the thread.
    """

    def __init__(self, client: WebClient, job: AskJob) -> None:
        self._client = client
        self._job = job
        self._enabled = bool(job.thread_ts) and not job.private

    def show(self, stage: str, passages: int = 0) -> None:
        if not self._enabled:
            return
        if stage == "search":
            text, loading = STATUS_SEARCHING, LOADING_MESSAGES
        elif stage == "rerank":
            text = f"Reading {passages} passages…"
            loading = [text, STATUS_WRITING]
        else:
            text, loading = STATUS_WRITING, [STATUS_WRITING]
        try:
            self._client.assistant_threads_setStatus(
                channel_id=self._job.channel,
                thread_ts=self._job.thread_ts,
                status=text,
                loading_messages=loading,
            )
        except Exception as error:
            self._enabled = False
            log.debug("no assistant status in %s: %r", self._job.channel, error)


@dataclass(slots=True)
class AskHandler:
    """Handles :class:`AskJob` for one worker; every collaborator is built once and shared."""

    pipeline: RagPipeline
    client: WebClient
    poster: ThreadPoster
    threads: ThreadRegistry
    bot_user_id: str
    history_max_messages: int = 12
    metrics: BotMetrics = field(default_factory=BotMetrics)
    answers: AnswerRecords = field(default_factory=lambda: AnswerRecords(None))
    stats: AnswerStats | None = None
    private: PrivateAnswers | None = None
    stream_answers: bool = False  # worker_setup passes RAGBOT_STREAM_ANSWERS
    docsets: tuple[DocSet, ...] = ()  # empty: search every doc set everywhere
    dm_docsets: tuple[str, ...] = ()  # RAGBOT_DM_DOCSETS

    def docsets_for(self, job: AskJob) -> tuple[str, ...] | None:
        """The doc sets a question in ``job``'s conversation searches (None: all): a
        channel's own, or those of direct conversations (DMs, the assistant pane)."""
        if not self.docsets:
            return None
        direct = job.channel.startswith("D")
        return docsets_for_channel(
            self.docsets, job.channel, direct=direct, dm_docsets=self.dm_docsets
        )

    def handle(self, job: AskJob, *, final_attempt: bool, guard: PostGuard) -> None:
        """Answer ``job``; raises :class:`RetryJob` for failures worth another attempt.

        A generated answer is streamed into the thread as it is written (unless the job
        was delivered before, is private, or streaming is off), then written over with
        the finished answer. Slack failures raise :class:`~bot.slack_retry.SlackRejected`
        or :class:`~bot.slack_retry.SlackUnavailable`, a lost lease
        :class:`~bot.jobs.LeaseLost`: the worker decides what then.
        """
        docsets = self.docsets_for(job)
        if docsets == () and job.auto:
            self.shrug(job)  # no doc set answers here: an answer-everything channel stays quiet
            return
        status = AssistantStatus(self.client, job)
        stream = self.new_stream(job, guard)
        try:
            history = self.thread_history(job) if job.is_followup else []
            answer = self.pipeline.ask(
                job.text,
                docsets=docsets,
                history=history,
                on_text=stream.write if stream is not None else None,
                on_stage=status.show,
            )
        except StoreUnavailableError as error:
            log.warning("search index unreachable for %s: %s", job.job_id, error)
            if final_attempt:
                self.post_text(job, SEARCH_DOWN_FINAL, guard=guard)
                return
            self.post_text(job, SEARCH_DOWN_RETRYING, guard=guard)
            raise RetryJob(str(error)) from error
        except (InputError, IndexNotFoundError, IndexMismatchError, GenerationError) as error:
            log.warning("cannot answer %s: %s", job.job_id, error)
            # A model failing mid-stream: the half-written answer becomes the explanation.
            streamed = stream.ts if stream is not None else None
            self.post_text(job, user_message(error), guard=guard, message_ts=streamed)
            return
        self.record(answer)
        if job.auto and answer.kind == AnswerKind.NOT_COVERED:
            self.shrug(job)  # answer-everything channels stay quiet on what the docs lack
            return
        self.answers.put(
            AnswerRecord.of(
                answer,
                job_id=job.job_id,
                channel=job.channel,
                thread_ts=job.thread_ts,
                user=job.user,
                private=job.private,
            )
        )
        if job.private and self.private is not None:
            note = EXTRACTIVE_NOTE if answer.kind == AnswerKind.EXTRACTIVE else None
            self.private.deliver(job, answer, guard=guard, note=note)
            return
        self.post_answer(job, answer, guard=guard, stream=stream)

    def new_stream(self, job: AskJob, guard: PostGuard) -> AnswerStream | None:
        """The stream for ``job``'s answer, or None when it is posted whole: streaming
        is off, the answer is private, or an earlier delivery may have posted already
        (that post is completed instead)."""
        if not self.stream_answers or job.private or guard.redelivered:
            return None
        return AnswerStream(
            client=self.client,
            ledger=self.poster.ledger,
            guard=guard,
            job_id=job.job_id,
            channel=job.channel,
            thread_ts=job.thread_ts,
            recipient_user_id=job.user,
            recipient_team_id=job.team,
            # A reply that comes while the answer streams is a follow-up already.
            on_start=lambda: self.threads.remember(job.channel, job.thread_ts),
        )

    def shrug(self, job: AskJob) -> None:
        """Mark a question the docs do not cover with 🤷 instead of a reply (best effort)."""
        try:
            self.client.reactions_add(
                channel=job.channel, timestamp=job.message_ts, name=NOT_COVERED_REACTION
            )
        except Exception as error:
            log.warning("could not mark %s as not covered: %r", job.message_ts, error)
        self.poster.unreact(job.channel, job.message_ts)
        log.info("job %s: not covered, left unanswered in an auto channel", job.job_id)

    def record(self, answer: Answer) -> None:
        """Stage timings, the answer cache's hit or miss and the outcome, into the
        metrics and the answer stats."""
        if self.stats is not None:
            self.stats.record_answer(kind=answer.kind.value, question=answer.question)
        for stage, ms in answer.timings_ms.items():
            self.metrics.answer_seconds.labels(stage=stage).observe(ms / 1000)
        counter = self.metrics.cache_hits if answer.cached else self.metrics.cache_misses
        counter.labels(cache="answer").inc()

    def thread_history(self, job: AskJob) -> list[Turn]:
        """The thread before this message, oldest first, as conversation turns."""
        try:
            response = self.poster.retry.call(
                "conversations.replies",
                lambda: self.client.conversations_replies(
                    channel=job.channel, ts=job.thread_ts, limit=200
                ),
                window_s=min(HISTORY_RETRY_WINDOW_S, self.poster.retry.window_s),
            )
        except (SlackRejected, SlackUnavailable) as error:
            log.warning("could not read thread %s: %s", job.thread_ts, error)
            return []
        turns = []
        asked_at = Decimal(job.message_ts)
        for message in response.get("messages", []):
            if Decimal(message.get("ts", "0")) >= asked_at:
                break
            text = question_from_text(message.get("text", ""), bot_user_id=self.bot_user_id)
            if not text or text == SEARCH_DOWN_RETRYING:
                continue
            from_bot = bool(message.get("bot_id")) or message.get("user") == self.bot_user_id
            turns.append(Turn("assistant" if from_bot else "user", text))
        return turns[-self.history_max_messages :] if self.history_max_messages else []

    def post_answer(
        self, job: AskJob, answer: Answer, *, guard: PostGuard, stream: AnswerStream | None = None
    ) -> None:
        """Post the answer, or close its stream and write the finished answer over it;
        an answer too long for one message goes on in more, each posted once like the
        first (under its own id, ``{job_id}.2``, ``.3``...)."""
        note = EXTRACTIVE_NOTE if answer.kind == AnswerKind.EXTRACTIVE else None
        message_blocks, *more = blocks.answer_messages(
            answer.text, answer.citations, answer_id=job.job_id, note=note
        )
        if stream is not None and stream.ts is not None:  # it remembered its thread
            stream.finish(blocks=[b for b in message_blocks if b["type"] != "markdown"])
            if stream.first_text_time is not None:
                self.metrics.answer_seconds.labels(stage="first_text").observe(
                    max(0.0, stream.first_text_time - job.enqueued_at)
                )
        else:  # before the post: a reply the moment the answer shows is a follow-up
            self.threads.remember(job.channel, job.thread_ts)
        self._post(
            job,
            text=blocks.answer_fallback_text(answer.text, answer.citations),
            message_blocks=message_blocks,
            guard=guard,
            message_ts=stream.ts if stream is not None else None,
        )
        for number, part in enumerate(more, start=2):
            self.poster.post(
                job_id=f"{job.job_id}.{number}",
                channel=job.channel,
                thread_ts=job.thread_ts,
                text=blocks.answer_fallback_text(part[0]["text"], []),
                blocks=part,
                guard=guard,
            )
        log.info(
            "answer posted for job %s (%s%s)",
            job.job_id,
            answer.kind.value,
            ", cached" if answer.cached else "",
            extra={"job_id": job.job_id, "kind": answer.kind.value, "cached": answer.cached},
        )

    def post_text(
        self,
        job: AskJob,
        text: str,
        *,
        guard: PostGuard,
        retry_window_s: float | None = None,
        message_ts: str | None = None,
    ) -> None:
        """A short message instead of an answer (the job's one message all the same);
        ``retry_window_s`` bounds Slack retries (0: one try, for a best-effort word);
        ``message_ts``: the job's message when the caller knows it (a stream it began).
        A private job's asker is told privately."""
        if job.private and self.private is not None:
            self.private.tell(job, text, guard=guard)
            return
        self._post(
            job,
            text=text,
            message_blocks=blocks.error_blocks(text),
            guard=guard,
            retry_window_s=retry_window_s,
            message_ts=message_ts,
        )

    def _post(
        self,
        job: AskJob,
        *,
        text: str,
        message_blocks: list[dict],
        guard: PostGuard,
        retry_window_s: float | None = None,
        message_ts: str | None = None,
    ) -> None:
        self.poster.post(
            job_id=job.job_id,
            channel=job.channel,
            thread_ts=job.thread_ts,
            text=text,
            blocks=message_blocks,
            guard=guard,
            retry_window_s=retry_window_s,
            message_ts=message_ts,
        )
        if text != SEARCH_DOWN_RETRYING:  # still working on it: the :eyes: stay
            self.poster.unreact(job.channel, job.message_ts)


def user_message(error: Exception) -> str:
    """What to tell the asker about an error; details stay in the logs."""
    if isinstance(error, InputError):
        return str(error)
    if isinstance(error, IndexNotFoundError):
        return NOT_INDEXED
    if isinstance(error, IndexMismatchError):
        return INDEX_MISMATCH
    if isinstance(error, GenerationError):
        return LLM_BUSY if error.busy else LLM_DOWN
    return UNEXPECTED
