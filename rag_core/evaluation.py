"""Document-level retrieval metrics over a JSONL file of questions, per mode.

Each line holds ``question`` and ``relevant`` (document paths relative to the indexed
root), and optionally ``id``, ``docset`` (the doc set the relevant documents belong to)
and ``answer_hint``. A question with an empty ``relevant`` list is unanswerable from the
docs: it measures whether the pipeline says so, which needs reranker scores.

:func:`evaluate` keeps what every mode found for every question (an :class:`EvalRun`);
:mod:`rag_core.eval_summary` turns that into the report's splits, abstain figures and
misses, so the terminal, ``--json`` and the HTML page all show the same numbers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rag_core.errors import InputError
from rag_core.eval_summary import METRIC_DEPTH, build_report
from rag_core.languages import language_group
from rag_core.pipeline import RagPipeline, Retrieval

Found = tuple[str, str]
"""A document a search returned: (doc set, path)."""


@dataclass(frozen=True, slots=True)
class EvalQuestion:
    question: str
    relevant: frozenset[str]
    id: str = ""
    docset: str | None = None  # the doc set of the relevant documents, when the row names one
    answer_hint: str = ""

    @property
    def answerable(self) -> bool:
        return bool(self.relevant)

    @property
    def language(self) -> str:
        return language_group(self.question)


@dataclass(frozen=True, slots=True)
class EvalMode:
    name: str  # "dense", "bm25", "hybrid", "hybrid+rerank"
    search: str
    rerank: bool


@dataclass(frozen=True, slots=True)
class QuestionResult:
    """What one mode did with one question. The metrics are None for an unanswerable
    question; ``abstained`` is None for a mode without a reranker (it has no score to
    decide with, so the pipeline answers whenever it finds passages)."""

    found: tuple[Found, ...]
    hits: tuple[str, ...]  # the relevant documents among the first k found
    recall: float | None
    reciprocal_rank: float | None
    ndcg: float | None
    abstained: bool | None
    best_rerank_score: float | None
    searched: str = ""  # how a question not in the docs' language was searched (SearchQuery)


@dataclass(slots=True)
class EvalRun:
    """Every question and, per mode, its results in the same order."""

    questions: list[EvalQuestion]
    modes: list[EvalMode]
    k: int
    docsets: tuple[str, ...]
    min_rerank_score: float
    results: dict[str, list[QuestionResult]] = field(default_factory=dict)
    setup: dict[str, object] = field(default_factory=dict)


def load_questions(path: Path) -> list[EvalQuestion]:
    """Read the questions file; a missing or malformed file is an :class:`InputError`."""
    if not path.is_file():
        raise InputError(f"No such questions file: {path}")
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            questions.append(_question(json.loads(line), number))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise InputError(
                f"{path}:{number}: expected a JSON object with 'question' and 'relevant' ({error})"
            ) from error
    if not questions:
        raise InputError(f"{path} holds no questions.")
    return questions


def _question(row: dict[str, object], number: int) -> EvalQuestion:
    relevant = row["relevant"]
    if isinstance(relevant, str) or not isinstance(relevant, list):
        raise TypeError("'relevant' must be a list of paths")
    docset = row.get("docset")
    return EvalQuestion(
        question=str(row["question"]),
        relevant=frozenset(str(path) for path in relevant),
        id=str(row.get("id") or f"line{number}"),
        docset=None if docset is None else str(docset),
        answer_hint=str(row.get("answer_hint") or ""),
    )


def ranked_documents(retrieval: Retrieval) -> list[Found]:
    """Documents in rank order, each once (a document may own several chunks)."""
    seen: dict[Found, None] = {}
    for passage in retrieval.passages:
        seen.setdefault((passage.docset, passage.chunk.doc_path), None)
    return list(seen)


def recall_at(ranked: Sequence[str], relevant: frozenset[str], k: int) -> float:
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def reciprocal_rank(ranked: Sequence[str], relevant: frozenset[str], depth: int) -> float:
    for rank, doc in enumerate(ranked[:depth], start=1):
        if doc in relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at(ranked: Sequence[str], relevant: frozenset[str], depth: int) -> float:
    gains = sum(
        1.0 / math.log2(rank + 1)
        for rank, doc in enumerate(ranked[:depth], start=1)
        if doc in relevant
    )
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(relevant), depth) + 1))
    return gains / ideal


def matching_paths(question: EvalQuestion, found: Sequence[Found]) -> list[str]:
    """The found documents as paths, in rank order; one from another doc set than the
    question names gets a path no ``relevant`` entry can equal."""
    return [
        path if question.docset in (None, docset) else f"{docset}:{path}" for docset, path in found
    ]


def default_modes(*, with_reranker: bool) -> list[EvalMode]:
    modes = [
        EvalMode("dense", "dense", False),
        EvalMode("bm25", "bm25", False),
        EvalMode("hybrid", "hybrid", False),
    ]
    if with_reranker:
        modes.append(EvalMode("hybrid+rerank", "hybrid", True))
    return modes


def evaluate(
    pipeline: RagPipeline,
    questions: Sequence[EvalQuestion],
    *,
    k: int = 5,
    modes: Sequence[EvalMode] | None = None,
    progress: Callable[[int], None] | None = None,
    docsets: Sequence[str] | None = None,
) -> EvalRun:
    """Run every mode on every question, searching ``docsets`` (all for None)."""
    modes = default_modes(with_reranker=pipeline.reranker is not None) if modes is None else modes
    depth = max(k, METRIC_DEPTH)
    served = pipeline.served(docsets)
    run = EvalRun(
        questions=list(questions),
        modes=list(modes),
        k=k,
        docsets=tuple(each.docset.name for each in served),
        min_rerank_score=pipeline.settings.min_rerank_score,
        results={mode.name: [] for mode in modes},
        setup=_setup(pipeline),
    )
    for question in questions:
        for mode in modes:
            retrieval = pipeline.retrieve(
                question.question,
                mode=mode.search,  # type: ignore[arg-type]
                top_n=max(depth, pipeline.settings.candidates),
                rerank=mode.rerank,
                served=served,
            )
            result = score_question(
                question, retrieval, k=k, rerank=mode.rerank, min_score=run.min_rerank_score
            )
            run.results[mode.name].append(result)
        if progress is not None:
            progress(1)
    return run


def score_question(
    question: EvalQuestion, retrieval: Retrieval, *, k: int, rerank: bool, min_score: float
) -> QuestionResult:
    """One question's metrics and the abstain decision :meth:`RagPipeline.ask` would make:
    with a reranker it abstains when nothing is found or the best score is below
    ``min_score``."""
    found = ranked_documents(retrieval)
    best = retrieval.best_rerank_score
    searched = retrieval.query.how_searched() if retrieval.query is not None else ""
    abstained = None
    if rerank:
        abstained = not retrieval.passages or (best is not None and best < min_score)
    if not question.answerable:
        return QuestionResult(tuple(found), (), None, None, None, abstained, best, searched)
    ranked = matching_paths(question, found)
    return QuestionResult(
        found=tuple(found),
        hits=tuple(path for path in ranked[:k] if path in question.relevant),
        recall=recall_at(ranked, question.relevant, k),
        reciprocal_rank=reciprocal_rank(ranked, question.relevant, METRIC_DEPTH),
        ndcg=ndcg_at(ranked, question.relevant, METRIC_DEPTH),
        abstained=abstained,
        best_rerank_score=best,
        searched=searched,
    )


def _setup(pipeline: RagPipeline) -> dict[str, object]:
    """What the figures depend on besides the questions, for the report's header."""
    s = pipeline.settings
    return {
        "embed_model": pipeline.embedder.model_id,
        "reranker": pipeline.reranker.model_id if pipeline.reranker is not None else "none",
        "chat_model": s.llm_model if pipeline.generator is not None else "none",
        "candidates": s.candidates,
        "rrf_k": s.rrf_k,
        "dense_weight": s.dense_weight,
        "bm25_weight": s.bm25_weight,
        "fusion_depth": s.fusion_depth,
        "min_rerank_score": s.min_rerank_score,
    }


def report(run: EvalRun, *, k: int | None = None) -> dict[str, object]:
    """The ``--json`` shape (see :func:`rag_core.eval_summary.build_report`)."""
    if k is not None and k != run.k:
        raise ValueError(f"the run was scored at k={run.k}, not {k}")
    return build_report(run)
