"""The Slack app manifest asks for exactly what the code uses, and declares what it handles.

The bot's Web API calls and its Bolt listeners are found by reading ``bot/`` with ``ast``, so
these checks follow the code as it changes: a new ``client.views_open(...)`` needs its scope
in the manifest (or an entry in :data:`METHOD_SCOPES` once Slack's docs say it needs none), a
new ``@app.event("x")`` needs ``x`` subscribed, a scope or subscription nothing uses fails.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.http_front import EVENTS_PATH
from bot.settings import BotSettings
from tests.slack_usage import STREAM_METHODS, SlackUsage, parse_package, scan

ROOT = Path(__file__).resolve().parents[1]
BOT = ROOT / "bot"
MANIFEST = ROOT / "deploy" / "slack-manifest.yaml"
HTTP_URL = f"https://YOUR-HOST{EVENTS_PATH}"

# Slack's required bot-token scopes per Web API method, from each method's reference page
# (docs.slack.dev/reference/methods/<method>); any one of a set suffices, an empty set means
# the method needs none. assistant.threads.setStatus takes chat:write (assistant:write only
# until Slack drops it: changelog 2026-03-05); the chat.*Stream methods take chat:write.
METHOD_SCOPES: dict[str, frozenset[str]] = {
    "auth.test": frozenset(),
    "chat.postMessage": frozenset({"chat:write"}),
    "chat.postEphemeral": frozenset({"chat:write"}),
    "chat.update": frozenset({"chat:write"}),
    "chat.delete": frozenset({"chat:write"}),
    "chat.startStream": frozenset({"chat:write"}),
    "chat.appendStream": frozenset({"chat:write"}),
    "chat.stopStream": frozenset({"chat:write"}),
    "assistant.threads.setStatus": frozenset({"chat:write"}),
    "assistant.threads.setSuggestedPrompts": frozenset({"assistant:write"}),
    "assistant.threads.setTitle": frozenset({"assistant:write"}),
    "conversations.replies": frozenset(
        {"channels:history", "groups:history", "im:history", "mpim:history"}
    ),
    "reactions.add": frozenset({"reactions:write"}),
    "reactions.remove": frozenset({"reactions:write"}),
    "users.info": frozenset({"users:read"}),
    "views.publish": frozenset(),
    "views.open": frozenset(),
}

# The scope each bot event needs (docs.slack.dev/reference/events/<event>); None: none.
EVENT_SCOPES: dict[str, str | None] = {
    "app_mention": "app_mentions:read",
    "message.channels": "channels:history",
    "message.groups": "groups:history",
    "message.im": "im:history",
    "message.mpim": "mpim:history",
    "app_home_opened": None,
    "assistant_thread_started": None,
    "assistant_thread_context_changed": None,
}


@pytest.fixture(scope="module")
def usage() -> SlackUsage:
    return scan(*parse_package(BOT, ROOT))


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return yaml.safe_load(MANIFEST.read_text())


def bot_scopes(manifest: dict[str, Any]) -> set[str]:
    return set(manifest["oauth_config"]["scopes"]["bot"])


def bot_events(manifest: dict[str, Any]) -> set[str]:
    return set(manifest["settings"]["event_subscriptions"]["bot_events"])


def listened_event(subscription: str) -> str:
    """``message.im`` is delivered to ``@app.event("message")``."""
    return subscription.partition(".")[0]


def feature_scopes(manifest: dict[str, Any]) -> set[str]:
    """Scopes a declared feature needs: ``commands`` for slash commands and shortcuts,
    ``assistant:write`` for the assistant pane (Agents & AI Apps)."""
    features = manifest["features"]
    needed = set()
    if features.get("slash_commands") or features.get("shortcuts"):
        needed.add("commands")
    if "assistant_view" in features:
        needed.add("assistant:write")
    return needed


def described(found: dict[str, list[str]], names: Iterable[str]) -> str:
    return "; ".join(f"{name} at {', '.join(found[name])}" for name in sorted(names))


def test_the_scan_finds_calls_and_listeners_however_they_are_written():
    source = """
import re
from bot import ids
CALLBACK = "ask_about_message"
def register(app, client, say, set_status):
    client.chat_postEphemeral(channel="C", user="U", text="x")
    client.api_call("views.publish", json={})
    client.chat_stream(channel="C", thread_ts="1")
    say("hi")
    set_status("thinking")
    @app.event("assistant_thread_started")
    def started(): ...
    @app.shortcut({"callback_id": CALLBACK, "type": "message_action"})
    def shortcut(): ...
    @app.command(ids.ASK)
    def ask(): ...
    app.action(re.compile("^feedback_"))(lambda: None)
    app.message("hello")(lambda: None)
    app.command(make_name())(lambda: None)
"""
    modules = {"bot.ids": ast.parse('ASK = "/ask"'), "bot.sample": ast.parse(source)}
    found = scan(modules, {"bot.ids": "ids.py", "bot.sample": "sample.py"})
    assert (
        set(found.methods)
        == {
            "chat.postEphemeral",
            "views.publish",
            "chat.postMessage",
            "assistant.threads.setStatus",
        }
        | STREAM_METHODS
    )
    assert found.methods["chat.postEphemeral"] == ["sample.py:6"]
    assert set(found.events) == {"assistant_thread_started", "message"}
    assert set(found.shortcuts) == {"ask_about_message"}
    assert set(found.commands) == {"/ask"}
    assert len(found.interactive) == 2
    assert found.unresolved == ["sample.py:19: app.command(...) is not a string or module constant"]


def test_the_scan_sees_what_the_bot_does_today(usage):
    """Calls and listeners that have been in the bot all along are found."""
    assert {"conversations.replies", "chat.postMessage", "reactions.add"} <= set(usage.methods)
    assert {"app_mention", "message"} <= set(usage.events)
    assert "/reindex" in usage.commands
    assert usage.interactive


def test_every_listener_is_registered_with_a_name_the_scan_can_read(usage):
    assert not usage.unresolved, usage.unresolved


def test_every_web_api_method_called_has_its_scopes_on_record(usage):
    unknown = set(usage.methods) - set(METHOD_SCOPES)
    assert not unknown, (
        f"look up the required scopes of {described(usage.methods, unknown)} in Slack's "
        "method reference and add them to METHOD_SCOPES"
    )


def test_the_manifest_grants_a_scope_for_every_method_called(usage, manifest):
    granted = bot_scopes(manifest)
    missing = {m for m in usage.methods if METHOD_SCOPES.get(m) and not METHOD_SCOPES[m] & granted}
    assert not missing, f"no scope for {described(usage.methods, missing)}"


def test_every_event_listened_to_is_subscribed_and_every_subscription_is_listened_to(
    usage, manifest
):
    subscribed = bot_events(manifest)
    unsubscribed = set(usage.events) - {listened_event(s) for s in subscribed}
    assert not unsubscribed, f"subscribe to {described(usage.events, unsubscribed)}"
    # Bolt answers an event no listener matches with a 404, and Slack retries it.
    unheard = {s for s in subscribed if listened_event(s) not in usage.events}
    assert not unheard, f"nothing listens to {sorted(unheard)}"


def test_every_subscribed_event_has_its_scope(manifest):
    unknown = bot_events(manifest) - set(EVENT_SCOPES)
    assert not unknown, f"add the scope of {sorted(unknown)} to EVENT_SCOPES from Slack's docs"
    needed = {EVENT_SCOPES[e] for e in bot_events(manifest)} - {None}
    assert needed <= bot_scopes(manifest)


def test_the_slash_commands_are_exactly_those_the_bot_handles(usage, manifest):
    declared = {c["command"] for c in manifest["features"].get("slash_commands", [])}
    assert declared == set(usage.commands)


def test_the_shortcuts_are_exactly_those_the_bot_handles(usage, manifest):
    declared = {s["callback_id"] for s in manifest["features"].get("shortcuts", [])}
    assert declared == set(usage.shortcuts)


def test_interactivity_is_on_when_the_bot_handles_buttons_views_or_shortcuts(usage, manifest):
    assert usage.interactive
    assert manifest["settings"]["interactivity"]["is_enabled"] is True


def test_the_manifest_asks_for_no_scope_the_code_does_not_need(usage, manifest):
    needed = set().union(*(METHOD_SCOPES.get(m, frozenset()) for m in usage.methods))
    needed |= {EVENT_SCOPES.get(e) for e in bot_events(manifest)} - {None}
    needed |= feature_scopes(manifest)
    assert bot_scopes(manifest) - needed == set()
    assert feature_scopes(manifest) <= bot_scopes(manifest)


def test_the_surfaces_the_code_uses_are_enabled(usage, manifest):
    features = manifest["features"]
    if "views.publish" in usage.methods or "app_home_opened" in usage.events:
        assert features["app_home"]["home_tab_enabled"] is True
    if "message.im" in bot_events(manifest):
        assert features["app_home"]["messages_tab_enabled"] is True
        assert features["app_home"]["messages_tab_read_only_enabled"] is False
    assistant_events = {"assistant_thread_started", "assistant_thread_context_changed"}
    pane_methods = {"assistant.threads.setSuggestedPrompts", "assistant.threads.setTitle"}
    if assistant_events & set(usage.events) or pane_methods & set(usage.methods):
        assert features["assistant_view"]["assistant_description"]


def test_the_manifest_declares_every_feature_of_the_design(manifest):
    """The surfaces ragbot offers, whatever state the code is in."""
    features = manifest["features"]
    assert {c["command"] for c in features["slash_commands"]} == {"/ask", "/reindex"}
    [shortcut] = features["shortcuts"]
    assert shortcut == {
        "name": "Ask ragbot about this",
        "type": "message",
        "callback_id": "ask_about_message",
        "description": shortcut["description"],
    }
    assert features["app_home"]["home_tab_enabled"] is True
    assert features["app_home"]["messages_tab_enabled"] is True
    assert {
        "app_mention",
        "message.im",
        "message.channels",
        "message.groups",
        "app_home_opened",
        "assistant_thread_started",
    } <= bot_events(manifest)
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["settings"]["socket_mode_enabled"] is True


def test_the_assistant_pane_suggests_the_default_prompts_until_the_bot_sets_its_own(manifest):
    suggested = manifest["features"]["assistant_view"]["suggested_prompts"]
    default = BotSettings.model_fields["suggested_prompts"].default
    prompts = [p.strip() for p in default.split("|") if p.strip()][:4]
    assert suggested == [{"title": p, "message": p} for p in prompts]


def test_the_http_mode_variant_in_comments_is_complete():
    """Uncommenting the lines marked ``HTTP mode`` gives a manifest whose three request URLs
    all point at the one path the HTTP server answers."""
    marked = re.compile(r"^(\s*)# ((?:request_)?url: \S+)\s+# HTTP mode$")
    lines = [marked.sub(r"\1\2", line) for line in MANIFEST.read_text().splitlines()]
    text = "\n".join(lines).replace("socket_mode_enabled: true", "socket_mode_enabled: false")
    http = yaml.safe_load(text)
    settings = http["settings"]
    assert settings["socket_mode_enabled"] is False
    assert settings["event_subscriptions"]["request_url"] == HTTP_URL
    assert settings["interactivity"]["request_url"] == HTTP_URL
    assert [c["url"] for c in http["features"]["slash_commands"]] == [HTTP_URL] * len(
        http["features"]["slash_commands"]
    )
