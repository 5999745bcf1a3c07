"""Settings of the Slack app and its workers: the engine's settings plus Slack and Redis.

Slack's own variables keep their usual names (``SLACK_BOT_TOKEN``, ``SLACK_APP_TOKEN``,
``SLACK_SIGNING_SECRET``); everything else has the ``RAGBOT_`` prefix.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, field_validator

from rag_core.settings import Settings


class BotSettings(Settings):
    """The engine's settings plus Slack and Redis; same prefix, same ``.env`` file."""

    slack_bot_token: str = Field(
        default="", validation_alias=AliasChoices("SLACK_BOT_TOKEN", "RAGBOT_SLACK_BOT_TOKEN")
    )
    slack_app_token: str = Field(
        default="", validation_alias=AliasChoices("SLACK_APP_TOKEN", "RAGBOT_SLACK_APP_TOKEN")
    )
    slack_signing_secret: str = Field(
        default="",
        validation_alias=AliasChoices("SLACK_SIGNING_SECRET", "RAGBOT_SLACK_SIGNING_SECRET"),
    )
    slack_api_url: str = "https://slack.com/api/"
    admin_user_ids: str = Field(default="", description="Comma-separated Slack user ids.")

    rate_limit: int = Field(default=10, ge=0, description="Questions per user per window; 0 = off.")
    rate_window_s: int = Field(default=60, ge=1)
    answer_cache_ttl_s: int = Field(default=24 * 3600, ge=0)
    embedding_cache_ttl_s: int = Field(default=7 * 24 * 3600, ge=0)
    dedup_ttl_s: int = Field(default=3600, ge=60)
    job_stale_after_s: float = Field(default=120.0, gt=0)
    job_max_attempts: int = Field(default=3, ge=1)
    history_max_messages: int = Field(default=12, ge=0)
    slack_retry_window_s: float = Field(
        default=300.0, ge=0, description="Slack 429/5xx/network retried in the worker this long."
    )
    worker_concurrency: int = Field(
        default=4,
        ge=1,
        le=64,
        validation_alias=AliasChoices("RAGBOT_WORKER_CONCURRENCY", "RAGBOT_WORKER_THREADS"),
        description=(
            "Questions one worker process answers at once (model calls batched across them); "
            "RAGBOT_WORKER_THREADS is its former name."
        ),
    )
    drain_grace_s: float = Field(
        default=25.0, ge=0, description="On SIGTERM, a job in hand gets this long to finish."
    )

    auto_answer_channels: str = Field(
        default="",
        description="Comma-separated channel ids where every top-level question is answered.",
    )
    suggested_prompts: str = Field(
        default=(
            "How do I get started?|What can I configure?|How do I troubleshoot a failed deployment?"
        ),
        description="Prompts the assistant pane suggests, separated by '|' (at most 4).",
    )
    stream_answers: bool = Field(
        default=True, description="Stream generated answers into Slack as they are written."
    )

    metrics_port: int = Field(
        default=9100, ge=0, le=65535, description="Exporter of workers and Socket Mode; 0 = off."
    )
    log_format: Literal["text", "json"] = "text"

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    @property
    def admin_ids(self) -> frozenset[str]:
        return frozenset(u.strip() for u in self.admin_user_ids.split(",") if u.strip())

    @property
    def auto_answer_channel_ids(self) -> frozenset[str]:
        return frozenset(c.strip() for c in self.auto_answer_channels.split(",") if c.strip())

    @property
    def suggested_prompt_list(self) -> list[str]:
        """The assistant pane's suggested prompts (Slack shows at most 4)."""
        return [p.strip() for p in self.suggested_prompts.split("|") if p.strip()][:4]


def load_bot_settings(**overrides: object) -> BotSettings:
    return BotSettings(**overrides)  # type: ignore[arg-type]
