"""The evaluation report as terminal text: one table overall, recall per language and
per doc set, the abstain decisions, and the questions each mode missed."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from rag_core.eval_summary import METRIC_DEPTH, Report

QUESTION_CHARS = 60
FOUND_SHOWN = 3


def shorten(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` terminal columns with an ellipsis. Wide
    (CJK) characters take two columns; unlike :func:`textwrap.shorten` this works for
    scripts without spaces."""
    line = " ".join(text.split())
    if _columns(line) <= width:
        return line
    kept, used = [], 1  # the ellipsis
    for char in line:
        used += _columns(char)
        if used > width:
            break
        kept.append(char)
    return "".join(kept).rstrip() + "…"


def _columns(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def format_report(report: Report) -> str:
    """Everything a reader needs from one run, in the order they look for it."""
    sections = [
        _header(report),
        overall_table(report),
        split_table(report, "language", "by language"),
    ]
    if len(report["splits"]["docset"]) > 1:
        sections.append(split_table(report, "docset", "by doc set"))
    sections.append(abstain_lines(report))
    sections.append(misses_text(report))
    return "\n\n".join(section for section in sections if section)


def _header(report: Report) -> str:
    setup = report.get("setup", {})
    lines = [
        f"{report['questions']} questions: {report['n']} answerable, "
        f"{report['unanswerable']} unanswerable; doc sets: {', '.join(report['docsets'])}; "
        f"document-level recall@{report['k']}"
    ]
    if setup:
        lines.append(", ".join(f"{key} {value}" for key, value in setup.items()))
    return "\n".join(lines)


def overall_table(report: Report) -> str:
    k = report["k"]
    columns = [f"recall@{k}", f"mrr@{METRIC_DEPTH}", f"ndcg@{METRIC_DEPTH}", "abstain"]
    width = max([15, *(len(name) + 2 for name in report["modes"])])
    header = f"{'mode':<{width}}" + "".join(f"{c:>10}" for c in columns)
    lines = [header, "-" * len(header)]
    for name, figures in report["modes"].items():
        values = [figures.get(key) for key in (*columns[:3], "abstain_accuracy")]
        lines.append(f"{name:<{width}}" + "".join(f"{number(v):>10}" for v in values))
    return "\n".join(lines)


def split_table(report: Report, split: str, title: str) -> str:
    """Recall@k per mode (columns) for each value of ``split`` (rows); ``n`` counts the
    answerable questions (``+`` the unanswerable ones)."""
    k = report["k"]
    modes = list(report["modes"])
    groups = report["splits"][split]
    width = max([12, *(len(name) + 2 for name in groups)])
    widths = [max(len(mode) + 2, 8) for mode in modes]
    header = f"{split:<{width}}{'n':>6}" + "".join(
        f"{mode:>{w}}" for mode, w in zip(modes, widths, strict=True)
    )
    lines = [f"recall@{k} {title}", header, "-" * len(header)]
    for name, group in groups.items():
        cells = "".join(
            f"{number(group['modes'][mode][f'recall@{k}']):>{w}}"
            for mode, w in zip(modes, widths, strict=True)
        )
        lines.append(f"{name:<{width}}{_count(group):>6}{cells}")
    return "\n".join(lines)


def _count(group: Report) -> str:
    """``answerable`` or ``answerable+unanswerable`` questions in a group."""
    unanswerable = group["questions"] - group["n"]
    return f"{group['n']}+{unanswerable}" if unanswerable else str(group["n"])


def abstain_lines(report: Report) -> str:
    deciding = {n: f for n, f in report["modes"].items() if "abstain_accuracy" in f}
    if not deciding:
        return (
            "abstain: n/a, no mode uses a reranker; without one the pipeline answers every "
            "question it finds passages for."
        )
    setup = report.get("setup", {})
    lines = []
    unanswerable, answerable = report["unanswerable"], report["n"]
    for name, figures in deciding.items():
        abstained = _times(figures["abstained_unanswerable"], unanswerable)
        answered = _times(figures["answered_answerable"], answerable)
        lines.append(
            f"abstain ({name}, min rerank score {setup.get('min_rerank_score', '?')}): "
            f"abstained on {abstained} of {unanswerable} unanswerable questions, answered "
            f"{answered} of {answerable} answerable; accuracy "
            f"{number(figures['abstain_accuracy'])}"
        )
    return "\n".join(lines)


def _times(fraction: float | None, total: int) -> int:
    return 0 if fraction is None else round(fraction * total)


def misses_text(report: Report) -> str:
    blocks = []
    for mode, misses in report["misses"].items():
        lines = [f"missed by {mode} ({len(misses)})" + (":" if misses else "")]
        lines += [line for miss in misses for line in miss_lines(miss)]
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def miss_lines(miss: Report) -> Sequence[str]:
    """Two lines: who and why, then what was expected and what came first instead."""
    found = ", ".join(miss["found"][:FOUND_SHOWN]) or "nothing"
    expected = ", ".join(miss["relevant"]) or "(unanswerable)"
    return [
        f"  {miss['id']:<6} {miss['language']:<9} {shorten(miss['question'], QUESTION_CHARS)}"
        f"  [{miss['reason']}]",
        f"         expected {expected}; found {found}",
    ]
