"""Metrics: the registry, queue gauges read from a real Redis queue, Slack errors counted
through the real WebClient against the stand-in, cache counts, and the exporter over HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np
import pytest
import redis
from prometheus_client import generate_latest
from slack_bolt import App, BoltRequest
from slack_sdk.errors import SlackApiError

from bot.app import build_web_client
from bot.health import CheckResult, Health
from bot.jobs import AskJob, new_job_id
from bot.metered_client import MeteredWebClient, meter_listener_clients
from bot.metrics import BotMetrics
from bot.metrics_server import start_metrics_server
from bot.queue import InMemoryJobQueue, RedisJobQueue
from bot.settings import BotSettings
from rag_core.cache import QueryEmbeddingCache
from tests.fixtures.slack_api import BOT_TOKEN, SIGNING_SECRET, event_callback_body, sign_request

METRIC_NAMES = (
    "ragbot_events_received",
    "ragbot_events_duplicate",
    "ragbot_ack_seconds",
    "ragbot_jobs_enqueued",
    "ragbot_jobs_finished",
    "ragbot_intake_refused",
    "ragbot_rate_limited",
    "ragbot_answer_seconds",
    "ragbot_slack_api_errors",
    "ragbot_cache_hits",
    "ragbot_cache_misses",
    "ragbot_queue_queued",
    "ragbot_queue_pending",
    "ragbot_queue_dead_letters",
    "ragbot_queue_up",
)


def ask_job(channel: str = "C1") -> AskJob:
    return AskJob(new_job_id(), channel, "1.0", "1.0", "U1", "what is milvus?")


def queue_gauges(metrics: BotMetrics) -> dict[str, float | None]:
    names = ("queued", "pending", "dead_letters", "up")
    return {n: metrics.registry.get_sample_value(f"ragbot_queue_{n}") for n in names}


def errors(metrics: BotMetrics, method: str, error: str) -> float:
    labels = {"method": method, "error": error}
    return metrics.registry.get_sample_value("ragbot_slack_api_errors_total", labels) or 0.0


def test_the_registry_exposes_every_metric():
    metrics = BotMetrics()
    metrics.watch_queue(InMemoryJobQueue())
    families = {family.name for family in metrics.registry.collect()}
    assert set(METRIC_NAMES) <= families
    assert b"ragbot_queue_up 1.0" in generate_latest(metrics.registry)


def test_queue_gauges_follow_a_real_redis_queue(redis_client, redis_prefix):
    queue = RedisJobQueue(redis_client, prefix=redis_prefix, max_attempts=2)
    metrics = BotMetrics()
    metrics.watch_queue(queue)
    assert queue_gauges(metrics) == {"queued": 0, "pending": 0, "dead_letters": 0, "up": 1}
    for _ in range(4):
        queue.enqueue(ask_job())
    taken = queue.take("w1", block_ms=0)
    failed = queue.take("w2", block_ms=0)
    assert taken is not None and failed is not None
    queue.fail(failed, "boom")
    assert queue_gauges(metrics) == {"queued": 2, "pending": 1, "dead_letters": 1, "up": 1}
    queue.ack(taken)
    assert queue_gauges(metrics) == {"queued": 2, "pending": 0, "dead_letters": 1, "up": 1}


def test_an_unreachable_queue_reports_down_without_failing_the_scrape(unreachable_redis_url):
    client = redis.Redis.from_url(unreachable_redis_url, socket_connect_timeout=0.5)
    metrics = BotMetrics()
    metrics.watch_queue(RedisJobQueue(client))
    assert queue_gauges(metrics) == {
        "queued": None,
        "pending": None,
        "dead_letters": None,
        "up": 0,
    }
    assert b"ragbot_events_received" in generate_latest(metrics.registry)


def test_in_memory_queue_stats():
    queue = InMemoryJobQueue(max_attempts=1)
    for _ in range(3):
        queue.enqueue(ask_job())
    delivery = queue.take("w", block_ms=0)
    assert delivery is not None
    queue.take("w", block_ms=0)
    queue.fail(delivery, "boom")
    stats = queue.stats()
    assert (stats.queued, stats.pending, stats.dead) == (1, 1, 1)


def test_slack_api_errors_count_by_method_and_code(slack_api):
    metrics = BotMetrics()
    settings = BotSettings(
        _env_file=None, slack_bot_token=BOT_TOKEN, slack_api_url=slack_api.base_url
    )
    client = build_web_client(settings, metrics)
    slack_api.fail_with("chat.postMessage", "channel_not_found", times=2)
    for _ in range(2):
        with pytest.raises(SlackApiError):
            client.chat_postMessage(channel="C404", text="hi")
    client.chat_postMessage(channel="C1", text="fine")
    with pytest.raises(SlackApiError):
        client.api_call("no.suchMethod")
    assert errors(metrics, "chat.postMessage", "channel_not_found") == 2
    assert errors(metrics, "no.suchMethod", "unknown_method") == 1


def test_network_errors_are_counted(slack_api):
    metrics = BotMetrics()
    client = MeteredWebClient(
        token=BOT_TOKEN, base_url=slack_api.base_url, timeout=5, retry_handlers=[], metrics=metrics
    )
    slack_api.drop("reactions.add")
    with pytest.raises(OSError):
        client.reactions_add(channel="C1", timestamp="1.0", name="eyes")
    assert errors(metrics, "reactions.add", "network_error") == 1


def test_listener_clients_are_metered(slack_api):
    """Bolt builds a plain client per request; listeners still get a counting one."""
    metrics = BotMetrics()
    client = MeteredWebClient(token=BOT_TOKEN, base_url=slack_api.base_url, metrics=metrics)
    app = App(client=client, signing_secret=SIGNING_SECRET, process_before_response=True)
    meter_listener_clients(app, metrics)
    seen = []

    @app.event("app_mention")
    def on_mention(client, event):
        seen.append(type(client))
        client.chat_postMessage(channel=event["channel"], text="hello")

    slack_api.fail_with("chat.postMessage", "not_in_channel")
    event = {"type": "app_mention", "user": "U1", "text": "hi", "channel": "C9", "ts": "5.0"}
    body = event_callback_body(event, event_id="Ev1")
    headers = {**sign_request(body, SIGNING_SECRET), "Content-Type": "application/json"}
    response = app.dispatch(BoltRequest(body=body, headers=headers))
    assert response.status in (200, 500)
    assert seen == [MeteredWebClient]
    assert errors(metrics, "chat.postMessage", "not_in_channel") == 1


def test_embedding_cache_hits_and_misses_are_exported(redis_client, redis_prefix):
    cache = QueryEmbeddingCache(redis_client, prefix=redis_prefix, ttl_s=60)
    metrics = BotMetrics()
    metrics.watch_cache("embedding", cache)
    metrics.cache_hits.labels(cache="answer").inc()
    assert cache.get("m", 4, "i", "q") is None
    cache.put("m", 4, "i", "q", np.ones(4))
    assert cache.get("m", 4, "i", "q") is not None
    assert cache.get("m", 4, "i", "q") is not None
    value = metrics.registry.get_sample_value
    assert value("ragbot_cache_hits_total", {"cache": "embedding"}) == 2
    assert value("ragbot_cache_misses_total", {"cache": "embedding"}) == 1
    assert value("ragbot_cache_hits_total", {"cache": "answer"}) == 1


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_the_exporter_serves_metrics_and_probes(redis_client, redis_prefix):
    metrics = BotMetrics()
    metrics.watch_queue(RedisJobQueue(redis_client, prefix=redis_prefix))
    health = Health()
    workers_ok = [True]
    health.add_check("workers", lambda: CheckResult(workers_ok[0]), liveness=True)
    health.add_check("redis", lambda: CheckResult(False, "down"))
    server = start_metrics_server(0, metrics, health, host="127.0.0.1")
    base = f"http://127.0.0.1:{server.port}"
    try:
        status, body = get(f"{base}/metrics")
        assert status == 200 and b"ragbot_queue_up 1.0" in body
        assert get(f"{base}/healthz")[0] == 200  # a dependency down is not a liveness failure
        status, body = get(f"{base}/readyz")
        assert status == 503 and json.loads(body)["state"] == "starting"
        health.set_ready()
        status, body = get(f"{base}/readyz")
        assert status == 200 and json.loads(body)["checks"]["redis"]["ok"] is False
        workers_ok[0] = False
        assert get(f"{base}/healthz")[0] == 503
        health.set_draining()
        assert get(f"{base}/readyz")[0] == 503
    finally:
        server.stop()
