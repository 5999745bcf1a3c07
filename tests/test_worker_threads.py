"""A worker process answers several questions at once: while one waits for the chat
model another searches, with the models shared (batched across questions, or one call at
a time behind a lock)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np

from bot.app import build_web_client
from bot.jobs import AskJob, new_job_id
from bot.runtime import build_runtime
from bot.worker_setup import start_worker_pool
from rag_core.components import Models
from rag_core.model_batching import batch_across_threads
from tests.fixtures.bot_stack import bot_settings
from tests.fixtures.slack_events import wait_quiet


def test_one_worker_process_answers_questions_side_by_side(
    bot_index, slack_api, openai_server, redis_prefix, redis_client
):
    settings = bot_settings({**bot_index, "RAGBOT_REDIS_PREFIX": redis_prefix})
    settings = settings.model_copy(update={"worker_concurrency": 4})
    runtime = build_runtime(settings)
    client = build_web_client(settings, runtime.services.metrics)
    pool = start_worker_pool(settings, runtime, client, name="tw")
    openai_server.delay(4.0, times=4)
    threads = [f"1700000{n}.000100" for n in range(4)]
    try:
        assert [w.name for w in pool.workers] == ["tw", "tw-2", "tw-3", "tw-4"]
        for number, ts in enumerate(threads):
            slack_api.seed_message("C7", ts, f"question {number}", user=f"U{number}")
            job = AskJob(
                new_job_id(), "C7", ts, ts, f"U{number}", f"How do I install it, {number}?"
            )
            runtime.services.queue.enqueue(job)

        # All four reach the chat model while the first is still being answered (4 s).
        deadline = time.monotonic() + 3.5
        while len(openai_server.requests) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(openai_server.requests) == 4

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            replies = [[m for m in slack_api.thread("C7", ts) if m.get("bot_id")] for ts in threads]
            if all(replies):
                break
            time.sleep(0.05)
        wait_quiet(slack_api)
        replies = [[m for m in slack_api.thread("C7", ts) if m.get("bot_id")] for ts in threads]
        assert [len(r) for r in replies] == [1, 1, 1, 1]
        assert all(f"install it, {n}" in r[0]["text"] for n, r in enumerate(replies))
    finally:
        assert pool.drain(10.0)
        runtime.health.close()


class _Embedder:
    """Records how many calls run at once."""

    model_id, dim, instruction, max_tokens, multilingual = "probe", 4, "", 32, False

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self._count = threading.Lock()

    def _call(self, count: int) -> np.ndarray:
        with self._count:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.02)
        with self._count:
            self.running -= 1
        return np.zeros((count, self.dim), dtype=np.float32)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._call(len(texts))

    def embed_documents(self, texts: Sequence[str], *, progress=None) -> np.ndarray:
        return self._call(len(texts))

    def count_tokens(self, text: str) -> int:
        return len(text.split())


def test_shared_models_run_one_call_at_a_time():
    inner = _Embedder()
    models = batch_across_threads(Models(embedder=inner, reranker=None), callers=6, wait_ms=1)

    def use() -> None:
        for _ in range(5):
            models.embedder.embed_queries(["q"])
            models.embedder.embed_documents(["d", "e"])

    workers = [threading.Thread(target=use) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    models.close()
    assert inner.most == 1
    assert (models.embedder.model_id, models.embedder.dim) == ("probe", 4)
    assert models.embedder.count_tokens("a b c") == 3
