"""Models shared by a worker's threads, their calls batched across questions.

A worker answers several questions at once so that waiting for the chat model and for
Slack overlaps. The embedder and the reranker cannot simply be called from every thread:
fast tokenizers are not safe to share across threads (a call that sets truncation while
another encodes fails with "Already borrowed"), and one call at a time behind a lock
leaves a GPU mostly idle on small batches. So every call on the shared models runs on
one thread of their own (:class:`ModelThread`): callers' threads submit a request and
wait; the model thread takes the oldest request, gathers whatever else arrives within
``wait_ms`` of it (or at once, when every caller is waiting already) and runs requests of
the same kind as one call: several questions' query embeddings as one ``embed_queries``,
several questions' candidates as one token-budgeted ``score_pairs``. Each caller gets its
own part of the results; an exception reaches the callers of the call that raised it, and
no others.

Token counting stays on the caller's thread: it runs on a private copy of the tokenizer
whose settings never change (:func:`rag_core.embedding.token_counter`).
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rag_core.components import Models
from rag_core.types import Embedder, ProgressCallback, Reranker, RerankResult, ranked_results

log = logging.getLogger(__name__)

DEFAULT_WAIT_MS = 5.0
DEFAULT_CALLERS = 64
PROMPT_TOKENS = 80  # the reranker's system turn, instruction and closing, about
BYTES_PER_TOKEN = 4
CLOSE_TIMEOUT_S = 30.0
DOCUMENT_PIECE_TOKENS = 65_536
"""Tokens of passages per model-thread call while indexing: long enough to fill many
forward passes, short enough (seconds on a CPU) that questions are not held up."""

RunBatch = Callable[[list[Any]], list[Any]]
"""Runs the payloads of several requests as one model call; one result per payload."""


class ModelThreadClosed(RuntimeError):
    """The shared models were closed (the worker is stopping): no more model calls."""


@runtime_checkable
class PairScorer(Protocol):
    """A reranker that scores (query, document) pairs of several queries in one call."""

    def score_pairs(
        self, pairs: Sequence[tuple[str, str]], *, instruction: str | None = None
    ) -> list[float]: ...


@dataclass(slots=True)
class _Request:
    key: Hashable  # requests with equal keys run as one call, by ``run``
    payload: Any
    run: RunBatch
    size: int = 0  # estimated tokens: a call holds requests up to ``budget`` of them
    budget: int = 0  # 0: no limit
    submitted: float = field(default_factory=time.monotonic)
    result: Future[Any] = field(default_factory=Future)


_STOP = object()


class ModelThread:
    """The one thread that runs every call on a set of shared models (module docstring).

    ``wait_ms``: how long the oldest request waits for others to join its call (0: only
    those already waiting join). ``callers``: how many threads can submit at once; when
    that many requests are gathered nobody else can come, so the call starts at once.
    """

    def __init__(
        self,
        *,
        wait_ms: float = DEFAULT_WAIT_MS,
        callers: int = DEFAULT_CALLERS,
        name: str = "shared-models",
    ) -> None:
        if wait_ms < 0 or callers < 1:
            raise ValueError(f"wait_ms must be >= 0 and callers >= 1, got {wait_ms}, {callers}")
        self._wait_s = wait_ms / 1000
        self._callers = callers
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._pending = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def call(
        self, key: Hashable, payload: Any, run: RunBatch, *, size: int = 0, budget: int = 0
    ) -> Any:
        """``payload``'s result, computed on the model thread, perhaps in one call with
        other callers' payloads of the same ``key`` (all run by the same ``run``): as many
        as fit in ``budget`` (0: any number) by their ``size``, one at least.

        Raises:
            ModelThreadClosed: :meth:`close` was called.
            Exception: whatever the model call raised.
        """
        if threading.current_thread() is self._thread:  # a model call from a callback
            return run([payload])[0]
        request = _Request(key, payload, run, size=size, budget=budget)
        with self._lock:
            if self._closed:
                raise ModelThreadClosed("the shared models are closed")
            self._requests.put(request)
            self._pending += 1
        try:
            return request.result.result()
        finally:
            with self._lock:
                self._pending -= 1

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Run the requests already submitted, refuse new ones, and stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._requests.put(_STOP)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def pending(self) -> int:
        """Callers waiting for their results now."""
        with self._lock:
            return self._pending

    def _loop(self) -> None:
        stopping = False
        try:
            while not stopping:
                first = self._requests.get()
                if first is _STOP:
                    break
                gathered, stopping = self._gather(first)
                for group in _calls(gathered):
                    _run_group(group)
        finally:
            self._fail_waiting()

    def _gather(self, first: _Request) -> tuple[list[_Request], bool]:
        """``first`` and the requests arriving within the wait after its submission
        (at most ``callers``); ``True`` when :meth:`close` was called meanwhile."""
        gathered = [first]
        deadline = first.submitted + self._wait_s
        while len(gathered) < self._callers:
            left = deadline - time.monotonic()
            try:
                item = self._requests.get(timeout=left) if left > 0 else self._requests.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return gathered, True
            gathered.append(item)
        return gathered, False

    def _fail_waiting(self) -> None:
        """Whatever is still queued once the loop ends gets an error, never a hang."""
        with self._lock:
            self._closed = True
        while True:
            try:
                item = self._requests.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP:
                item.result.set_exception(ModelThreadClosed("the shared models are closed"))


def _calls(requests: list[_Request]) -> list[list[_Request]]:
    """Requests grouped by key, in the order of their first request, each group cut
    (in arrival order) into calls within the budget: early callers need not wait for
    work that would not share their forward passes anyway."""
    groups: dict[Hashable, list[_Request]] = {}
    for request in requests:
        groups.setdefault(request.key, []).append(request)
    calls: list[list[_Request]] = []
    for group in groups.values():
        call: list[_Request] = []
        filled = 0
        for request in group:
            if call and request.budget and filled + request.size > request.budget:
                calls.append(call)
                call, filled = [], 0
            call.append(request)
            filled += request.size
        calls.append(call)
    return calls


def _run_group(group: list[_Request]) -> None:
    """One model call for ``group``; its results, or its exception, go to each caller."""
    try:
        results = group[0].run([request.payload for request in group])
        if len(results) != len(group):
            raise RuntimeError(f"a batched model call gave {len(results)} results for {len(group)}")
    except BaseException as error:  # its callers hear of it, whatever it is
        log.debug("batched model call failed for %d callers: %r", len(group), error)
        for request in group:
            request.result.set_exception(error)
        if not isinstance(error, Exception):
            raise
        return
    for request, result in zip(group, results, strict=True):
        request.result.set_result(result)


def _length_sorted_pieces(lengths: Sequence[int], piece_tokens: int) -> list[list[int]]:
    """Indices sorted by length, cut into runs of about ``piece_tokens`` tokens each."""
    pieces: list[list[int]] = []
    current: list[int] = []
    total = 0
    for index in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        current.append(index)
        total += max(lengths[index], 1)
        if total >= piece_tokens:
            pieces.append(current)
            current, total = [], 0
    if current:
        pieces.append(current)
    return pieces


def _spans(counts: Sequence[int]) -> list[slice]:
    """Consecutive slices of ``counts`` items each: how one call's results split back."""
    ends = list(itertools.accumulate(counts))
    return [slice(end - count, end) for count, end in zip(counts, ends, strict=True)]


class BatchingEmbedder:
    """An :class:`~rag_core.types.Embedder` whose calls run on a :class:`ModelThread`.

    Query embeddings submitted together are one ``embed_queries`` call; a documents call
    (indexing) runs alone, with its progress callback on the model thread.
    """

    def __init__(self, inner: Embedder, thread: ModelThread, *, piece_tokens: int = 0) -> None:
        self._inner = inner
        self._thread = thread
        self._queries_key = ("queries", id(self))
        self._piece_tokens = piece_tokens or DOCUMENT_PIECE_TOKENS

    @property
    def model_id(self) -> str:
        return self._inner.model_id

    @property
    def revision(self) -> str:
        return self._inner.revision

    @property
    def dim(self) -> int:
        return self._inner.dim

    @property
    def instruction(self) -> str:
        return self._inner.instruction

    @property
    def max_tokens(self) -> int:
        return self._inner.max_tokens

    @property
    def multilingual(self) -> bool:
        return self._inner.multilingual

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return self._inner.embed_queries([])
        result: np.ndarray = self._thread.call(self._queries_key, list(texts), self._run_queries)
        return result

    def embed_documents(
        self, texts: Sequence[str], *, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        """Embed passages in pieces of about ``piece_tokens`` tokens
        (:data:`DOCUMENT_PIECE_TOKENS` by default), each a
        call of its own, so questions' embeddings and reranks run between them instead of
        waiting for a whole re-index. The texts are sorted by length first and each piece
        is a run of neighbours, so the pieces pad as little as one call would."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        lengths = [self._inner.count_tokens(text) for text in texts]
        for piece in _length_sorted_pieces(lengths, self._piece_tokens):
            chosen = [texts[i] for i in piece]

            def run(payloads: list[Any]) -> list[np.ndarray]:
                return [self._inner.embed_documents(payloads[0], progress=progress)]

            out[piece] = self._thread.call(("documents", object()), chosen, run)
        return out

    def count_tokens(self, text: str) -> int:
        return self._inner.count_tokens(text)

    def _run_queries(self, payloads: list[list[str]]) -> list[np.ndarray]:
        rows = self._inner.embed_queries([text for texts in payloads for text in texts])
        return [rows[span].copy() for span in _spans([len(texts) for texts in payloads])]


class BatchingReranker:
    """A :class:`~rag_core.types.Reranker` whose calls run on a :class:`ModelThread`.

    Questions scored together with the same instruction are one ``score_pairs`` call of
    the inner reranker, whose token budget bounds every forward pass; a reranker without
    ``score_pairs`` scores them one question after another, still on the model thread.
    One call holds as many questions as fill ``batch_tokens`` (by an estimate of their
    prompts' length; 0: no limit): more would not share forward passes with the first,
    only delay its answer.
    """

    def __init__(self, inner: Reranker, thread: ModelThread, *, batch_tokens: int = 0) -> None:
        self._inner = inner
        self._thread = thread
        self._batch_tokens = batch_tokens

    @property
    def model_id(self) -> str:
        return self._inner.model_id

    def score(
        self, query: str, documents: Sequence[str], *, instruction: str | None = None
    ) -> list[float]:
        if not documents:
            return []
        together = isinstance(self._inner, PairScorer)
        key = ("rerank", id(self), instruction) if together else ("rerank", object())

        def run(payloads: list[tuple[str, list[str]]]) -> list[list[float]]:
            return self._score_together(payloads, instruction)

        size = estimated_prompt_tokens(query, documents)
        payload = (query, list(documents))
        scores: list[float] = self._thread.call(
            key, payload, run, size=size, budget=self._batch_tokens
        )
        return scores

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_k: int | None = None,
        instruction: str | None = None,
    ) -> list[RerankResult]:
        """Documents with their scores, best first; at most ``top_k`` when given."""
        return ranked_results(
            documents, self.score(query, documents, instruction=instruction), top_k
        )

    def _score_together(
        self, payloads: list[tuple[str, list[str]]], instruction: str | None
    ) -> list[list[float]]:
        if len(payloads) > 1 and isinstance(self._inner, PairScorer):
            pairs = [(query, doc) for query, docs in payloads for doc in docs]
            scores = self._inner.score_pairs(pairs, instruction=instruction)
            return [list(scores[span]) for span in _spans([len(docs) for _, docs in payloads])]
        [(query, documents)] = payloads  # alone: keyed apart, or the only one
        return [self._inner.score(query, documents, instruction=instruction)]


def estimated_prompt_tokens(query: str, documents: Sequence[str]) -> int:
    """About how many tokens the reranker's prompts for ``documents`` take: UTF-8 bytes
    over four (near the mark for BPE vocabularies in English and in CJK scripts alike) plus
    the fixed prompt, with no tokenizer needed on the caller's thread."""
    query_bytes = len(query.encode("utf-8"))
    return sum(
        PROMPT_TOKENS + (query_bytes + len(doc.encode("utf-8"))) // BYTES_PER_TOKEN
        for doc in documents
    )


def batch_across_threads(
    models: Models,
    *,
    callers: int,
    wait_ms: float = DEFAULT_WAIT_MS,
    rerank_batch_tokens: int = 0,
) -> Models:
    """``models`` for ``callers`` threads at once: both models' calls run on one new
    :class:`ModelThread` (closed by :meth:`Models.close`), batched across the callers, a
    reranking call holding about ``rerank_batch_tokens`` (0: no limit)."""
    thread = ModelThread(wait_ms=wait_ms, callers=callers)
    reranker = None
    if models.reranker is not None:
        reranker = BatchingReranker(models.reranker, thread, batch_tokens=rerank_batch_tokens)
    return replace(
        models, embedder=BatchingEmbedder(models.embedder, thread), reranker=reranker, runner=thread
    )
