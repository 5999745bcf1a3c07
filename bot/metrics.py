"""Prometheus metrics of the Slack app and the workers.

One :class:`BotMetrics` per process, built at start-up on its own ``CollectorRegistry``
and passed to whoever records something; nothing here touches prometheus-client's
global default registry, so tests build as many as they like.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

# Seconds; Slack wants every acknowledgement within 3 s.
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)
ANSWER_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0)


class BotMetrics:
    """Every metric ragbot exports, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = CollectorRegistry() if registry is None else registry
        r = self.registry
        self.events_received = Counter(
            "ragbot_events_received",
            "Slack events, commands and actions received",
            ["kind"],
            registry=r,
        )
        self.events_duplicate = Counter(
            "ragbot_events_duplicate", "Slack events dropped as duplicates (retries)", registry=r
        )
        self.ack_seconds = Histogram(
            "ragbot_ack_seconds",
            "Time to acknowledge a Slack request",
            buckets=ACK_BUCKETS,
            registry=r,
        )
        self.jobs_enqueued = Counter(
            "ragbot_jobs_enqueued", "Jobs put on the queue", ["kind"], registry=r
        )
        self.jobs_finished = Counter(
            "ragbot_jobs_finished",
            "Jobs a worker finished, by outcome (done, retried, dead, lease_lost, skipped)",
            ["outcome"],
            registry=r,
        )
        self.intake_refused = Counter(
            "ragbot_intake_refused",
            "Questions not queued, by reason (empty, too_long, files_only, queue_down)",
            ["reason"],
            registry=r,
        )
        self.rate_limited = Counter(
            "ragbot_rate_limited", "Questions refused by the per-user rate limit", registry=r
        )
        self.answer_seconds = Histogram(
            "ragbot_answer_seconds",
            "Answer latency by stage (queue_wait, embed, retrieve, rerank, generate, total)",
            ["stage"],
            buckets=ANSWER_BUCKETS,
            registry=r,
        )
        self.slack_api_errors = Counter(
            "ragbot_slack_api_errors",
            "Slack Web API errors by method and error code",
            ["method", "error"],
            registry=r,
        )
        self.cache_hits = Counter(
            "ragbot_cache_hits", "Cache hits by cache (answer, embedding)", ["cache"], registry=r
        )
        self.cache_misses = Counter(
            "ragbot_cache_misses",
            "Cache misses by cache (answer, embedding)",
            ["cache"],
            registry=r,
        )
