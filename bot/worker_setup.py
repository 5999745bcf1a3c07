"""Builds workers: models loaded once, Milvus and the caches connected, handlers wired,
and ``ragbot worker``: a supervised worker that drains on SIGTERM."""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.answering import AskHandler
from bot.app import build_web_client
from bot.lifecycle import termination_signals, wait_until_set
from bot.metrics_server import start_exporter
from bot.posting import ThreadPoster
from bot.private_answers import PrivateAnswers
from bot.refresher import DocSetRefresher, refresh_schedule
from bot.reindexing import ReindexHandler, record_served_index
from bot.runtime import Runtime, build_runtime
from bot.settings import BotSettings
from bot.slack_retry import SlackRetry, slack_error_code, without_sdk_retries
from bot.worker import Worker, default_consumer_name
from bot.worker_pool import WorkerPool
from rag_core.build_lock import BuildLocks, FileBuildLocks, RedisBuildLocks
from rag_core.cache import AnswerCache, QueryEmbeddingCache, TranslationCache
from rag_core.components import Models, build_pipeline, load_models, open_stores
from rag_core.docset_index import DocSetIndexer
from rag_core.errors import ConfigError
from rag_core.model_batching import batch_across_threads
from rag_core.pipeline import RagPipeline

log = logging.getLogger(__name__)


def build_worker(
    settings: BotSettings, runtime: Runtime, client: WebClient, *, name: str
) -> Worker:
    """One worker with models of its own (see :func:`build_workers`)."""
    return build_workers(settings, runtime, client, load_models(settings), name=name, count=1)[0]


def share_models(settings: BotSettings, count: int) -> Models:
    """The models of the settings, loaded once, for ``count`` workers: with more than one,
    every call runs on one model thread, batched across the workers' questions
    (:func:`~rag_core.model_batching.batch_across_threads`; ``close`` stops it)."""
    models = load_models(settings)
    if count == 1:
        return models
    return batch_across_threads(
        models,
        callers=count,
        wait_ms=settings.batch_wait_ms,
        rerank_batch_tokens=settings.rerank_batch_tokens,
    )


def build_workers(
    settings: BotSettings,
    runtime: Runtime,
    client: WebClient,
    models: Models,
    *,
    name: str,
    count: int,
) -> list[Worker]:
    """``count`` workers sharing ``models`` (see :func:`share_models`), one Milvus
    connection and one set of handlers, named ``name``, ``name-2``, ``name-3``...: each
    takes its own job under a consumer name of its own, so every job in flight has its
    own lease and fence token, and while one waits for the chat model or Slack another
    searches.

    Slack calls go through ``client`` without the SDK's retry handlers:
    :class:`~bot.slack_retry.SlackRetry` is the only retry layer (reindex progress, which
    is best-effort, keeps ``client`` as it is)."""
    stores = open_stores(settings)
    record_served_index(runtime.services.index_status, stores)
    pipeline = build_pipeline(settings, models, stores)
    attach_caches(pipeline, settings, runtime)
    bot_user_id = bot_user_of(client)
    services = runtime.services
    answer_client = without_sdk_retries(client)
    poster = ThreadPoster(
        client=answer_client,
        ledger=runtime.ledger,
        retry=SlackRetry(window_s=settings.slack_retry_window_s),
    )
    ask = AskHandler(
        pipeline=pipeline,
        client=answer_client,
        poster=poster,
        threads=services.threads,
        bot_user_id=bot_user_id,
        history_max_messages=settings.history_max_messages,
        metrics=services.metrics,
        answers=services.answers,
        stats=services.stats,
        private=PrivateAnswers(answer_client, poster.retry),
        stream_answers=settings.stream_answers,
        docsets=settings.docsets,
        dm_docsets=settings.dm_docset_names,
    )
    reindex = ReindexHandler(
        indexer=DocSetIndexer(settings, models.embedder, build_locks_of(settings, runtime)),
        stores=stores,
        client=client,
        lock=services.reindex_lock,
        index_status=services.index_status,
    )
    return [
        Worker(
            name=name if number == 1 else f"{name}-{number}",
            queue=services.queue,
            ledger=runtime.ledger,
            ask=ask,
            reindex=reindex,
            poster=poster,
            metrics=services.metrics,
        )
        for number in range(1, count + 1)
    ]


def attach_caches(pipeline: RagPipeline, settings: BotSettings, runtime: Runtime) -> None:
    """Give ``pipeline`` the Redis caches (query embeddings, translations and, unless
    ``RAGBOT_ANSWER_CACHE_TTL_S`` is 0, answers); without Redis it caches nothing."""
    if runtime.redis is None:
        return
    prefix = settings.redis_prefix
    pipeline.query_cache = QueryEmbeddingCache(
        runtime.redis, prefix=prefix, ttl_s=settings.embedding_cache_ttl_s
    )
    runtime.services.metrics.watch_cache("embedding", pipeline.query_cache)
    pipeline.translation_cache = TranslationCache(
        runtime.redis, prefix=prefix, ttl_s=settings.embedding_cache_ttl_s
    )
    if settings.answer_cache_ttl_s > 0:
        pipeline.answer_cache = AnswerCache(
            runtime.redis, prefix=prefix, ttl_s=settings.answer_cache_ttl_s
        )


def bot_user_of(client: WebClient) -> str:
    """The bot's own user id (``auth.test``), which tells its messages from the asker's;
    a refused token is a :class:`ConfigError` at start-up, not a failure per question."""
    try:
        return str(client.auth_test()["user_id"])
    except SlackApiError as error:
        raise ConfigError(
            f"Slack refused SLACK_BOT_TOKEN (auth.test: {slack_error_code(error)})."
        ) from error


def build_locks_of(settings: BotSettings, runtime: Runtime) -> BuildLocks:
    """The doc sets' build locks on the runtime's Redis connection, or files without it."""
    if runtime.redis is not None:
        return RedisBuildLocks(runtime.redis, prefix=settings.redis_prefix)
    return FileBuildLocks(settings.data_dir / "locks")


def start_worker_pool(
    settings: BotSettings, runtime: Runtime, client: WebClient, *, name: str
) -> WorkerPool:
    """``RAGBOT_WORKER_CONCURRENCY`` supervised workers sharing the models, started, with
    the ``workers`` liveness check on ``runtime.health``, and the refresher of doc sets
    with a ``refresh`` interval beside them. Without Redis (the in-memory queue dies with
    the process) :meth:`WorkerPool.drain` first empties the queue; once it has drained,
    the shared models' thread stops."""
    count = settings.worker_concurrency
    models = share_models(settings, count)
    workers = build_workers(settings, runtime, client, models, name=name, count=count)
    services = runtime.services
    refresher = DocSetRefresher(
        settings.docsets,
        queue=services.queue,
        lock=services.reindex_lock,
        schedule=refresh_schedule(runtime.redis, prefix=settings.redis_prefix),
    )
    pool = WorkerPool(
        workers,
        finish_queue=runtime.redis is None,
        companions=[refresher],
        after_drain=[models.close],
    )
    pool.register(runtime.health)
    return pool.start()


def run_worker_process(settings: BotSettings, *, name: str | None, burst: bool) -> int:
    """``ragbot worker``: answer queued questions until SIGTERM/SIGINT, then finish the
    job in hand within ``RAGBOT_DRAIN_GRACE_S`` (else put it back) and exit."""
    if not settings.redis_url:
        raise ConfigError(
            "RAGBOT_REDIS_URL is not set: separate workers share the queue through Redis "
            "(without it, `ragbot serve` answers in-process)."
        )
    runtime = build_runtime(settings)
    client = build_web_client(settings, runtime.services.metrics)
    consumer = name or default_consumer_name()
    with termination_signals() as stop:  # set already while the models load
        if burst:
            build_worker(settings, runtime, client, name=consumer).run(stop=stop, burst=True)
            return 0
        exporter = start_exporter(settings.metrics_port, runtime.services.metrics, runtime.health)
        try:
            pool = start_worker_pool(settings, runtime, client, name=consumer)
            runtime.health.set_ready()
            wait_until_set(stop)
            log.info("stopping: finishing the jobs in hand (up to %.0f s)", settings.drain_grace_s)
            runtime.health.set_draining()
            pool.drain(settings.drain_grace_s)
        finally:
            if exporter is not None:
                exporter.stop()
            runtime.health.close()
    return 0
