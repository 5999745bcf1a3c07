"""What the ``ragbot`` sub-commands do, apart from parsing arguments."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from rag_core.components import (
    Models,
    build_cli_pipeline,
    build_pipeline,
    load_models,
    open_build_locks,
    open_stores,
)
from rag_core.docset_index import DocSetBuild, DocSetIndexer, format_revision
from rag_core.docsets import DocSet, select_docsets
from rag_core.errors import IndexMismatchError, InputError, RagbotError
from rag_core.eval_tables import format_report
from rag_core.evaluation import evaluate, load_questions, report
from rag_core.ingest.index_run import IndexProgress, IndexSummary
from rag_core.settings import Settings
from rag_core.types import Answer, AnswerKind

DEMO_QUESTION = "How do I start Milvus Lite from Python, and what URI do I pass to MilvusClient?"


class ProgressBars:
    """Drives one tqdm bar per indexing stage from :class:`IndexProgress` events."""

    def __init__(self) -> None:
        self._stage = ""
        self._bar: tqdm | None = None

    def __call__(self, event: IndexProgress) -> None:
        if event.stage != self._stage or self._bar is None:
            self.close()
            self._stage = event.stage
            self._bar = tqdm(
                total=event.total, desc=f"{event.stage:<10}", file=sys.stderr, disable=None
            )
        self._bar.total = event.total
        self._bar.n = event.done
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


@dataclass(slots=True)
class IndexRun:
    """What ``ragbot index`` did to each doc set: a printable report and the failures."""

    lines: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def run_index(
    settings: Settings,
    *,
    path: Path | None = None,
    docset: str | None = None,
    recreate: bool = False,
    models: Models | None = None,
) -> IndexRun:
    """Index one doc set (``docset``; ``path`` replaces a folder doc set's folder) or every
    doc set, each with a progress bar. One doc set failing never stops the others: its
    error goes into the report and :attr:`IndexRun.failed`."""
    chosen = _docsets_to_index(settings, path=path, docset=docset)
    models = load_models(settings, with_reranker=False) if models is None else models
    indexer = DocSetIndexer(settings, models.embedder, open_build_locks(settings))
    stores = open_stores(settings)
    run = IndexRun()
    try:
        for each in chosen:
            bars = ProgressBars()
            try:
                build = indexer.index(
                    each, stores[each.name], recreate=recreate, progress=bars, path=path
                )
            except RagbotError as error:
                if len(chosen) == 1:
                    raise
                run.lines.append(f"error: {error}")
                run.failed.append(each.name)
                continue
            finally:
                bars.close()
            run.lines.append(format_build(build, named=len(settings.docsets) > 1))
    finally:
        stores.close()
    return run


def _docsets_to_index(
    settings: Settings, *, path: Path | None, docset: str | None
) -> tuple[DocSet, ...]:
    if docset is not None:
        chosen = select_docsets(settings.docsets, [docset])
    elif path is not None:
        folders = [d for d in settings.docsets if d.kind == "folder"]
        if len(settings.docsets) != 1 or not folders:
            names = ", ".join(d.name for d in settings.docsets)
            raise InputError(f"Name the doc set PATH belongs to with --docset (doc sets: {names}).")
        chosen = (folders[0],)
    else:
        return settings.docsets
    if path is not None:
        if chosen[0].kind != "folder":
            raise InputError(
                f"Doc set {chosen[0].name} is a {chosen[0].kind} source; a PATH replaces "
                "only a folder doc set's folder."
            )
        if not path.exists():
            raise InputError(f"No such file or directory: {path}")
        root = Path(chosen[0].source, chosen[0].subdir).resolve()
        if path.resolve() != root and path.resolve().is_relative_to(root):
            raise InputError(
                f"{path} is part of doc set {chosen[0].name}'s folder {root}; its chunks keep "
                f"paths relative to that folder, so index all of it: ragbot index --docset "
                f"{chosen[0].name}."
            )
    return chosen


def format_build(build: DocSetBuild, *, named: bool) -> str:
    """The summary of one doc set's run, naming it when there are several."""
    text = format_summary(build.summary)
    notes = []
    if build.revision is not None:
        notes.append(
            f"commit {format_revision(build.revision.commit, build.revision.committed_at)}"
        )
    if build.source_note:
        notes.append(build.source_note)
    if notes:
        text += f" ({'; '.join(notes)})"
    return f"{build.docset.name}: {text}" if named else text


def format_summary(summary: IndexSummary) -> str:
    lines = [
        f"Indexed {summary.files:,} files into {summary.version} in {summary.seconds:.1f} s: "
        f"{summary.chunks_total:,} chunks ({summary.chunks_new:,} new, "
        f"{summary.chunks_unchanged:,} unchanged, {summary.chunks_deleted:,} deleted)."
    ]
    if summary.skipped:
        lines.append(f"Skipped {summary.skipped:,} files:")
        lines += [f"  {s.path}: {s.reason}" for s in summary.skipped_files[:20]]
        if summary.skipped > 20:
            lines.append(f"  ... and {summary.skipped - 20:,} more")
    return "\n".join(lines)


def format_answer(answer: Answer) -> str:
    lines = [answer.text.strip(), ""]
    if answer.citations:
        lines.append("Sources:" if answer.kind != AnswerKind.NOT_COVERED else "Closest sources:")
        named = len({c.docset for c in answer.citations}) > 1
        for c in answer.citations:
            where = c.path + (f" › {c.heading}" if c.heading else "")
            if named:
                where = f"{c.docset}: {where}"
            lines.append(f"  [{c.number}] {c.title} — {where}")
            if c.url:
                lines.append(f"      {c.url}")
        lines.append("")
    timings = " · ".join(f"{stage} {ms:,.0f} ms" for stage, ms in answer.timings_ms.items())
    lines.append(f"({timings})")
    return "\n".join(lines)


def run_eval(
    settings: Settings,
    questions_path: Path,
    *,
    k: int,
    as_json: bool,
    docsets: list[str] | None = None,
    report_path: Path | None = None,
) -> str:
    """Score every mode on the questions file; the terminal tables (or the ``--json``
    object) come back as text, and ``report_path`` gets the HTML page."""
    if k < 1:
        raise InputError(f"--k must be at least 1 (got {k}).")
    if report_path is not None and not report_path.parent.is_dir():
        raise InputError(f"No such folder for the report: {report_path.parent}")
    questions = load_questions(questions_path)
    pipeline, _ = build_cli_pipeline(settings)
    with tqdm(total=len(questions), desc="questions", file=sys.stderr, disable=None) as bar:
        run = evaluate(pipeline, questions, k=k, progress=bar.update, docsets=docsets)
    run.setup = {"questions_file": questions_path.name, **run.setup}
    result = report(run)
    if report_path is not None:
        from rag_core.eval_report import write_report

        write_report(result, report_path, title=f"ragbot eval: {questions_path.name}")
    if as_json:
        return json.dumps(result, ensure_ascii=False)
    return format_report(result)


def run_demo(settings: Settings, *, question: str | None = None) -> int:
    """Index the bundled sample docs and answer one question, on embedded defaults."""
    models = load_models(settings, allow_fallback=True)
    for notice in models.notices:
        print(f"note: {notice}\n", file=sys.stderr)
    names = ", ".join(d.describe_source() for d in settings.docsets)
    print(f"Indexing {names} into {settings.milvus_uri} ...", file=sys.stderr)
    try:
        run = run_index(settings, models=models)
    except IndexMismatchError:
        # The demo owns its index: rebuild it when the models changed since the last run.
        run = run_index(settings, recreate=True, models=models)
    print(run.text, end="\n\n")
    pipeline = build_pipeline(settings, models, open_stores(settings))
    question = question or DEMO_QUESTION
    print(f"Q: {question}\n")
    print(format_answer(pipeline.ask(question)))
    return 0
