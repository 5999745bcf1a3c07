"""The loopback Slack Web API, driven by the real WebClient and a real Bolt app."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from slack_bolt import Ack, App, BoltRequest, Say
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier

from bot.blocks import answer_blocks, feedback_ack_text
from rag_core.types import Citation
from tests.fixtures.slack_api import (
    BOT_TOKEN,
    BOT_USER_ID,
    SIGNING_SECRET,
    SlackApiStandIn,
    block_action_body,
    event_callback_body,
    sign_request,
    slash_command_body,
)

JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _error(call: Any) -> str:
    with pytest.raises(SlackApiError) as raised:
        call()
    return raised.value.response["error"]


def test_auth_test_and_bearer_token(slack_api: SlackApiStandIn, slack_client: WebClient) -> None:
    identity = slack_client.auth_test()
    assert (identity["user_id"], identity["bot_id"], identity["team_id"]) == ("UBOT", "BBOT", "T1")
    assert slack_api.calls[0].headers["Authorization"] == f"Bearer {BOT_TOKEN}"
    anonymous = WebClient(base_url=slack_api.base_url)
    assert _error(anonymous.auth_test) == "not_authed"


def test_post_update_replies_round_trip(
    slack_api: SlackApiStandIn, slack_client: WebClient
) -> None:
    slack_api.seed_message("C1", "1700000000.000100", "How do I deploy?", user="U1")
    blocks = answer_blocks(
        "Use **helm** [1].",
        [Citation(1, "Deploy", "https://d.io", "deploy.md", "")],
        answer_id="j1",
    )
    first = slack_client.chat_postMessage(
        channel="C1", thread_ts="1700000000.000100", text="Searching the docs…"
    )
    second = slack_client.chat_postMessage(channel="C1", thread_ts="1700000000.000100", text="2nd")
    assert float(first["ts"]) > 1700000000.0001
    assert float(second["ts"]) > float(first["ts"])

    updated = slack_client.chat_update(
        channel="C1",
        ts=first["ts"],
        text="Use helm [1].",
        blocks=blocks,
        metadata={"event_type": "ragbot_answer", "event_payload": {"job": "j1"}},
    )
    assert updated["message"]["blocks"] == blocks

    thread = slack_client.conversations_replies(channel="C1", ts="1700000000.000100")["messages"]
    assert [m["ts"] for m in thread] == ["1700000000.000100", first["ts"], second["ts"]]
    assert thread[0]["user"] == "U1"
    assert thread[0]["reply_count"] == 2
    assert (thread[1]["user"], thread[1]["bot_id"], thread[1]["text"]) == (
        BOT_USER_ID,
        "BBOT",
        "Use helm [1].",
    )
    assert thread[1]["blocks"] == blocks
    assert all(m["thread_ts"] == "1700000000.000100" for m in thread)
    assert "metadata" not in thread[1]
    with_metadata = slack_client.conversations_replies(
        channel="C1", ts=second["ts"], include_all_metadata=True
    )["messages"]
    assert with_metadata[1]["metadata"]["event_payload"] == {"job": "j1"}


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_message_errors(slack_api: SlackApiStandIn, slack_client: WebClient) -> None:
    slack_api.seed_message("C1", "1700000000.000100", "human", user="U1")
    assert _error(lambda: slack_client.chat_update(channel="C1", ts="1.2", text="x")) == (
        "message_not_found"
    )
    assert _error(
        lambda: slack_client.chat_update(channel="C1", ts="1700000000.000100", text="x")
    ) == ("cant_update_message")
    assert _error(lambda: slack_client.chat_postMessage(channel="C1")) == "no_text"
    assert _error(lambda: slack_client.conversations_replies(channel="C1", ts="9.9")) == (
        "thread_not_found"
    )
    assert _error(lambda: slack_client.pins_add(channel="C1", timestamp="1.0")) == "unknown_method"
    assert _error(lambda: slack_client.views_publish(user_id="U1", view={})) == (
        "invalid_arguments"  # a view needs a type and blocks
    )


def test_reactions_like_slack(slack_api: SlackApiStandIn, slack_client: WebClient) -> None:
    slack_client.reactions_add(channel="C1", timestamp="1.000001", name="eyes")
    assert slack_api.reactions("C1", "1.000001") == {"eyes"}
    add_again = lambda: slack_client.reactions_add(channel="C1", timestamp="1.000001", name="eyes")  # noqa: E731
    assert _error(add_again) == "already_reacted"
    slack_client.reactions_remove(channel="C1", timestamp="1.000001", name="eyes")
    assert slack_api.reactions("C1", "1.000001") == set()
    remove = lambda: slack_client.reactions_remove(channel="C1", timestamp="1.000001", name="eyes")  # noqa: E731
    assert _error(remove) == "no_reaction"


def test_ephemeral_and_assistant_status(
    slack_api: SlackApiStandIn, slack_client: WebClient
) -> None:
    sent = slack_client.chat_postEphemeral(channel="C1", user="U1", text="Only you")
    assert sent["message_ts"]
    assert slack_api.ephemerals == [
        {"channel": "C1", "user": "U1", "ts": sent["message_ts"], "text": "Only you"}
    ]
    slack_client.assistant_threads_setStatus(channel_id="D1", thread_ts="1.1", status="is typing…")
    assert slack_api.calls_for("assistant.threads.setStatus")[0].args["status"] == "is typing…"


def test_users_info(slack_api: SlackApiStandIn, slack_client: WebClient) -> None:
    slack_api.add_user("UADMIN", is_admin=True)
    slack_api.add_user("UOWNER", is_owner=True)
    slack_api.add_user("UPLAIN")
    admin = slack_client.users_info(user="UADMIN")["user"]
    owner = slack_client.users_info(user="UOWNER")["user"]
    plain = slack_client.users_info(user="UPLAIN")["user"]
    assert (admin["is_admin"], admin["is_owner"]) == (True, False)
    assert (owner["is_admin"], owner["is_owner"]) == (False, True)
    assert (plain["is_admin"], plain["is_owner"]) == (False, False)
    assert _error(lambda: slack_client.users_info(user="UNOBODY")) == "user_not_found"


def test_rate_limit_is_retried_after_retry_after(
    slack_api: SlackApiStandIn, slack_client: WebClient
) -> None:
    slack_client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=1))
    slack_api.rate_limit("chat.postMessage", times=1, retry_after=1)
    started = time.monotonic()
    response = slack_client.chat_postMessage(channel="C1", text="hello")
    assert response["ok"]
    assert time.monotonic() - started >= 1.0
    assert [call.status for call in slack_api.calls_for("chat.postMessage")] == [429, 200]
    assert len(slack_api.thread("C1", response["ts"])) == 1


def test_rate_limit_without_a_retry_handler_surfaces(
    slack_api: SlackApiStandIn, slack_client: WebClient
) -> None:
    slack_client.retry_handlers.clear()
    slack_api.rate_limit("users.info", retry_after=30)
    with pytest.raises(SlackApiError) as raised:
        slack_client.users_info(user="U1")
    assert raised.value.response.status_code == 429
    assert raised.value.response.headers["Retry-After"] == "30"


def test_form_encoded_blocks_are_decoded(slack_api: SlackApiStandIn) -> None:
    client = WebClient(token=BOT_TOKEN, base_url=slack_api.base_url)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]
    client.api_call("chat.postMessage", data={"channel": "C9", "blocks": json.dumps(blocks)})
    assert slack_api.calls_for("chat.postMessage")[0].args["blocks"] == blocks


def test_wait_for_times_out_with_the_methods_seen(slack_api: SlackApiStandIn) -> None:
    with pytest.raises(AssertionError, match=r"chat\.update called 0 times"):
        slack_api.wait_for("chat.update", 1, timeout=0.1)


def test_signatures_verify_like_slack() -> None:
    body = event_callback_body({"type": "app_mention", "text": "hi"}, event_id="Ev1")
    verifier = SignatureVerifier(SIGNING_SECRET)
    assert verifier.is_valid_request(body, sign_request(body, SIGNING_SECRET))
    assert not verifier.is_valid_request(body, sign_request(body, "another-secret"))
    stale = sign_request(body, SIGNING_SECRET, timestamp=int(time.time()) - 600)
    assert not verifier.is_valid_request(body, stale)
    assert not verifier.is_valid_request(body + " ", sign_request(body, SIGNING_SECRET))


def _bolt_app(client: WebClient) -> App:
    app = App(signing_secret=SIGNING_SECRET, client=client)

    @app.event("app_mention")
    def mention(event: dict[str, Any], say: Say) -> None:
        say(text=f"echo: {event['text']}", thread_ts=event["ts"])

    @app.command("/ragbot")
    def command(ack: Ack, command: dict[str, Any]) -> None:
        ack(text=f"got {command['text']} from {command['user_id']}")

    @app.action("feedback_up")
    def vote(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        client.chat_postEphemeral(
            channel=body["channel"]["id"],
            user=body["user"]["id"],
            text=f"{feedback_ack_text('up')} ({body['actions'][0]['value']})",
        )

    return app


def _dispatch(app: App, body: str, content_type: dict[str, str]) -> Any:
    headers = {**content_type, **sign_request(body, SIGNING_SECRET)}
    return app.dispatch(BoltRequest(body=body, headers=headers))


def test_bolt_app_handles_signed_bodies(
    slack_api: SlackApiStandIn, slack_client: WebClient
) -> None:
    app = _bolt_app(slack_client)
    event = {
        "type": "app_mention",
        "user": "U1",
        "text": f"<@{BOT_USER_ID}> hi",
        "ts": "1700000000.000200",
        "channel": "C1",
        "event_ts": "1700000000.000200",
    }
    assert _dispatch(app, event_callback_body(event, event_id="Ev1"), JSON).status == 200
    posted = slack_api.wait_for("chat.postMessage")[0].args
    assert (posted["channel"], posted["thread_ts"]) == ("C1", "1700000000.000200")
    assert posted["text"] == f"echo: <@{BOT_USER_ID}> hi"

    body = slash_command_body("/ragbot", "reindex", user_id="U2", channel_id="C1")
    response = _dispatch(app, body, FORM)
    assert (response.status, response.body) == (200, "got reindex from U2")

    click = block_action_body("feedback_up", "j7", user_id="U3", channel_id="C1", message_ts="5.5")
    assert _dispatch(app, click, FORM).status == 200
    slack_api.wait_for("chat.postEphemeral")
    assert slack_api.ephemerals[0]["user"] == "U3"
    assert slack_api.ephemerals[0]["text"].endswith("(j7)")

    forged = {**FORM, **sign_request(body, "not-the-secret")}
    assert app.dispatch(BoltRequest(body=body, headers=forged)).status == 401


def test_streams_like_slack(slack_api: SlackApiStandIn, slack_client: WebClient) -> None:
    slack_api.seed_message("C1", "1700000000.000100", "How?", user="U1")
    thread = "1700000000.000100"
    assert (
        _error(  # outside DMs Slack wants the user and team it streams to
            lambda: slack_client.chat_startStream(channel="C1", thread_ts=thread, markdown_text="x")
        )
        == "invalid_arguments"
    )
    stream = slack_client.chat_stream(
        channel="C1",
        thread_ts=thread,
        recipient_user_id="U1",
        recipient_team_id="T1",
        buffer_size=1,
    )
    stream.append(markdown_text="**Hello** ")
    stream.append(markdown_text="world")
    assert slack_api.streaming("C1", stream.ts)
    stream.stop(blocks=[{"type": "context", "elements": [{"type": "mrkdwn", "text": "src"}]}])
    [message] = [m for m in slack_api.thread("C1", thread) if m.get("bot_id")]
    assert message["text"] == "**Hello** world"
    assert message["blocks"][0]["type"] == "context"
    assert not slack_api.streaming("C1", stream.ts)
    assert slack_api.was_streamed("C1", stream.ts)
    assert (
        _error(  # an append to a stopped stream
            lambda: slack_client.chat_appendStream(channel="C1", ts=stream.ts, markdown_text="more")
        )
        == "message_not_in_streaming_state"
    )
    assert (
        _error(lambda: slack_client.chat_appendStream(channel="C1", ts="1.1", markdown_text="x"))
        == "message_not_found"
    )


def test_streams_expire_and_an_update_ends_them(
    slack_api: SlackApiStandIn, slack_client: WebClient
) -> None:
    started = slack_client.chat_startStream(channel="D1", thread_ts="1.1", markdown_text="Hi")
    slack_api.stream_lifetime_s = 0.0
    time.sleep(0.01)
    assert (
        _error(
            lambda: slack_client.chat_appendStream(
                channel="D1", ts=started["ts"], markdown_text="x"
            )
        )
        == "message_not_in_streaming_state"
    )
    slack_api.stream_lifetime_s = 300.0
    again = slack_client.chat_startStream(channel="D1", thread_ts="1.1", markdown_text="Hi")
    slack_client.chat_update(channel="D1", ts=again["ts"], text="Whole answer")
    assert not slack_api.streaming("D1", again["ts"])
    assert slack_api.message("D1", again["ts"])["text"] == "Whole answer"
    too_long = "x" * 12_001
    assert (
        _error(
            lambda: slack_client.chat_startStream(
                channel="D1", thread_ts="1.1", markdown_text=too_long
            )
        )
        == "msg_too_long"
    )


def test_block_limits_like_slack(slack_api: SlackApiStandIn, slack_client: WebClient) -> None:
    def post(blocks: list[dict]) -> str:
        return _error(lambda: slack_client.chat_postMessage(channel="C1", text="t", blocks=blocks))

    section = {"type": "section", "text": {"type": "mrkdwn", "text": "s"}}
    assert post([section] * 51) == "invalid_blocks"
    assert post([{"type": "markdown", "text": "m" * 12_001}]) == "invalid_blocks"
    assert post([{"type": "markdown", "text": ""}]) == "invalid_blocks"
    over = [{"type": "markdown", "text": "m" * 11_000}, {**section, "text": {**section["text"]}}]
    over[1]["text"]["text"] = "s" * 2_500
    assert post(over) == "msg_blocks_too_long"
    ok = slack_client.chat_postMessage(
        channel="C1", text="t", blocks=[{"type": "markdown", "text": "m" * 12_000}, section]
    )
    assert ok["ok"]


def test_assistant_status_needs_its_arguments(
    slack_api: SlackApiStandIn, slack_client: WebClient
) -> None:
    slack_client.assistant_threads_setStatus(
        channel_id="D1", thread_ts="1.1", status="Searching…", loading_messages=["a", "b"]
    )
    slack_client.assistant_threads_setStatus(channel_id="D1", thread_ts="1.1", status="")
    assert slack_api.statuses("D1", "1.1") == ["Searching…", ""]
    assert (
        _error(
            lambda: slack_client.assistant_threads_setStatus(
                channel_id="D1", thread_ts="1.1", status="x", loading_messages=["m"] * 11
            )
        )
        == "invalid_arguments"
    )
