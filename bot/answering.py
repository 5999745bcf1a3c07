"""The worker's half of a question: read the thread, run the pipeline, post once.

"Once" holds across worker crashes: the answer replaces the "Searching the docs…"
placeholder with ``chat.update`` (doing it twice leaves one message), and when there
is no placeholder the posted message's ts is recorded in the job ledger before the
job is acknowledged, so a retry updates that message instead of posting another.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import blocks
from bot.conversation_state import ThreadRegistry
from bot.jobs import AskJob, RetryJob
from bot.queue import JobLedger
from bot.text import question_from_text
from rag_core.errors import (
    GenerationError,
    IndexMismatchError,
    IndexNotFoundError,
    InputError,
    StoreUnavailableError,
)
from rag_core.pipeline import RagPipeline
from rag_core.types import Answer, AnswerKind, Turn

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
MESSAGE_GONE_ERRORS = frozenset({"message_not_found", "cant_update_message"})


@dataclass(slots=True)
class AskHandler:
    """Handles :class:`AskJob` for one worker; every collaborator is built once and shared."""

    pipeline: RagPipeline
    client: WebClient
    ledger: JobLedger
    threads: ThreadRegistry
    bot_user_id: str
    history_max_messages: int = 12

    def handle(self, job: AskJob, *, final_attempt: bool) -> None:
        """Answer ``job``; raises :class:`RetryJob` for failures worth another attempt."""
        try:
            history = self.thread_history(job) if job.is_followup else []
            answer = self.pipeline.ask(job.text, history=history)
        except StoreUnavailableError as error:
            log.warning("search index unreachable for %s: %s", job.job_id, error)
            if final_attempt:
                self.post_text(job, SEARCH_DOWN_FINAL)
                return
            self.post_text(job, SEARCH_DOWN_RETRYING)
            raise RetryJob(str(error)) from error
        except (InputError, IndexNotFoundError, IndexMismatchError, GenerationError) as error:
            log.warning("cannot answer %s: %s", job.job_id, error)
            self.post_text(job, user_message(error))
            return
        self.post_answer(job, answer)

    def thread_history(self, job: AskJob) -> list[Turn]:
        """The thread before this message, oldest first, as conversation turns."""
        try:
            response = self.client.conversations_replies(
                channel=job.channel, ts=job.thread_ts, limit=200
            )
        except SlackApiError as error:
            log.warning("could not read thread %s: %s", job.thread_ts, error.response.get("error"))
            return []
        turns = []
        asked_at = Decimal(job.message_ts)
        for message in response.get("messages", []):
            if Decimal(message.get("ts", "0")) >= asked_at:
                break
            text = question_from_text(message.get("text", ""), bot_user_id=self.bot_user_id)
            if not text or text == blocks.WORKING_TEXT:
                continue
            from_bot = bool(message.get("bot_id")) or message.get("user") == self.bot_user_id
            turns.append(Turn("assistant" if from_bot else "user", text))
        return turns[-self.history_max_messages :] if self.history_max_messages else []

    def post_answer(self, job: AskJob, answer: Answer) -> None:
        note = EXTRACTIVE_NOTE if answer.kind == AnswerKind.EXTRACTIVE else None
        self._post(
            job,
            text=blocks.answer_fallback_text(answer.text, answer.citations),
            message_blocks=blocks.answer_blocks(
                answer.text, answer.citations, answer_id=job.job_id, note=note
            ),
        )
        self.threads.remember(job.channel, job.thread_ts)
        log.info(
            "answer posted for job %s (%s%s)",
            job.job_id,
            answer.kind.value,
            ", cached" if answer.cached else "",
            extra={"job_id": job.job_id, "kind": answer.kind.value, "cached": answer.cached},
        )

    def post_text(self, job: AskJob, text: str) -> None:
        self._post(job, text=text, message_blocks=blocks.error_blocks(text))

    def _post(self, job: AskJob, *, text: str, message_blocks: list[dict]) -> None:
        """Edit the job's message (the placeholder, or one an earlier attempt posted);
        post a new one, recorded in the ledger first thing, when there is none left."""
        ts = self.ledger.posted_ts(job.job_id) or job.status_ts
        if ts is not None:
            try:
                self.client.chat_update(
                    channel=job.channel, ts=ts, text=text, blocks=message_blocks
                )
                return
            except SlackApiError as error:
                if error.response.get("error") not in MESSAGE_GONE_ERRORS:
                    raise
                log.warning("message %s is gone; posting the reply anew", ts)
        response = self.client.chat_postMessage(
            channel=job.channel, thread_ts=job.thread_ts, text=text, blocks=message_blocks
        )
        self.ledger.record_posted(job.job_id, str(response["ts"]))


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
