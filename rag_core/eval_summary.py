"""From what each mode found to the evaluation report: overall figures, the same per
language and per doc set, the abstain decisions and the questions each mode missed.

The report is a plain dict (the ``--json`` output); the terminal tables and the HTML
page are drawn from it, so all three always agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rag_core.languages import LANGUAGE_GROUPS

if TYPE_CHECKING:
    from rag_core.evaluation import EvalQuestion, EvalRun, QuestionResult

Report = dict[str, Any]
METRIC_DEPTH = 10  # the depth of MRR and nDCG, and of the documents kept per result
NO_DOCSET = "(none)"
NOT_FOUND = "(not found)"


def build_report(run: EvalRun) -> Report:
    """``{"n", "k", "questions", "unanswerable", "docsets", "setup", "modes", "splits",
    "misses", "results"}``: ``modes`` holds the overall figures per mode (``n`` answerable
    questions, recall@k, mrr@10, ndcg@10 and, for a mode with a reranker, the abstain
    figures); ``splits`` the same per ``language`` and per ``docset``; ``misses`` the
    questions each mode got wrong; ``results`` what every mode found for every question."""
    everything = range(len(run.questions))
    docsets = [question_docset(run, i) for i in everything]
    languages = [q.language for q in run.questions]
    unanswerable = sum(not q.answerable for q in run.questions)
    return {
        "n": len(run.questions) - unanswerable,
        "k": run.k,
        "questions": len(run.questions),
        "unanswerable": unanswerable,
        "docsets": list(run.docsets),
        "setup": dict(run.setup),
        "modes": _figures(run, everything),
        "splits": {
            "language": _splits(run, languages, order=LANGUAGE_GROUPS),
            "docset": _splits(run, docsets, order=run.docsets),
        },
        "misses": {mode.name: _misses(run, mode.name, languages, docsets) for mode in run.modes},
        "results": [_result_row(run, i, languages[i], docsets[i]) for i in everything],
    }


def question_docset(run: EvalRun, index: int) -> str:
    """The doc set a question is about: the one its row names, the only one searched, or
    where its relevant documents were found (``(none)`` for an unanswerable question and
    ``(not found)`` when no mode found them, among several doc sets)."""
    question = run.questions[index]
    if question.docset:
        return question.docset
    if len(run.docsets) == 1:
        return run.docsets[0]
    if not question.answerable:
        return NO_DOCSET
    homes = {
        docset
        for results in run.results.values()
        for docset, path in results[index].found
        if path in question.relevant
    }
    return "+".join(sorted(homes)) or NOT_FOUND


def _splits(run: EvalRun, keys: Sequence[str], *, order: Sequence[str]) -> Report:
    present = set(keys)
    ranked = [key for key in order if key in present] + sorted(present.difference(order))
    out: Report = {}
    for key in ranked:
        chosen = [i for i, each in enumerate(keys) if each == key]
        out[key] = {
            "questions": len(chosen),
            "n": sum(run.questions[i].answerable for i in chosen),
            "modes": _figures(run, chosen),
        }
    return out


def _figures(run: EvalRun, chosen: Sequence[int]) -> Report:
    return {
        mode.name: mode_figures([run.results[mode.name][i] for i in chosen], k=run.k)
        for mode in run.modes
    }


def mode_figures(results: Sequence[QuestionResult], *, k: int) -> Report:
    """Means over the answerable questions (None when there are none) and, where the mode
    decides to abstain, ``abstain_accuracy`` (right decisions over all questions: abstain
    on an unanswerable one, answer an answerable one), ``abstained_unanswerable`` and
    ``answered_answerable`` (each None when there is no such question)."""
    answerable = [r for r in results if r.recall is not None]
    figures: Report = {
        "n": len(answerable),
        f"recall@{k}": _mean([r.recall for r in answerable]),
        f"mrr@{METRIC_DEPTH}": _mean([r.reciprocal_rank for r in answerable]),
        f"ndcg@{METRIC_DEPTH}": _mean([r.ndcg for r in answerable]),
    }
    decided = [r for r in results if r.abstained is not None]
    if decided:
        right_abstains = [float(bool(r.abstained)) for r in decided if r.recall is None]
        right_answers = [float(not r.abstained) for r in decided if r.recall is not None]
        figures["abstain_accuracy"] = _mean(right_abstains + right_answers)
        figures["abstained_unanswerable"] = _mean(right_abstains)
        figures["answered_answerable"] = _mean(right_answers)
    return figures


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _mean(values: Sequence[float | None]) -> float | None:
    numbers = [v for v in values if v is not None]
    return round(sum(numbers) / len(numbers), 4) if numbers else None


def miss_reason(question: EvalQuestion, result: QuestionResult, min_score: float) -> str | None:
    """Why a mode got a question wrong, or None when it did not: a relevant document
    missing from the first k, an answerable question abstained on, or an unanswerable
    one answered; for a question not in the docs' language, also how it was searched."""
    best = "none" if result.best_rerank_score is None else f"{result.best_rerank_score:.2f}"
    if not question.answerable:
        if result.abstained is False:
            return f"answered: best rerank score {best} >= {min_score:g}"
        return None
    reasons = []
    if result.recall is not None and result.recall < 1.0:
        found = len(result.hits)
        reasons.append("not found" if not found else f"found {found} of {len(question.relevant)}")
    if result.abstained:
        reasons.append(f"abstained: best rerank score {best} < {min_score:g}")
    if reasons and result.searched:
        reasons.append(result.searched)
    return "; ".join(reasons) or None


def _misses(run: EvalRun, mode: str, languages: Sequence[str], docsets: Sequence[str]) -> list:
    misses = []
    for i, (question, result) in enumerate(zip(run.questions, run.results[mode], strict=True)):
        reason = miss_reason(question, result, run.min_rerank_score)
        if reason is None:
            continue
        misses.append(
            {
                "id": question.id,
                "language": languages[i],
                "docset": docsets[i],
                "question": question.question,
                "relevant": sorted(question.relevant),
                "found": found_labels(run, result)[: run.k],
                "reason": reason,
            }
        )
    return misses


def found_labels(run: EvalRun, result: QuestionResult) -> list[str]:
    """The found documents as paths, named ``docset:path`` when several doc sets were
    searched."""
    several = len(run.docsets) > 1
    return [f"{docset}:{path}" if several else path for docset, path in result.found]


def _result_row(run: EvalRun, index: int, language: str, docset: str) -> Report:
    question = run.questions[index]
    modes = {}
    for mode in run.modes:
        result = run.results[mode.name][index]
        modes[mode.name] = {
            "found": found_labels(run, result)[:METRIC_DEPTH],
            "hits": list(result.hits),
            "recall": _rounded(result.recall),
            "reciprocal_rank": _rounded(result.reciprocal_rank),
            "ndcg": _rounded(result.ndcg),
            "abstained": result.abstained,
            "best_rerank_score": _rounded(result.best_rerank_score),
        }
    return {
        "id": question.id,
        "question": question.question,
        "language": language,
        "docset": docset,
        "relevant": sorted(question.relevant),
        "answer_hint": question.answer_hint,
        "modes": modes,
    }
