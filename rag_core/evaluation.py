"""Document-level retrieval metrics over a JSONL file of questions.

Each line holds ``question`` and ``relevant`` (document paths relative to the indexed
root). Questions with an empty ``relevant`` list are out-of-scope probes: they measure
how often the pipeline correctly says it does not know, which needs reranker scores.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rag_core.errors import InputError
from rag_core.pipeline import RagPipeline, Retrieval

METRIC_DEPTH = 10


@dataclass(frozen=True, slots=True)
class EvalQuestion:
    question: str
    relevant: frozenset[str]


@dataclass(frozen=True, slots=True)
class EvalMode:
    name: str  # "dense", "bm25", "hybrid", "hybrid+rerank"
    search: str
    rerank: bool


@dataclass(slots=True)
class ModeScores:
    n: int = 0
    recall: float = 0.0
    mrr: float = 0.0
    ndcg: float = 0.0
    abstain_n: int = 0
    abstain_correct: int = 0
    per_question: list[dict[str, object]] = field(default_factory=list)

    def as_dict(self, k: int) -> dict[str, float | int | None]:
        n = max(self.n, 1)
        out: dict[str, float | int | None] = {
            f"recall@{k}": round(self.recall / n, 4),
            f"mrr@{METRIC_DEPTH}": round(self.mrr / n, 4),
            f"ndcg@{METRIC_DEPTH}": round(self.ndcg / n, 4),
        }
        if self.abstain_n:
            out["abstain_accuracy"] = round(self.abstain_correct / self.abstain_n, 4)
        return out


def load_questions(path: Path) -> list[EvalQuestion]:
    """Read the questions file; a missing or malformed file is an :class:`InputError`."""
    if not path.is_file():
        raise InputError(f"No such questions file: {path}")
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            questions.append(EvalQuestion(str(row["question"]), frozenset(row["relevant"])))
        except (ValueError, KeyError, TypeError) as error:
            raise InputError(
                f"{path}:{number}: expected a JSON object with 'question' and 'relevant' ({error})"
            ) from error
    if not questions:
        raise InputError(f"{path} holds no questions.")
    return questions


def ranked_documents(retrieval: Retrieval) -> list[str]:
    """Document paths in rank order, each once (a document may own several chunks)."""
    seen: dict[str, None] = {}
    for passage in retrieval.passages:
        seen.setdefault(passage.chunk.doc_path, None)
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
) -> dict[str, ModeScores]:
    """Score every mode on every question, searching ``docsets`` (all for None);
    returns the sums wrapped per mode."""
    modes = default_modes(with_reranker=pipeline.reranker is not None) if modes is None else modes
    depth = max(k, METRIC_DEPTH)
    results = {mode.name: ModeScores() for mode in modes}
    served = pipeline.served(docsets)
    for question in questions:
        for mode in modes:
            retrieval = pipeline.retrieve(
                question.question,
                mode=mode.search,  # type: ignore[arg-type]
                top_n=max(depth, pipeline.settings.candidates),
                rerank=mode.rerank,
                served=served,
            )
            _score(results[mode.name], question, retrieval, k=k, mode=mode, pipeline=pipeline)
        if progress is not None:
            progress(1)
    return results


def _score(
    scores: ModeScores,
    question: EvalQuestion,
    retrieval: Retrieval,
    *,
    k: int,
    mode: EvalMode,
    pipeline: RagPipeline,
) -> None:
    if not question.relevant:
        if mode.rerank:
            best = retrieval.best_rerank_score
            scores.abstain_n += 1
            scores.abstain_correct += int(best is None or best < pipeline.settings.min_rerank_score)
        return
    ranked = ranked_documents(retrieval)
    scores.n += 1
    scores.recall += recall_at(ranked, question.relevant, k)
    scores.mrr += reciprocal_rank(ranked, question.relevant, METRIC_DEPTH)
    scores.ndcg += ndcg_at(ranked, question.relevant, METRIC_DEPTH)


def report(results: dict[str, ModeScores], *, k: int) -> dict[str, object]:
    """The ``--json`` shape: ``{"n": ..., "modes": {"dense": {"recall@5": ...}}}``."""
    n = max((scores.n for scores in results.values()), default=0)
    return {"n": n, "k": k, "modes": {name: s.as_dict(k) for name, s in results.items()}}


def format_table(results: dict[str, ModeScores], *, k: int) -> str:
    header = f"{'mode':<15} {'recall@' + str(k):>9} {'mrr@10':>8} {'ndcg@10':>8} {'abstain':>8}"
    lines = [header, "-" * len(header)]
    for name, scores in results.items():
        row = scores.as_dict(k)
        abstain = row.get("abstain_accuracy")
        lines.append(
            f"{name:<15} {row[f'recall@{k}']:>9.3f} {row['mrr@10']:>8.3f} "
            f"{row['ndcg@10']:>8.3f} {'-' if abstain is None else f'{abstain:.3f}':>8}"
        )
    return "\n".join(lines)
