"""Models shared by several threads, used one call at a time.

A worker process answers several questions at once so that waiting for the chat model
and for Slack overlaps; the embedder and the reranker are compute-bound (one call
already uses every core or the GPU) and their tokenizers are not safe to call from two
threads at once. :func:`one_call_at_a_time` wraps both behind one lock: a question's
inference waits for another's to finish, everything else runs in parallel. Token
counting is left unlocked: it runs on a private copy of the tokenizer.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from rag_core.components import Models
from rag_core.types import Embedder, ProgressCallback, Reranker, RerankResult


def one_call_at_a_time(models: Models) -> Models:
    """``models`` whose embedder and reranker calls take turns on one lock."""
    lock = threading.Lock()
    reranker = None if models.reranker is None else LockedReranker(models.reranker, lock)
    return replace(models, embedder=LockedEmbedder(models.embedder, lock), reranker=reranker)


class LockedEmbedder:
    """An :class:`~rag_core.types.Embedder` whose embedding calls hold ``lock``."""

    def __init__(self, inner: Embedder, lock: threading.Lock) -> None:
        self._inner = inner
        self._lock = lock

    @property
    def model_id(self) -> str:
        return self._inner.model_id

    @property
    def dim(self) -> int:
        return self._inner.dim

    @property
    def instruction(self) -> str:
        return self._inner.instruction

    @property
    def max_tokens(self) -> int:
        return self._inner.max_tokens

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            return self._inner.embed_queries(texts)

    def embed_documents(
        self, texts: Sequence[str], *, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        with self._lock:
            return self._inner.embed_documents(texts, progress=progress)

    def count_tokens(self, text: str) -> int:
        return self._inner.count_tokens(text)


class LockedReranker:
    """A :class:`~rag_core.types.Reranker` whose scoring calls hold ``lock``."""

    def __init__(self, inner: Reranker, lock: threading.Lock) -> None:
        self._inner = inner
        self._lock = lock

    @property
    def model_id(self) -> str:
        return self._inner.model_id

    def score(
        self, query: str, documents: Sequence[str], *, instruction: str | None = None
    ) -> list[float]:
        with self._lock:
            return self._inner.score(query, documents, instruction=instruction)

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_k: int | None = None,
        instruction: str | None = None,
    ) -> list[RerankResult]:
        with self._lock:
            return self._inner.rerank(query, documents, top_k=top_k, instruction=instruction)
