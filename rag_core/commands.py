"""What the ``ragbot`` sub-commands do, apart from parsing arguments."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tqdm import tqdm

from rag_core.components import Models, load_models, open_store
from rag_core.errors import IndexMismatchError, InputError
from rag_core.evaluation import evaluate, format_table, load_questions, report
from rag_core.generation import ChatGenerator, build_openai_client
from rag_core.ingest.chunking import MarkdownChunker
from rag_core.ingest.indexer import Indexer, IndexProgress, IndexSummary
from rag_core.pipeline import RagPipeline
from rag_core.settings import Settings
from rag_core.store import MilvusStore
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


def build_indexer(settings: Settings, models: Models, store: MilvusStore) -> Indexer:
    # A chunk longer than the embedder reads would be searched on its first part only.
    max_tokens = min(settings.chunk_tokens, models.embedder.max_tokens - 2)  # [CLS], [SEP]
    chunker = MarkdownChunker(
        models.embedder.count_tokens,
        max_tokens=max_tokens,
        overlap_tokens=min(settings.chunk_overlap, max_tokens // 4),
        source_base_url=settings.source_base_url,
    )
    return Indexer(store, models.embedder, chunker, embed_batch_size=settings.embed_batch_size)


def run_index(
    settings: Settings, path: Path, *, recreate: bool = False, models: Models | None = None
) -> str:
    """Index ``path`` with a progress bar; returns the printable summary."""
    if not path.exists():
        raise InputError(f"No such file or directory: {path}")
    models = load_models(settings, with_reranker=False) if models is None else models
    store = open_store(settings)
    bars = ProgressBars()
    try:
        summary = build_indexer(settings, models, store).index(
            path, recreate=recreate, progress=bars
        )
    finally:
        bars.close()
        store.close()
    return format_summary(summary)


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


def build_pipeline(settings: Settings, models: Models, store: MilvusStore) -> RagPipeline:
    generator = None
    if settings.llm_enabled:
        client = build_openai_client(
            api_key=settings.openai_api_key,
            base_url=settings.llm_base_url,
            timeout_s=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
        )
        generator = ChatGenerator(
            client, model=settings.llm_model, temperature=settings.llm_temperature
        )
    return RagPipeline(
        settings,
        embedder=models.embedder,
        reranker=models.reranker,
        store=store,
        generator=generator,
    )


def build_cli_pipeline(settings: Settings) -> tuple[RagPipeline, list[str]]:
    models = load_models(settings)
    return build_pipeline(settings, models, open_store(settings)), models.notices


def format_answer(answer: Answer) -> str:
    lines = [answer.text.strip(), ""]
    if answer.citations:
        lines.append("Sources:" if answer.kind != AnswerKind.NOT_COVERED else "Closest sources:")
        for c in answer.citations:
            where = c.path + (f" › {c.heading}" if c.heading else "")
            lines.append(f"  [{c.number}] {c.title} — {where}")
            if c.url:
                lines.append(f"      {c.url}")
        lines.append("")
    timings = " · ".join(f"{stage} {ms:,.0f} ms" for stage, ms in answer.timings_ms.items())
    lines.append(f"({timings})")
    return "\n".join(lines)


def run_eval(settings: Settings, questions_path: Path, *, k: int, as_json: bool) -> str:
    questions = load_questions(questions_path)
    pipeline, _ = build_cli_pipeline(settings)
    with tqdm(total=len(questions), desc="questions", file=sys.stderr, disable=None) as bar:
        results = evaluate(pipeline, questions, k=k, progress=bar.update)
    if as_json:
        return json.dumps(report(results, k=k))
    return f"{len(questions)} questions\n" + format_table(results, k=k)


def run_demo(settings: Settings, *, question: str | None = None) -> int:
    """Index the bundled sample docs and answer one question, on embedded defaults."""
    models = load_models(settings, allow_fallback=True)
    for notice in models.notices:
        print(f"note: {notice}\n", file=sys.stderr)
    print(f"Indexing {settings.docs_path} into {settings.milvus_uri} ...", file=sys.stderr)
    try:
        summary = run_index(settings, settings.docs_path, models=models)
    except IndexMismatchError:
        # The demo owns its index: rebuild it when the models changed since the last run.
        summary = run_index(settings, settings.docs_path, recreate=True, models=models)
    print(summary, end="\n\n")
    pipeline = build_pipeline(settings, models, open_store(settings))
    question = question or DEMO_QUESTION
    print(f"Q: {question}\n")
    print(format_answer(pipeline.ask(question)))
    return 0
