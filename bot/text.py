"""Turning a Slack message into a question: mentions out, links and entities readable."""

from __future__ import annotations

import html
import re

_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)(?:\|([^>]*))?>")
_SPECIAL = re.compile(r"<!(here|channel|everyone)(?:\|[^>]*)?>")
_CHANNEL = re.compile(r"<#[A-Z0-9]+\|([^>]*)>")


def question_from_text(text: str, *, bot_user_id: str) -> str:
    """Strip the bot's own mention and Slack's markup from ``text``.

    Other people's mentions stay (as ``<@U123>``) since they can matter to the question.
    """
    text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", " ", text or "")
    text = _LINK.sub(lambda m: m.group(2) or m.group(1), text)
    text = _SPECIAL.sub("", text)
    text = _CHANNEL.sub(lambda m: f"#{m.group(1)}", text)
    return html.unescape(re.sub(r"[ \t]+", " ", text)).strip()


def mentions(text: str, user_id: str) -> bool:
    return f"<@{user_id}" in (text or "")
