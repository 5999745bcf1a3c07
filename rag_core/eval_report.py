"""The evaluation report as one self-contained HTML page: the tables of the terminal
output and a bar chart of recall per mode and split, drawn by matplotlib (Agg) and
embedded as a base64 PNG, so the page opens anywhere without network access.

matplotlib is imported only when a chart is drawn: the rest of ``ragbot`` never loads it.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from rag_core.eval_summary import METRIC_DEPTH, Report
from rag_core.eval_tables import number, shorten

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
table { border-collapse: collapse; margin: .5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f3f3f3; }
code { font-size: 12px; }
.meta { color: #555; }
"""


def write_report(report: Report, path: Path, *, title: str = "ragbot eval") -> None:
    """Write the page to ``path`` (its folder must exist)."""
    path.write_text(render_html(report, title=title), encoding="utf-8")


def render_html(report: Report, *, title: str = "ragbot eval") -> str:
    chart = base64.b64encode(recall_chart_png(report)).decode("ascii")
    k = report["k"]
    parts = [
        f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p class='meta'>{escape(_summary_line(report))}</p>",
        f"<img alt='recall@{k} per mode and split' src='data:image/png;base64,{chart}'>",
        "<h2>Overall</h2>",
        overall_table_html(report),
    ]
    for split, heading in (("language", "By language"), ("docset", "By doc set")):
        parts += [f"<h2>{heading}: recall@{k}</h2>", split_table_html(report, split)]
    parts += ["<h2>Missed questions</h2>", misses_html(report), "</body></html>"]
    return "\n".join(parts)


def _summary_line(report: Report) -> str:
    setup = ", ".join(f"{key} {value}" for key, value in report.get("setup", {}).items())
    written = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{report['questions']} questions ({report['n']} answerable, "
        f"{report['unanswerable']} unanswerable), doc sets {', '.join(report['docsets'])}; "
        f"document-level metrics; {setup}; written {written}."
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[str | float | int | None]]) -> str:
    """An HTML table; numbers go right-aligned, None as a dash, text escaped."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for cell in row:
            if isinstance(cell, float) or cell is None:
                cells.append(f"<td class='num'>{number(cell)}</td>")
            elif isinstance(cell, int):
                cells.append(f"<td class='num'>{cell}</td>")
            else:
                cells.append(f"<td>{cell}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def overall_table_html(report: Report) -> str:
    k, depth = report["k"], METRIC_DEPTH
    keys = (f"recall@{k}", f"mrr@{depth}", f"ndcg@{depth}", "abstain_accuracy")
    keys += ("abstained_unanswerable", "answered_answerable")
    header = ["mode", "answerable", *keys[:3], "abstain accuracy", "abstained on unanswerable"]
    header.append("answered answerable")
    rows = [
        [escape(name), figures["n"], *(figures.get(key) for key in keys)]
        for name, figures in report["modes"].items()
    ]
    return _table(header, rows)


def split_table_html(report: Report, split: str) -> str:
    k = report["k"]
    modes = list(report["modes"])
    rows = [
        [escape(name), group["n"], group["questions"] - group["n"]]
        + [group["modes"][mode][f"recall@{k}"] for mode in modes]
        for name, group in report["splits"][split].items()
    ]
    return _table([split, "answerable", "unanswerable", *modes], rows)


def misses_html(report: Report) -> str:
    parts = []
    for mode, misses in report["misses"].items():
        parts.append(f"<h3>{escape(mode)}: {len(misses)}</h3>")
        if not misses:
            continue
        rows = [
            [
                escape(miss["id"]),
                escape(miss["language"]),
                escape(miss["docset"]),
                f"<span title='{escape(miss['question'])}'>"
                f"{escape(shorten(miss['question'], 90))}</span>",
                _paths(miss["relevant"]) or "(unanswerable)",
                _paths(miss["found"]) or "nothing",
                escape(miss["reason"]),
            ]
            for miss in misses
        ]
        header = ["id", "language", "doc set", "question", "expected", "found", "why"]
        parts.append(_table(header, rows))
    return "\n".join(parts)


def _paths(paths: Sequence[str]) -> str:
    return "<br>".join(f"<code>{escape(path)}</code>" for path in paths)


def chart_groups(report: Report) -> list[tuple[str, dict[str, float | None]]]:
    """The chart's groups in order: all questions, each language, each doc set (when
    there are several); each maps a mode to its recall@k. Groups without an answerable
    question have no recall and are left out."""
    key = f"recall@{report['k']}"
    groups = [(f"all\n({report['n']})", {m: f[key] for m, f in report["modes"].items()})]
    splits = report["splits"]
    named = list(splits["language"].items())
    if len(splits["docset"]) > 1:
        named += list(splits["docset"].items())
    for name, group in named:
        if group["n"]:
            label = f"{name}\n({group['n']})"
            groups.append((label, {mode: f[key] for mode, f in group["modes"].items()}))
    return groups


def recall_chart_png(report: Report) -> bytes:
    """A grouped bar chart, one group per split and one bar per mode, as PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    groups = chart_groups(report)
    modes = list(report["modes"])
    width = 0.8 / max(len(modes), 1)
    figure = Figure(figsize=(max(6.0, 1.3 * len(groups) + 1), 4.0), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for index, mode in enumerate(modes):
        offsets = [g + (index - (len(modes) - 1) / 2) * width for g in range(len(groups))]
        heights = [values[mode] or 0.0 for _, values in groups]
        bars = axes.bar(offsets, heights, width, label=mode)
        axes.bar_label(bars, fmt="%.2f", fontsize=7, padding=2, rotation=90)
    axes.set_xticks(range(len(groups)), [label for label, _ in groups])
    axes.set_ylim(0, 1.4)  # room for the labels and the legend above the bars
    axes.set_yticks([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    axes.set_ylabel(f"recall@{report['k']}")
    axes.set_title(f"Document-level recall@{report['k']} per mode (answerable questions)")
    axes.legend(loc="upper left", ncols=len(modes), fontsize=8, frameon=False)
    axes.grid(axis="y", alpha=0.3)
    axes.set_axisbelow(True)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
