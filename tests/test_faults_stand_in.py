"""The Slack stand-in's scripted faults, seen through the real ``WebClient``."""

from __future__ import annotations

import threading
import time

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from tests.fixtures.slack_api import BOT_TOKEN


@pytest.fixture
def bare_client(slack_api) -> WebClient:
    """No retry handlers: each call is one request, so every fault is visible."""
    return WebClient(token=BOT_TOKEN, base_url=slack_api.base_url, timeout=5, retry_handlers=[])


def test_drop_closes_the_connection_before_or_after_the_post_takes_effect(slack_api, bare_client):
    slack_api.drop("chat.postMessage")
    slack_api.drop("chat.postMessage", after_effect=True)

    for text in ("lost", "stored"):
        with pytest.raises(ConnectionError):
            bare_client.chat_postMessage(channel="C1", thread_ts="1.000001", text=text)

    assert [c.status for c in slack_api.calls_for("chat.postMessage")] == [0, 200]
    assert [m["text"] for m in slack_api.thread("C1", "1.000001")] == ["stored"]


def test_http_and_api_errors_hit_the_next_matching_calls(slack_api, bare_client):
    slack_api.fail_http("chat.postMessage", 500, match={"channel": "C2"})
    slack_api.fail_http("chat.postMessage", 429)
    slack_api.fail_with("chat.postMessage", "not_in_channel")

    errors = []
    for channel in ("C1", "C2", "C2"):
        with pytest.raises(SlackApiError) as caught:
            bare_client.chat_postMessage(channel=channel, text="hi")
        errors.append(caught.value.response)

    assert [(e.status_code, e["error"]) for e in errors] == [
        (429, "ratelimited"),
        (500, "internal_error"),
        (200, "not_in_channel"),
    ]
    assert errors[0].headers["Retry-After"] == "1"
    assert bare_client.chat_postMessage(channel="C2", text="hi")["ok"]


def test_hold_stores_the_post_and_answers_only_when_released(slack_api, bare_client):
    held = slack_api.hold("chat.postMessage", match={"thread_ts": "1.000001"})
    answers = []
    caller = threading.Thread(
        target=lambda: answers.append(
            bare_client.chat_postMessage(channel="C1", thread_ts="1.000001", text="answer")
        )
    )
    caller.start()

    [call] = held.wait_arrived(1, timeout=5)
    time.sleep(0.2)
    assert answers == []
    assert [m["text"] for m in slack_api.thread("C1", "1.000001")] == ["answer"]
    held.release()
    caller.join(timeout=5)

    assert call.args["text"] == "answer"
    assert answers[0]["ok"]
