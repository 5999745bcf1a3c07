"""``/metrics``, ``/healthz`` and ``/readyz`` for processes without an HTTP app port.

``ragbot worker`` and the Socket Mode ``ragbot serve`` have no web server of their own,
so Prometheus and the Kubernetes probes reach them on ``RAGBOT_METRICS_PORT``. They get
the HTTP front without a Bolt app: the same routes, limits and graceful stop as
``ragbot serve --http``, on a daemon thread.
"""

from __future__ import annotations

from bot.health import Health
from bot.http_front import HttpFront
from bot.metrics import BotMetrics

STOP_GRACE_S = 1.0  # scrapes and probes are quick; do not hold up the process' exit


def start_metrics_server(
    port: int, metrics: BotMetrics, health: Health, *, host: str = "0.0.0.0"
) -> HttpFront:
    """Serve the exporter on ``host:port`` (``port`` 0: a free one, see ``.port``) until
    ``stop()``. The socket is bound here, so a port in use fails with ``OSError``."""
    server = HttpFront(
        None, health=health, metrics=metrics, host=host, port=port, graceful_s=STOP_GRACE_S
    )
    server.start_in_thread()
    return server


def start_exporter(port: int, metrics: BotMetrics, health: Health) -> HttpFront | None:
    """The exporter on ``RAGBOT_METRICS_PORT``, or ``None`` when it is 0 (off)."""
    return None if port == 0 else start_metrics_server(port, metrics, health)
