"""Prometheus metrics of the Slack app and the workers.

One :class:`BotMetrics` per process, built at start-up on its own ``CollectorRegistry``
and passed to whoever records something; nothing here touches prometheus-client's
global default registry, so tests build as many as they like.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Protocol

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from bot.jobs import QueueStats, QueueUnavailableError

log = logging.getLogger(__name__)

# Seconds; Slack wants every acknowledgement within 3 s.
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.3, 0.5, 1.0, 2.0, 3.0, 5.0)
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
            "Questions not queued, by reason "
            "(empty, too_long, files_only, queue_down, overloaded, shut_down)",
            ["reason"],
            registry=r,
        )
        self.rate_limited = Counter(
            "ragbot_rate_limited", "Questions refused by the per-user rate limit", registry=r
        )
        self.answer_seconds = Histogram(
            "ragbot_answer_seconds",
            "Answer latency by stage (queue_wait, embed, retrieve, rerank, generate, total, "
            "first_text: question to first streamed words)",
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
        # Registered through _CacheCollector, which adds the counts of watched caches.
        self.cache_hits = Counter(
            "ragbot_cache_hits", "Cache hits by cache (answer, embedding)", ["cache"], registry=None
        )
        self.cache_misses = Counter(
            "ragbot_cache_misses",
            "Cache misses by cache (answer, embedding)",
            ["cache"],
            registry=None,
        )
        self._caches = _CacheCollector(self.cache_hits, self.cache_misses)
        r.register(self._caches)
        self._queue: _QueueCollector | None = None

    def watch_queue(self, queue: HasQueueStats) -> None:
        """Export ``queue.stats()`` as gauges, read at every scrape (a second call replaces
        the queue watched)."""
        if self._queue is None:
            self._queue = _QueueCollector(queue)
            self.registry.register(self._queue)
        else:
            self._queue.queue = queue

    def watch_cache(self, cache: str, counts: HitCounts) -> None:
        """Export ``counts.hits``/``counts.misses`` (plain ints the cache keeps, so the
        engine needs no prometheus import) as ``ragbot_cache_hits{cache=...}`` and misses."""
        self._caches.watch(cache, counts)


class HasQueueStats(Protocol):
    def stats(self) -> QueueStats: ...


class HitCounts(Protocol):
    hits: int
    misses: int


QUEUE_GAUGES = (
    ("ragbot_queue_queued", "Jobs waiting for a worker", "queued"),
    ("ragbot_queue_pending", "Jobs taken by a worker and not yet acknowledged", "pending"),
    ("ragbot_queue_dead_letters", "Jobs in the dead-letter stream", "dead"),
)
QUEUE_UP = ("ragbot_queue_up", "1 when the queue could be read at this scrape, else 0")


class _QueueCollector:
    """Queue gauges read from Redis at scrape time, so every replica reports the truth
    and nothing has to keep them up to date. A queue that cannot be read reports
    ``ragbot_queue_up 0`` and no gauges instead of failing the whole scrape."""

    def __init__(self, queue: HasQueueStats) -> None:
        self.queue = queue

    def describe(self) -> Iterable[Metric]:
        names = [(name, doc) for name, doc, _ in QUEUE_GAUGES] + [QUEUE_UP]
        return [GaugeMetricFamily(name, doc) for name, doc in names]

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(*QUEUE_UP)
        try:
            stats = self.queue.stats()
        except (QueueUnavailableError, redis.exceptions.RedisError) as error:
            log.debug("queue metrics unavailable: %s", error)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        gauges = [
            GaugeMetricFamily(name, doc, value=getattr(stats, field))
            for name, doc, field in QUEUE_GAUGES
        ]
        return [*gauges, up]


class _CacheCollector:
    """The cache hit/miss counters plus the plain-int counts of watched caches."""

    def __init__(self, hits: Counter, misses: Counter) -> None:
        self._hits, self._misses = hits, misses
        self._lock = threading.Lock()
        self._sources: dict[str, HitCounts] = {}

    def watch(self, cache: str, counts: HitCounts) -> None:
        with self._lock:
            self._sources[cache] = counts

    def describe(self) -> Iterable[Metric]:
        return [*self._hits.describe(), *self._misses.describe()]

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            sources = dict(self._sources)
        families = []
        for counter, attribute in ((self._hits, "hits"), (self._misses, "misses")):
            for family in counter.collect():
                for cache, counts in sources.items():
                    value = float(getattr(counts, attribute))
                    family.add_sample(f"{family.name}_total", {"cache": cache}, value)
                families.append(family)
        return families
