"""Question -> query embedding -> Milvus candidates -> rerank -> top-n -> answer.

Plain calls, one method per stage, each stage timed in milliseconds so a slow
answer can be explained from the log line alone.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from rag_core.cache import AnswerCache, QueryEmbeddingCache, TranslationCache
from rag_core.docset_stores import DocSetStores
from rag_core.docsets import DocSet
from rag_core.errors import (
    GenerationError,
    IndexMismatchError,
    IndexNotFoundError,
    InputError,
    RagbotError,
)
from rag_core.generation import ChatGenerator, TextSink
from rag_core.model_revision import model_identity
from rag_core.offline_answers import GeneratedAnswer, extractive_answer, not_covered_answer
from rag_core.query_plan import (
    SearchQuery,
    foreign_weight,
    fusion_of,
    needs_translation,
    plan_query,
)
from rag_core.questions import validate_question
from rag_core.settings import SearchMode, Settings
from rag_core.store import IndexInfo, MilvusStore
from rag_core.types import Answer, AnswerKind, Embedder, Reranker, ScoredChunk, Turn

log = logging.getLogger(__name__)

StageSink = Callable[[str, int], None]
"""Told each stage of an answer as it starts, with how many passages it works on."""


@dataclass(slots=True)
class Retrieval:
    """Candidates as Milvus returned them and the final passages after reranking."""

    question: str
    candidates: list[ScoredChunk]
    passages: list[ScoredChunk]
    reranked: bool
    timings_ms: dict[str, float] = field(default_factory=dict)
    query: SearchQuery | None = None  # what each leg searched with, and how they were fused

    @property
    def best_rerank_score(self) -> float | None:
        scores = [p.rerank_score for p in self.passages if p.rerank_score is not None]
        return max(scores) if scores else None


@dataclass(frozen=True, slots=True)
class Served:
    """A doc set a question searches, its index and what that index is."""

    docset: DocSet
    store: MilvusStore
    info: IndexInfo


def merge_fairly(lists: Sequence[Sequence[ScoredChunk]], limit: int) -> list[ScoredChunk]:
    """Interleave ranked lists by rank (the first of each, then the second of each...)
    up to ``limit``: each doc set gets an equal share of the reranker's reading, whatever
    its size or its scores' scale. One list comes back as it is."""
    merged: list[ScoredChunk] = []
    for rank in range(max((len(found) for found in lists), default=0)):
        merged.extend(found[rank] for found in lists if rank < len(found))
    return merged[:limit]


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = round((time.perf_counter() - start) * 1000, 1)


class RagPipeline:
    """The two-stage retrieval pipeline and the answer step, built once and shared."""

    def __init__(
        self,
        settings: Settings,
        *,
        embedder: Embedder,
        stores: DocSetStores,
        reranker: Reranker | None = None,
        generator: ChatGenerator | None = None,
        query_cache: QueryEmbeddingCache | None = None,
        answer_cache: AnswerCache | None = None,
        translation_cache: TranslationCache | None = None,
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.stores = stores
        self.reranker = reranker
        self.generator = generator
        self.query_cache = query_cache
        self.answer_cache = answer_cache
        self.translation_cache = (
            TranslationCache() if translation_cache is None else translation_cache
        )

    # -- stages -----------------------------------------------------------------

    def embed_query(self, question: str) -> np.ndarray:
        """One L2-normalised query vector, served from the cache when possible (keyed by
        the model's revision too, so another snapshot never gets the old one's vectors)."""
        model = model_identity(self.embedder.model_id, self.embedder.revision)
        key = (model, self.embedder.dim, self.embedder.instruction, question)
        if self.query_cache is not None:
            cached = self.query_cache.get(*key)
            if cached is not None:
                return cached
        vector = self.embedder.embed_queries([question])[0]
        if self.query_cache is not None:
            self.query_cache.put(*key, vector)
        return vector

    def served(self, docsets: Sequence[str] | None = None) -> list[Served]:
        """The doc sets named (all for None) whose index can be searched with this
        embedder. A doc set with nothing indexed, or indexed with another model, is left
        out (and logged) so the others still answer; when none is left, its error is
        raised. What each index is comes from the store's recent check when there is one
        (``RAGBOT_INDEX_CHECK_S``), so a question usually costs Milvus only its search."""
        served: list[Served] = []
        errors: list[RagbotError] = []
        for docset, store in self.stores.select(docsets):
            try:
                info = store.check_compatible(
                    embed_model=self.embedder.model_id,
                    dim=self.embedder.dim,
                    embed_revision=self.embedder.revision,
                    cached=True,
                )
            except (IndexNotFoundError, IndexMismatchError) as error:
                log.warning("doc set %s left out: %s", docset.name, error)
                errors.append(error)
                continue
            served.append(Served(docset, store, info))
        if not served:
            if errors:
                raise errors[0]
            raise InputError(
                "No doc set answers questions here; an admin can add this conversation "
                "to a doc set's channels in the ragbot config."
            )
        return served

    def retrieve(
        self,
        question: str,
        *,
        docsets: Sequence[str] | None = None,
        served: Sequence[Served] | None = None,
        mode: SearchMode | None = None,
        candidates: int | None = None,
        top_n: int | None = None,
        rerank: bool | None = None,
        on_stage: StageSink | None = None,
    ) -> Retrieval:
        """Search the doc sets for candidates, rerank them, keep the best ``top_n``.

        ``docsets`` names the doc sets to search (all for None), or ``served`` gives them
        already checked. Each is searched for ``candidates`` and the lists are merged
        fairly (:func:`merge_fairly`) to ``candidates`` before the reranker
        (``on_stage``: see :meth:`ask`).
        """
        mode = self.settings.search_mode if mode is None else mode
        candidates = self.settings.candidates if candidates is None else candidates
        top_n = self.settings.top_n if top_n is None else top_n
        use_reranker = self.reranker is not None if rerank is None else rerank
        if use_reranker and self.reranker is None:
            raise InputError("Reranking was asked for but no reranker is configured.")
        searched = self.served(docsets) if served is None else served
        timings: dict[str, float] = {}
        query = self.search_query(question, timings)
        vector = None
        if mode != "bm25":
            with _timed(timings, "embed"):
                vector = self.embed_query(query.dense_text)
        with _timed(timings, "search"):
            lists = [
                [
                    dataclasses.replace(hit, docset=each.docset.name)
                    for hit in each.store.search(
                        query_vector=vector,
                        query_text=query.bm25_text,
                        mode=mode,
                        limit=candidates,
                        fusion=query.fusion,
                    )
                ]
                for each in searched
                if mode != "bm25" or query.bm25_text.strip()
            ]
            found = merge_fairly(lists, candidates)
        if not use_reranker or not found:
            return Retrieval(question, found, found[:top_n], False, timings, query)
        assert self.reranker is not None
        if on_stage is not None:
            on_stage("rerank", len(found))
        with _timed(timings, "rerank"):
            scores = self.reranker.score(question, [c.chunk.embed_text for c in found])
        rescored = [
            dataclasses.replace(c, rerank_score=s) for c, s in zip(found, scores, strict=True)
        ]
        rescored.sort(key=lambda c: c.rerank_score or 0.0, reverse=True)
        return Retrieval(question, found, rescored[:top_n], True, timings, query)

    def search_query(self, question: str, timings: dict[str, float] | None = None) -> SearchQuery:
        """How ``question`` is searched (see :mod:`rag_core.query_plan`): with a chat
        model, a question not in the docs' language is translated first (timed as
        ``translate``; cached; a failed translation searches the question as it is)."""
        s = self.settings
        translation = None
        if (
            self.generator is not None
            and s.translate_questions
            and needs_translation(question, s.docs_language)
        ):
            with _timed({} if timings is None else timings, "translate"):
                translation = self._translation(question)
        return plan_query(
            question,
            docs_language=s.docs_language,
            fusion=fusion_of(s),
            foreign_bm25_weight=self.foreign_bm25_weight,
            translation=translation,
        )

    def _translation(self, question: str) -> str | None:
        assert self.generator is not None
        model, language = self.generator.model, self.settings.docs_language
        cached = self.translation_cache.get(model, language, question)
        if cached is not None:
            return cached
        try:
            translated = self.generator.translate_query(question, language)
        except GenerationError as error:
            log.warning("searching the question untranslated: %s", error)
            return None
        self.translation_cache.put(model, language, question, translated)
        return translated

    def standalone_question(self, question: str, history: Sequence[Turn]) -> str:
        """Rewrite a follow-up so it can be searched on its own."""
        if not history:
            return question
        if self.generator is not None:
            return self.generator.condense(question, history)
        previous = [t.text for t in history if t.role == "user"]
        return f"{previous[-1]}\n{question}" if previous else question

    # -- the verb -----------------------------------------------------------------

    def ask(
        self,
        question: str,
        *,
        docsets: Sequence[str] | None = None,
        history: Sequence[Turn] = (),
        on_text: TextSink | None = None,
        on_stage: StageSink | None = None,
    ) -> Answer:
        """Answer a question (with the conversation so far) from the indexed docs of
        ``docsets`` (all doc sets for None).

        ``on_text``: a generated answer is streamed to it as the model writes it
        (cached, extractive and not-covered answers are not: they come whole).
        ``on_stage``: told ``("search", 0)`` before retrieval, ``("rerank", n)`` before
        the reranker reads ``n`` candidates and ``("write", n)`` before the model writes
        from ``n`` passages, so a caller can show what is happening.
        """
        question = validate_question(question, max_chars=self.settings.max_question_chars)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        served = self.served(docsets)
        index_version = "+".join(each.info.version for each in served)
        standalone = question
        if history:
            with _timed(timings, "condense"):
                standalone = self.standalone_question(question, history)
        cached = self._cached_answer(index_version, standalone, history)
        if cached is not None and not all(s.store.still_published(s.info.version) for s in served):
            # Re-indexed by another process since this one last looked: not that answer.
            served = self.served(docsets)
            index_version = "+".join(each.info.version for each in served)
            cached = self._cached_answer(index_version, standalone, history)
        if cached is not None:
            cached.timings_ms = {"cache": round((time.perf_counter() - started) * 1000, 1)}
            log.info("answer cache hit", extra={"index_version": index_version})
            return cached
        if on_stage is not None:
            on_stage("search", 0)
        retrieval = self.retrieve(standalone, served=served, on_stage=on_stage)
        timings.update(retrieval.timings_ms)
        with _timed(timings, "generate"):
            generated, kind = self._answer(
                question, retrieval, history, on_text=on_text, on_stage=on_stage
            )
        timings["total"] = round((time.perf_counter() - started) * 1000, 1)
        answer = Answer(
            question=question,
            text=generated.text,
            kind=kind,
            citations=generated.citations,
            passages=generated.passages or retrieval.passages,
            standalone_question=standalone,
            timings_ms=timings,
            index_version=index_version,
        )
        if self.answer_cache is not None and not history:
            self.answer_cache.put(index_version, standalone, answer, settings_key=self.cache_key)
        log.info("answered", extra={"kind": kind.value, "timings_ms": timings})
        return answer

    @property
    def foreign_bm25_weight(self) -> float:
        """BM25's weight for an untranslated question not in the docs' language."""
        s = self.settings
        return foreign_weight(
            s.foreign_bm25_weight,
            bm25_weight=s.bm25_weight,
            multilingual=self.embedder.multilingual,
        )

    @property
    def cache_key(self) -> str:
        """What besides the question and the index decides an answer."""
        s = self.settings
        reranker = self.reranker.model_id if self.reranker is not None else "none"
        llm = s.llm_model if self.generator is not None else "extractive"
        return "|".join(
            [self.embedder.model_id, str(self.embedder.dim), reranker, llm, s.search_mode]
            + [str(v) for v in (s.candidates, s.top_n, s.min_rerank_score)]
            + [str(v) for v in (s.rrf_k, s.dense_weight, s.bm25_weight, s.fusion_depth)]
            + [str(v) for v in (self.foreign_bm25_weight, s.docs_language, s.translate_questions)]
        )

    def _cached_answer(
        self, index_version: str, standalone: str, history: Sequence[Turn]
    ) -> Answer | None:
        # A follow-up's answer depends on the conversation, not only on the question.
        if self.answer_cache is None or history:
            return None
        return self.answer_cache.get(index_version, standalone, settings_key=self.cache_key)

    def _answer(
        self,
        question: str,
        retrieval: Retrieval,
        history: Sequence[Turn],
        *,
        on_text: TextSink | None = None,
        on_stage: StageSink | None = None,
    ) -> tuple[GeneratedAnswer, AnswerKind]:
        passages = retrieval.passages
        best = retrieval.best_rerank_score
        if not passages or (best is not None and best < self.settings.min_rerank_score):
            return not_covered_answer(question, passages[:3]), AnswerKind.NOT_COVERED
        if self.generator is None:
            return extractive_answer(question, passages), AnswerKind.EXTRACTIVE
        if on_stage is not None:
            on_stage("write", len(passages))
        generated = self.generator.answer(question, passages, history=history, on_text=on_text)
        return generated, AnswerKind.GENERATED
