"""Models shared by a worker's threads: calls from several questions run on one model
thread as one batch, give what one question at a time gives, keep failures to the callers
of the failing call, and stop cleanly."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from rag_core.components import Models
from rag_core.model_batching import (
    BatchingEmbedder,
    BatchingReranker,
    ModelThread,
    ModelThreadClosed,
    batch_across_threads,
    estimated_prompt_tokens,
)
from rag_core.reranking import Qwen3Reranker
from tests.fixtures.worker_parts import wait_until

QUESTIONS = [
    "How do I install Milvus Lite?",
    "What is a partition key?",
    "nlist と nprobe の違いは?",
    "如何在 MinIO 中存储数据?",
    "Can I run a hybrid search with BM25 and dense vectors together in one request?",
    "Upgrade a Helm release",
]
DOCUMENTS = [
    "Milvus Lite is installed with pip install pymilvus.",
    "A partition key routes entities to partitions by the value of one field.",
    "nlist is the number of clusters; nprobe is how many of them a search visits.",
    "Milvus stores its data in MinIO or another S3-compatible object store.",
    "Hybrid search fuses the results of several ANN searches with a ranker such as RRF.",
    "helm upgrade my-release milvus/milvus keeps the data of the old release.",
    "Short.",
]


class Recording:
    """Delegates to a real model and records the size of every call it gets."""

    def __init__(self, inner: Any, fail_on: str = "") -> None:
        self._inner = inner
        self._fail_on = fail_on
        self.calls: list[tuple[str, int]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _check(self, verb: str, texts: Sequence[str]) -> None:
        self.calls.append((verb, len(texts)))
        if self._fail_on and any(self._fail_on in text for text in texts):
            raise ValueError(f"cannot {verb} {self._fail_on!r}")

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        self._check("embed_queries", texts)
        return self._inner.embed_queries(texts)

    def embed_documents(self, texts: Sequence[str], *, progress=None) -> np.ndarray:
        self._check("embed_documents", texts)
        return self._inner.embed_documents(texts, progress=progress)


class RecordingReranker(Recording):
    def __init__(self, inner: Any, fail_on: str = "") -> None:
        super().__init__(inner, fail_on)
        self.queries: list[list[str]] = []

    def score(self, query: str, documents: Sequence[str], *, instruction=None) -> list[float]:
        self._check("score", documents)
        return self._inner.score(query, documents, instruction=instruction)

    def score_pairs(self, pairs: Sequence[tuple[str, str]], *, instruction=None) -> list[float]:
        self._check("score_pairs", [query for query, _ in pairs])
        self.queries.append([query for query, _ in pairs])
        return self._inner.score_pairs(pairs, instruction=instruction)


class ScoreOnly:
    """A reranker without ``score_pairs``: questions are scored one after another."""

    def __init__(self, inner: Any, fail_on: str) -> None:
        self._inner, self._fail_on, self.model_id = inner, fail_on, inner.model_id

    def score(self, query: str, documents: Sequence[str], *, instruction=None) -> list[float]:
        if self._fail_on in query:
            raise ValueError(f"cannot score {self._fail_on!r}")
        return self._inner.score(query, documents, instruction=instruction)


def at_once(calls: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run each call on its own thread, released together; results (or the exception
    raised) in order."""
    results: list[Any] = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(index: int) -> None:
        start.wait()
        try:
            results[index] = calls[index]()
        except Exception as error:
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def candidates(number: int) -> list[str]:
    """Between 2 and 7 documents, different for each question."""
    count = 2 + number % 6
    return [DOCUMENTS[(number + i) % len(DOCUMENTS)] for i in range(count)]


@pytest.fixture
def runner():
    thread = ModelThread(wait_ms=2000, callers=len(QUESTIONS))
    yield thread
    thread.close()


def test_query_embeddings_asked_together_are_one_call_equal_to_one_at_a_time(tiny_embedder, runner):
    inner = Recording(tiny_embedder)
    embedder = BatchingEmbedder(inner, runner)
    texts = [[q] if i % 2 else [q, q.upper()] for i, q in enumerate(QUESTIONS)]

    together = at_once([lambda t=t: embedder.embed_queries(t) for t in texts])

    assert inner.calls == [("embed_queries", sum(len(t) for t in texts))]
    for rows, asked in zip(together, texts, strict=True):
        alone = tiny_embedder.embed_queries(asked)
        assert rows.shape == alone.shape == (len(asked), tiny_embedder.dim)
        np.testing.assert_allclose(rows, alone, atol=1e-5)


def test_questions_reranked_together_are_one_call_equal_to_one_at_a_time(tiny_reranker, runner):
    inner = RecordingReranker(tiny_reranker)
    reranker = BatchingReranker(inner, runner)

    together = at_once(
        [lambda i=i, q=q: reranker.score(q, candidates(i)) for i, q in enumerate(QUESTIONS)]
    )

    assert inner.calls == [("score_pairs", sum(len(candidates(i)) for i in range(6)))]
    for number, (scores, question) in enumerate(zip(together, QUESTIONS, strict=True)):
        alone = tiny_reranker.score(question, candidates(number))
        np.testing.assert_allclose(scores, alone, atol=1e-5)
    ranked = reranker.rerank(QUESTIONS[0], candidates(0), top_k=1)
    assert ranked[0].score == max(tiny_reranker.score(QUESTIONS[0], candidates(0)))


def test_a_call_holds_as_many_questions_as_fill_the_token_budget(tiny_reranker, runner):
    sizes = [estimated_prompt_tokens(q, candidates(i)) for i, q in enumerate(QUESTIONS)]
    budget = 2 * max(sizes)
    inner = RecordingReranker(tiny_reranker)
    reranker = BatchingReranker(inner, runner, batch_tokens=budget)

    together = at_once(
        [lambda i=i, q=q: reranker.score(q, candidates(i)) for i, q in enumerate(QUESTIONS)]
    )

    assert 1 < len(inner.calls) < len(QUESTIONS)
    assert sum(pairs for _, pairs in inner.calls) == sum(len(candidates(i)) for i in range(6))
    assert all(
        sum(estimated_prompt_tokens(q, candidates(QUESTIONS.index(q))) for q in set(queries))
        <= budget
        for queries in inner.queries
    )
    for number, (scores, question) in enumerate(zip(together, QUESTIONS, strict=True)):
        alone = tiny_reranker.score(question, candidates(number))
        np.testing.assert_allclose(scores, alone, atol=1e-5)


def test_the_estimate_of_prompt_tokens_grows_with_the_text():
    short = estimated_prompt_tokens("q", ["d"])
    assert estimated_prompt_tokens("q", ["d", "d"]) == 2 * short
    assert estimated_prompt_tokens("q", ["d" * 400]) == short + 100
    assert estimated_prompt_tokens("如何", ["d"]) > short  # 3 bytes a character


class BudgetRecorder(Qwen3Reranker):
    """The real reranker, recording the padded size of every forward pass."""

    passes: list[tuple[int, int]]

    def _score_batch(self, rows, opening):  # type: ignore[no-untyped-def]
        self.passes.append((len(rows), max(len(row) for row in rows)))
        return super()._score_batch(rows, opening)


def test_several_questions_share_forward_passes_within_the_token_budget(tiny_reranker_path):
    budget = 1024
    reranker = BudgetRecorder(str(tiny_reranker_path), device="cpu", dtype="float32")
    reranker._batch_tokens = budget  # below the setting's minimum
    pairs = [(q, doc) for i, q in enumerate(QUESTIONS) for doc in candidates(i)]
    reranker.passes = []

    scores = reranker.score_pairs(pairs)

    assert sum(count for count, _ in reranker.passes) == len(pairs)
    assert all(count * longest <= budget or count == 1 for count, longest in reranker.passes)
    assert len(reranker.passes) < len(QUESTIONS), "questions share forward passes"
    start = 0
    for number, question in enumerate(QUESTIONS):
        alone = reranker.score(question, candidates(number))
        np.testing.assert_allclose(scores[start : start + len(alone)], alone, atol=1e-5)
        start += len(alone)
    assert reranker.score_pairs([]) == []


def test_a_failing_call_fails_its_own_callers_only(tiny_embedder, tiny_reranker, runner):
    embedder = BatchingEmbedder(Recording(tiny_embedder), runner)
    reranker = BatchingReranker(ScoreOnly(tiny_reranker, fail_on="boom"), runner)
    calls = [
        lambda: reranker.score("boom: the reranker fails on this one", DOCUMENTS[:2]),
        lambda: reranker.score(QUESTIONS[0], DOCUMENTS[:3]),
        lambda: embedder.embed_queries([QUESTIONS[1]]),
        lambda: embedder.embed_queries([QUESTIONS[2]]),
        lambda: reranker.score(QUESTIONS[3], DOCUMENTS[:1]),
        lambda: embedder.embed_queries([QUESTIONS[4]]),
    ]

    failed, *fine = at_once(calls)

    assert isinstance(failed, ValueError) and "boom" in str(failed)
    np.testing.assert_allclose(fine[0], tiny_reranker.score(QUESTIONS[0], DOCUMENTS[:3]), 1e-5)
    np.testing.assert_allclose(fine[1], tiny_embedder.embed_queries([QUESTIONS[1]]), atol=1e-5)
    assert len(fine[3]) == 1 and fine[2].shape == (1, tiny_embedder.dim)


def test_a_failing_batch_reaches_every_caller_in_it_and_the_next_call_works(tiny_embedder, runner):
    inner = Recording(tiny_embedder, fail_on="boom")
    embedder = BatchingEmbedder(inner, runner)
    texts = [["boom"], *([q] for q in QUESTIONS[1:])]

    results = at_once([lambda t=t: embedder.embed_queries(t) for t in texts])

    assert all(isinstance(r, ValueError) for r in results), "one call: all its callers fail"
    assert embedder.embed_queries([QUESTIONS[0]]).shape == (1, tiny_embedder.dim)


def test_indexing_runs_alone_and_its_progress_may_call_the_models(tiny_embedder):
    models = batch_across_threads(Models(Recording(tiny_embedder), None), callers=2, wait_ms=1)
    seen: list[int] = []

    def progress(done: int) -> None:  # on the model thread: must not wait for itself
        seen.append(done)
        models.embedder.embed_queries(["from the progress callback"])

    try:
        rows = models.embedder.embed_documents(DOCUMENTS, progress=progress)
        np.testing.assert_allclose(rows, tiny_embedder.embed_documents(DOCUMENTS), atol=1e-5)
        assert sum(seen) == len(DOCUMENTS)
        assert models.embedder.count_tokens("a b c") == tiny_embedder.count_tokens("a b c")
        assert (models.embedder.model_id, models.embedder.dim) == (
            tiny_embedder.model_id,
            tiny_embedder.dim,
        )
        assert models.reranker is None
    finally:
        models.close()


def test_questions_are_embedded_between_the_pieces_of_an_indexing_call(tiny_embedder):
    inner = Recording(tiny_embedder)
    thread = ModelThread(wait_ms=1, callers=2)
    embedder = BatchingEmbedder(inner, thread, piece_tokens=1)  # one text per piece
    asked: list[threading.Thread] = []

    def progress(done: int) -> None:  # on the model thread, after the first piece
        if not asked:
            asked.append(threading.Thread(target=embedder.embed_queries, args=[["q?"]]))
            asked[0].start()
            wait_until(lambda: thread.pending == 2)  # this piece's caller and the question

    try:
        rows = embedder.embed_documents(DOCUMENTS, progress=progress)
        asked[0].join(10)
    finally:
        thread.close()
    np.testing.assert_allclose(rows, tiny_embedder.embed_documents(DOCUMENTS), atol=1e-5)
    verbs = [verb for verb, _ in inner.calls]
    assert verbs.count("embed_documents") == len(DOCUMENTS)
    assert verbs.index("embed_queries") == 1, "the question did not wait for the whole index"


def test_close_finishes_what_was_asked_then_refuses(tiny_embedder):
    thread = ModelThread(wait_ms=60_000, callers=8)
    models = Models(BatchingEmbedder(tiny_embedder, thread), None, runner=thread)
    results: list[np.ndarray] = []
    asked = threading.Thread(
        target=lambda: results.append(models.embedder.embed_queries(["asked before close"]))
    )
    asked.start()
    wait_until(lambda: thread.pending == 1)  # waiting for company, up to a minute

    started = time.monotonic()
    models.close()
    asked.join(10)

    assert len(results) == 1 and results[0].shape == (1, tiny_embedder.dim)
    assert time.monotonic() - started < 10, "close does not wait out the batching window"
    assert not thread.running and thread.pending == 0
    with pytest.raises(ModelThreadClosed):
        models.embedder.embed_queries(["asked after close"])
    models.close()  # twice is fine


def test_no_wait_still_batches_what_is_already_waiting(tiny_embedder):
    thread = ModelThread(wait_ms=0, callers=4)
    embedder = BatchingEmbedder(tiny_embedder, thread)
    try:
        results = at_once([lambda q=q: embedder.embed_queries([q]) for q in QUESTIONS[:4]])
        for rows, question in zip(results, QUESTIONS, strict=False):
            np.testing.assert_allclose(rows, tiny_embedder.embed_queries([question]), atol=1e-5)
        assert embedder.embed_queries([]).shape == (0, tiny_embedder.dim)
    finally:
        thread.close()
    with pytest.raises(ValueError):
        ModelThread(wait_ms=-1)
