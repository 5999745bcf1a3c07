"""Builds a worker: models loaded once, Milvus and the caches connected, handlers wired."""

from __future__ import annotations

import logging
import signal
import threading

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.answering import AskHandler
from bot.app import build_web_client
from bot.reindexing import ReindexHandler
from bot.serve import Runtime, build_runtime
from bot.settings import BotSettings
from bot.worker import Worker, default_consumer_name
from rag_core.cache import AnswerCache, QueryEmbeddingCache
from rag_core.commands import build_indexer, build_pipeline
from rag_core.components import load_models, open_store
from rag_core.errors import ConfigError

log = logging.getLogger(__name__)


def build_worker(
    settings: BotSettings, runtime: Runtime, client: WebClient, *, name: str
) -> Worker:
    models = load_models(settings)
    store = open_store(settings)
    pipeline = build_pipeline(settings, models, store)
    if runtime.redis is not None:
        prefix = settings.redis_prefix
        pipeline.query_cache = QueryEmbeddingCache(
            runtime.redis, prefix=prefix, ttl_s=settings.embedding_cache_ttl_s
        )
        if settings.answer_cache_ttl_s > 0:
            pipeline.answer_cache = AnswerCache(
                runtime.redis, prefix=prefix, ttl_s=settings.answer_cache_ttl_s
            )
    try:
        bot_user_id = str(client.auth_test()["user_id"])
    except SlackApiError as error:
        raise ConfigError(
            f"Slack refused SLACK_BOT_TOKEN (auth.test: {error.response.get('error')})."
        ) from error
    services = runtime.services
    return Worker(
        name=name,
        queue=services.queue,
        ledger=runtime.ledger,
        ask=AskHandler(
            pipeline=pipeline,
            client=client,
            ledger=runtime.ledger,
            threads=services.threads,
            bot_user_id=bot_user_id,
            history_max_messages=settings.history_max_messages,
        ),
        reindex=ReindexHandler(
            indexer=build_indexer(settings, models, store),
            client=client,
            lock=services.reindex_lock,
        ),
    )


def run_worker_process(settings: BotSettings, *, name: str | None, burst: bool) -> int:
    """``ragbot worker``: answer queued questions until SIGTERM/SIGINT."""
    if not settings.redis_url:
        raise ConfigError(
            "RAGBOT_REDIS_URL is not set: separate workers share the queue through Redis "
            "(without it, `ragbot serve` answers in-process)."
        )
    runtime = build_runtime(settings)
    worker = build_worker(
        settings, runtime, build_web_client(settings), name=name or default_consumer_name()
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    worker.run(stop=stop, burst=burst)
    return 0
