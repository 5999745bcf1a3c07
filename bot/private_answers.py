"""Answers only the asker sees (``/ask``, the "Ask ragbot about this" shortcut).

The answer goes out as an ephemeral message (``chat.postEphemeral``) in the channel
the question came from, with a "Share in channel" button next to 👍/👎. Where the bot
cannot post (it is not a member: ``not_in_channel``, ``channel_not_found``) it goes
through the command's ``response_url`` instead (``response_type: ephemeral``; Slack
accepts five posts there within 30 minutes), and where that is used up or expired, as a
direct message, so the answer is never lost.

Ephemeral messages cannot be found or edited again: a redelivered job posts once more,
which only the asker can see. Transient Slack failures are retried by
:class:`~bot.slack_retry.SlackRetry` under the job's lease, as for thread answers.
The builders here are pure and light: the app process (the Share listener) uses them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse
from slack_sdk.webhook import WebhookClient

from bot import blocks
from bot.jobs import AskJob
from bot.mrkdwn import escape_mrkdwn, truncate_mrkdwn
from bot.posting import PostGuard
from bot.slack_retry import SlackRejected, SlackRetry
from rag_core.types import Answer, Citation

log = logging.getLogger(__name__)

SHARE_ACTION = "share_answer"
SHARE_LABEL = "📣 Share in channel"
SHARE_BLOCK_ID = "share"
NO_ACCESS_ERRORS = frozenset({"not_in_channel", "channel_not_found", "user_not_in_channel"})
"""``chat.postEphemeral`` errors that mean "use the response_url instead"."""
RESPONSE_URL_GONE = frozenset({"expired_url", "used_url", "http_404"})
"""A response_url that takes no more posts: a direct message is the last way left."""
WEBHOOK_TIMEOUT_S = 10
MAX_ASKED_CHARS = 300  # the question above a shared answer, kept short


def with_share_button(answer_blocks: list[blocks.Block], job_id: str) -> list[blocks.Block]:
    """``answer_blocks`` with a "Share in channel" button (value ``job_id``) beside the
    feedback buttons, or in an actions block of its own when there are none (so the
    block count only grows where there is room under Slack's 50)."""
    button = {
        "type": "button",
        "action_id": SHARE_ACTION,
        "text": {"type": "plain_text", "text": SHARE_LABEL, "emoji": True},
        "value": job_id,
    }
    result = [dict(block) for block in answer_blocks]
    for index, block in enumerate(result):
        if block.get("type") == "actions" and block.get("block_id") == blocks.FEEDBACK_BLOCK_ID:
            result[index] = {**block, "elements": [*block.get("elements", []), button]}
            return result
    if len(result) >= blocks.MAX_BLOCKS:
        result = result[: blocks.MAX_BLOCKS - 1]
    return [*result, {"type": "actions", "block_id": SHARE_BLOCK_ID, "elements": [button]}]


def private_answer_blocks(
    answer_text_md: str, citations: list[Citation], *, job_id: str, note: str | None = None
) -> list[blocks.Block]:
    """The private answer: the usual answer blocks plus the Share button."""
    rendered = blocks.answer_blocks(answer_text_md, citations, answer_id=job_id, note=note)
    return with_share_button(rendered, job_id)


def asked_line(user: str, question: str) -> str:
    """The line above a shared answer: who asked what (mrkdwn)."""
    return f"<@{user}> asked: _{truncate_mrkdwn(escape_mrkdwn(question), MAX_ASKED_CHARS)}_"


class PrivateAnswers:
    """Delivers a private job's answer (or its error) to its asker only.

    ``client``: the worker's ``WebClient`` without SDK retries (see
    :func:`~bot.slack_retry.without_sdk_retries`); ``retry``: the worker's
    :class:`~bot.slack_retry.SlackRetry`; ``webhook``: makes the client of a
    ``response_url`` (tests may point it elsewhere).
    """

    def __init__(
        self,
        client: WebClient,
        retry: SlackRetry,
        *,
        webhook: Callable[[str], WebhookClient] | None = None,
    ) -> None:
        self.client = client
        self.retry = retry
        self._webhook = webhook or (
            lambda url: WebhookClient(url, timeout=WEBHOOK_TIMEOUT_S, retry_handlers=[])
        )

    def deliver(
        self, job: AskJob, answer: Answer, *, guard: PostGuard, note: str | None = None
    ) -> None:
        """Show ``answer`` to ``job.user`` alone, with the Share button. ``note``: a line
        under the sources (the extractive-answer note).

        Raises :class:`~bot.jobs.LeaseLost`, :class:`~bot.slack_retry.SlackRejected`
        (every way refused; ``.error`` says why) or
        :class:`~bot.slack_retry.SlackUnavailable` (Slack kept failing).
        """
        content = {
            "text": blocks.answer_fallback_text(answer.text, answer.citations),
            "blocks": private_answer_blocks(
                answer.text, list(answer.citations), job_id=job.job_id, note=note
            ),
        }
        self._send(job, content, guard=guard)
        log.info(
            "private answer delivered for job %s (%s)",
            job.job_id,
            answer.kind.value,
            extra={"job_id": job.job_id, "kind": answer.kind.value},
        )

    def tell(self, job: AskJob, text: str, *, guard: PostGuard) -> None:
        """A short message instead of an answer (not indexed, LLM down …), privately.
        Raises as :meth:`deliver`."""
        self._send(job, {"text": text, "blocks": blocks.error_blocks(text)}, guard=guard)

    def tell_refused(self, job: AskJob, error: str) -> bool:
        """Slack refused the answer for good: one plain-text try through the
        ``response_url``, then one direct message. Returns whether either landed."""
        text = f"I couldn't show you my answer: Slack refused it (`{error}`). Please try again."
        if job.response_url:
            try:
                self._respond(job.response_url, {"text": text})
                return True
            except Exception as failure:
                log.warning("could not tell %s through response_url: %r", job.user, failure)
        try:
            self.client.chat_postMessage(channel=job.user, text=text)
            return True
        except Exception as failure:
            log.warning("could not tell %s directly either: %r", job.user, failure)
        return False

    def _send(self, job: AskJob, content: dict[str, Any], *, guard: PostGuard) -> None:
        """Ephemeral in the channel, else the response_url, else a direct message."""
        error = ""
        if job.channel:
            try:
                self.retry.call(
                    "chat.postEphemeral",
                    lambda: self.client.chat_postEphemeral(
                        channel=job.channel, user=job.user, **content
                    ),
                    before_attempt=guard.check,
                    wait=guard.wait,
                )
                return
            except SlackRejected as rejected:
                if rejected.error not in NO_ACCESS_ERRORS:
                    raise
                error = rejected.error
        if job.response_url:
            log.info("job %s: no ephemeral (%s); using its response_url", job.job_id, error)
            try:
                self.retry.call(
                    "response_url",
                    lambda: self._respond(job.response_url, content),
                    before_attempt=guard.check,
                    wait=guard.wait,
                )
                return
            except SlackRejected as rejected:
                if rejected.error not in RESPONSE_URL_GONE:
                    raise
                error = rejected.error
        log.info("job %s: answering %s in a direct message (%s)", job.job_id, job.user, error)
        self.retry.call(
            "chat.postMessage",
            lambda: self.client.chat_postMessage(channel=job.user, **_without_share(content)),
            before_attempt=guard.check,
            wait=guard.wait,
        )

    def _respond(self, url: str, content: dict[str, Any]) -> None:
        post_to_response_url(self._webhook(url), content)


def post_to_response_url(webhook: WebhookClient, content: dict[str, Any]) -> None:
    """One ephemeral post to a ``response_url``; a refusal raises ``SlackApiError`` with
    the HTTP status and Slack's error, so :class:`SlackRetry` judges it like an API call."""
    message = {"response_type": "ephemeral", "replace_original": False, **content}
    response = webhook.send_dict(message)
    if response.status_code == 200:
        return
    data = {"ok": False, "error": _webhook_error(response.body, response.status_code)}
    failed = SlackResponse(
        client=None,
        http_verb="POST",
        api_url=webhook.url,
        req_args={},
        data=data,
        headers=dict(response.headers or {}),
        status_code=response.status_code,
    )
    raise SlackApiError(f"response_url refused: {data['error']}", failed)


def _webhook_error(body: str, status: int) -> str:
    """Slack answers a response_url with a plain error word (``expired_url``) or JSON."""
    text = (body or "").strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get("error"):
        return str(parsed["error"])
    if text and text.replace("_", "").isalnum():
        return text
    return f"http_{status}"


def _without_share(content: dict[str, Any]) -> dict[str, Any]:
    """A direct message is already private and outside the channel: no Share button."""
    kept = []
    for block in content.get("blocks", []):
        if block.get("type") == "actions":
            elements = [e for e in block["elements"] if e.get("action_id") != SHARE_ACTION]
            if not elements:
                continue
            block = {**block, "elements": elements}
        kept.append(block)
    return {**content, "blocks": kept}
