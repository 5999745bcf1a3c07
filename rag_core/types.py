"""Plain data carried between the stages of the pipeline, and the model seams."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

import numpy as np


@dataclass(frozen=True, slots=True)
class Document:
    """One source file, read and decoded. ``path`` is POSIX, relative to the indexed root."""

    path: str
    title: str
    text: str
    format: str  # "markdown", "text", "rst" or "html"
    doc_id: str = ""
    slug: str = ""  # the front matter's ``slug`` (a page URL the site sets); "" when none


@dataclass(frozen=True, slots=True)
class Chunk:
    """A retrievable piece of a document, with everything needed to cite it."""

    doc_path: str
    title: str
    heading_path: tuple[str, ...]
    anchor: str
    url: str
    chunk_index: int
    text: str

    @property
    def id(self) -> str:
        """Stable primary key: the document path's digest and the chunk number."""
        digest = hashlib.sha1(self.doc_path.encode("utf-8")).hexdigest()[:20]
        return f"{digest}-{self.chunk_index:05d}"

    @property
    def heading(self) -> str:
        return " > ".join(self.heading_path)

    @property
    def embed_text(self) -> str:
        """What is embedded and searched: the title and heading path make it stand alone."""
        context = " > ".join([self.title, *self.heading_path]) if self.title else self.heading
        return f"{context}\n\n{self.text}" if context else self.text

    @property
    def content_hash(self) -> str:
        """Digest of the embedded text; an unchanged hash means the stored vector is reusable."""
        return hashlib.sha256(self.embed_text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ScoredChunk:
    chunk: Chunk
    score: float  # retrieval score (RRF, inner product or BM25 depending on the mode)
    rerank_score: float | None = None
    docset: str = ""  # the doc set it was found in


@dataclass(frozen=True, slots=True)
class Citation:
    number: int
    title: str
    url: str
    path: str
    heading: str
    docset: str = ""  # the doc set of the source


class AnswerKind(StrEnum):
    GENERATED = "generated"  # written by the LLM from the retrieved passages
    EXTRACTIVE = "extractive"  # no LLM configured: the best passages, quoted
    NOT_COVERED = "not_covered"  # the docs do not answer it; the LLM was not called


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of a conversation, oldest first when in a list."""

    role: str  # "user" or "assistant"
    text: str


@dataclass(slots=True)
class Answer:
    question: str
    text: str
    kind: AnswerKind
    citations: list[Citation] = field(default_factory=list)
    passages: list[ScoredChunk] = field(default_factory=list)
    standalone_question: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)
    index_version: str = ""
    cached: bool = False


@dataclass(frozen=True, slots=True)
class RerankResult:
    index: int  # position in the caller's list
    score: float  # probability of "yes", in [0, 1]
    document: str


def ranked_results(
    documents: Sequence[str], scores: Sequence[float], top_k: int | None = None
) -> list[RerankResult]:
    """``documents`` with their ``scores``, best first (ties in input order); at most
    ``top_k`` when given."""
    ranked = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    if top_k is not None:
        ranked = ranked[: max(top_k, 0)]
    return [RerankResult(index=i, score=scores[i], document=documents[i]) for i in ranked]


ProgressCallback = Callable[[int], None]
"""Called with the number of items just finished, for progress bars."""


class Embedder(Protocol):
    """Turns text into L2-normalised float32 rows."""

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    @property
    def revision(self) -> str:
        """Which files of ``model_id`` are loaded: the hub snapshot's commit hash, or
        ``sha256:...`` of a local folder's files (:mod:`rag_core.model_revision`); ""
        when unknown. Vectors of two revisions do not mix in one index."""
        ...

    @property
    def instruction(self) -> str: ...

    @property
    def max_tokens(self) -> int:
        """Longest input in tokens; longer text is truncated before embedding."""
        ...

    @property
    def multilingual(self) -> bool:
        """Whether the model was trained on many languages, so that a question in one
        lands near passages in another (Qwen3-Embedding); False when unknown."""
        ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_documents(
        self, texts: Sequence[str], *, progress: ProgressCallback | None = None
    ) -> np.ndarray: ...

    def count_tokens(self, text: str) -> int: ...


class Reranker(Protocol):
    """Scores how well each document answers a query, as a probability."""

    @property
    def model_id(self) -> str: ...

    def score(
        self, query: str, documents: Sequence[str], *, instruction: str | None = None
    ) -> list[float]: ...

    def rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_k: int | None = None,
        instruction: str | None = None,
    ) -> list[RerankResult]: ...
