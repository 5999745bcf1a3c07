"""The optional "what was wrong?" modal a 👎 opens, and its submission.

The modal carries the answer id in ``private_metadata``; the reason is stored on the
submitting user's 👎 of that answer (see :meth:`bot.feedback.FeedbackStore.add_reason`).
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App

from bot.feedback import MAX_REASON_CHARS
from bot.services import BotServices

log = logging.getLogger(__name__)

FEEDBACK_REASON = "feedback_reason"  # the modal's callback_id
REASON_BLOCK = "reason"
REASON_INPUT = "reason_input"
NOT_SAVED_TEXT = (
    "I couldn't save that: your 👎 on this answer has expired or changed. "
    "Close this window and vote again."
)


def reason_modal(answer_id: str) -> dict[str, Any]:
    """The modal for ``answer_id``: one optional line, at most :data:`MAX_REASON_CHARS`."""
    return {
        "type": "modal",
        "callback_id": FEEDBACK_REASON,
        "private_metadata": answer_id,
        "title": {"type": "plain_text", "text": "Thanks for the 👎", "emoji": True},
        "submit": {"type": "plain_text", "text": "Send"},
        "close": {"type": "plain_text", "text": "Skip"},
        "blocks": [
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "What was wrong with the answer?"},
                "hint": {
                    "type": "plain_text",
                    "text": "Optional. It helps whoever maintains the docs.",
                },
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_INPUT,
                    "max_length": MAX_REASON_CHARS,
                    "placeholder": {
                        "type": "plain_text",
                        "text": "e.g. outdated, wrong page, missed the point",
                    },
                },
            }
        ],
    }


def submitted_reason(view: dict[str, Any]) -> str:
    """The text typed into the modal; "" when left empty."""
    values = (view.get("state") or {}).get("values") or {}
    return str(((values.get(REASON_BLOCK) or {}).get(REASON_INPUT) or {}).get("value") or "")


def register(app: App, services: BotServices) -> None:
    @app.view(FEEDBACK_REASON)
    def on_reason(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        """Store first, then acknowledge: a reason that cannot be stored keeps the modal
        open with an error in words (the ack is due within 3 s; Redis answers in ms)."""
        services.metrics.events_received.labels(kind="view_submission").inc()
        user_id = body["user"]["id"]
        reason = submitted_reason(view).strip()
        if not reason:
            ack()
            return
        answer_id = str(view.get("private_metadata") or "")
        if services.feedback.add_reason(answer_id, user_id, reason):
            ack()
            return
        log.warning("reason from %s on %s not stored", user_id, answer_id or "(no answer)")
        ack(response_action="errors", errors={REASON_BLOCK: NOT_SAVED_TEXT})
