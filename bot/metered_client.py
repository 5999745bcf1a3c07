"""A Slack ``WebClient`` that counts its failed calls in ``ragbot_slack_api_errors``.

Every Web API method goes through ``WebClient.api_call``, so counting there sees them
all: an ``ok: false`` answer by its error code (``channel_not_found``, ``ratelimited``,
``http_503`` when the body has none), a network failure as ``network_error``. Calls the
client's retry handlers recovered from are not errors. Bolt gives each listener a fresh
plain client; :func:`meter_listener_clients` swaps in a metered one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.metrics import BotMetrics
from bot.slack_retry import slack_error_code

NETWORK_ERROR = "network_error"


class MeteredWebClient(WebClient):
    """``WebClient`` plus error counting; every other behaviour is the SDK's."""

    def __init__(self, *args: Any, metrics: BotMetrics, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.metrics = metrics

    def api_call(self, api_method: str, **kwargs: Any) -> Any:
        try:
            return super().api_call(api_method, **kwargs)
        except SlackApiError as error:
            self._count(api_method, slack_error_code(error))
            raise
        except OSError:  # URLError, timeouts, connection resets
            self._count(api_method, NETWORK_ERROR)
            raise

    def _count(self, method: str, error: str) -> None:
        self.metrics.slack_api_errors.labels(method=method, error=error).inc()


def meter_listener_clients(app: App, metrics: BotMetrics) -> None:
    """Give every listener a metered copy of the client Bolt built for its request."""

    @app.middleware
    def use_metered_client(context: BoltContext, next: Callable[[], None]) -> None:
        plain = context.client
        if plain is not None and not isinstance(plain, MeteredWebClient):
            context["client"] = MeteredWebClient(
                token=plain.token,
                base_url=plain.base_url,
                timeout=plain.timeout,
                ssl=plain.ssl,
                proxy=plain.proxy,
                headers=plain.headers,
                team_id=context.team_id,
                logger=plain.logger,
                retry_handlers=plain.retry_handlers,
                metrics=metrics,
            )
        next()
