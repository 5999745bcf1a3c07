"""The question path without a chat model or reranker: `ragbot ask`'s retrieval, timed.

    .venv/bin/python bench/bench_ask.py [--milvus-uri INDEX.db] [--collection ALIAS]
        [--questions ../shared/data/milvus_docs/questions.jsonl] [--count 50]
        [--docs ../shared/data/milvus_docs] [--model PATH] [--mode hybrid] [--repeat 2]

Asks ``--count`` questions (the file's, cycled) through :meth:`RagPipeline.ask` with
extractive answers, no reranker and no caches, so each question is: what the index is,
embed the question, search Milvus. Two settings are compared on one index and one client,
alternating ``--repeat`` times so drift on a shared machine hits both alike:

- ``RAGBOT_INDEX_CHECK_S=0``: what is published is read on every question (aliases,
  the alias, the collection's description, an exact row count), as before the check
  was remembered;
- ``RAGBOT_INDEX_CHECK_S=30`` (the default): the check is remembered, a question costs
  Milvus its search.

Prints p50 and p90 of the whole question and of its stages, and the Milvus requests per
question (counted by a proxy in front of the real client). ``--milvus-uri`` names a
ready Milvus Lite file (copy it first: one process per file); its only alias is used
unless ``--collection`` says otherwise. Without it, ``--docs`` is indexed into a
scratch file first (MiniLM, chunks of 256 tokens overlapping by 32).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from pymilvus import MilvusClient

from rag_core.docset_stores import DocSetStores
from rag_core.docsets import DocSet
from rag_core.evaluation import load_questions
from rag_core.pipeline import RagPipeline
from rag_core.settings import Settings
from rag_core.store import open_client
from rag_core.types import Embedder
from tests.fixtures.counting_client import CountingClient

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "milvus_docs"
CHECK_SETTINGS = (0.0, 30.0)


@dataclass(slots=True)
class Timings:
    """Per question, milliseconds: the whole ask, the check of what the index is
    (:meth:`RagPipeline.served`), the embedding, the search."""

    total: list[float] = field(default_factory=list)
    check: list[float] = field(default_factory=list)
    embed: list[float] = field(default_factory=list)
    search: list[float] = field(default_factory=list)
    requests: int = 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--milvus-uri", default="", help="a ready Milvus Lite index (.db)")
    parser.add_argument("--collection", default="", help="its alias (default: the only one)")
    parser.add_argument("--questions", type=Path, default=CORPUS / "questions.jsonl")
    parser.add_argument("--count", type=int, default=50, help="questions per setting")
    parser.add_argument("--docs", type=Path, default=CORPUS, help="indexed without --milvus-uri")
    parser.add_argument("--model", default="", help="embedder (default: packaged MiniLM)")
    parser.add_argument("--mode", default="hybrid", choices=["hybrid", "dense", "bm25"])
    parser.add_argument("--repeat", type=int, default=2, help="alternating passes per setting")
    return parser.parse_args(argv)


def load_minilm(model: str) -> Embedder:
    from rag_core.embedding import SentenceTransformerEmbedder, packaged_fallback_model_path

    path = model or packaged_fallback_model_path()
    if path is None:
        raise SystemExit("The packaged MiniLM is not installed; pass --model.")
    return SentenceTransformerEmbedder(str(path), device="cpu", batch_size=64)


def build_index(docs: Path, uri: str, collection: str, embedder: Embedder) -> None:
    """Index ``docs`` as ``tests/test_retrieval_quality.py`` does."""
    from rag_core.ingest.chunking import MarkdownChunker
    from rag_core.ingest.indexer import Indexer

    docset = DocSet(name="bench", kind="folder", source=str(docs), collection=collection)
    stores = DocSetStores.connect(uri, [docset])
    chunker = MarkdownChunker(embedder.count_tokens, max_tokens=256, overlap_tokens=32)
    started = time.perf_counter()
    summary = Indexer(stores["bench"], embedder, chunker).index(docs)
    stores.close()
    print(
        f"Indexed {summary.files} files, {summary.chunks_total:,} chunks "
        f"in {time.perf_counter() - started:.0f} s"
    )


def only_alias(client: MilvusClient) -> str:
    aliases = client.list_aliases().get("aliases", [])
    if len(aliases) != 1:
        raise SystemExit(f"Name the collection with --collection; aliases here: {aliases}")
    return str(aliases[0])


def timed_check(pipeline: RagPipeline, into: list[float]) -> None:
    """Record how long each :meth:`RagPipeline.served` call of ``pipeline`` takes."""
    served = pipeline.served

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return served(*args, **kwargs)
        finally:
            into.append((time.perf_counter() - started) * 1000)

    pipeline.served = timed  # type: ignore[method-assign]


def ask_all(
    pipeline: RagPipeline, counting: CountingClient, questions: Sequence[str], into: Timings
) -> None:
    for question in questions:
        counting.calls.clear()
        checks: list[float] = []
        timed_check(pipeline, checks)
        started = time.perf_counter()
        answer = pipeline.ask(question)
        into.total.append((time.perf_counter() - started) * 1000)
        del pipeline.served  # back to the method
        into.check.append(sum(checks))
        into.embed.append(answer.timings_ms.get("embed", 0.0))
        into.search.append(answer.timings_ms.get("search", 0.0))
        into.requests += sum(counting.calls.values())


def percentile(values: Sequence[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def table(results: dict[float, Timings]) -> list[str]:
    lines = [
        "| RAGBOT_INDEX_CHECK_S | questions | Milvus requests / question | p50 ms | p90 ms "
        "| without embedding p50 | p90 | check p50 | check p90 | embed p50 | search p50 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for setting, t in results.items():
        rest = [total - embed for total, embed in zip(t.total, t.embed, strict=True)]
        lines.append(
            f"| {setting:g} | {len(t.total)} | {t.requests / len(t.total):.2f} "
            f"| {percentile(t.total, 50):.1f} | {percentile(t.total, 90):.1f} "
            f"| {percentile(rest, 50):.1f} | {percentile(rest, 90):.1f} "
            f"| {percentile(t.check, 50):.2f} | {percentile(t.check, 90):.2f} "
            f"| {percentile(t.embed, 50):.1f} | {percentile(t.search, 50):.1f} |"
        )
    return lines


def run(args: argparse.Namespace, uri: str, embedder: Embedder) -> dict[float, Timings]:
    counting = CountingClient(open_client(uri))
    collection = args.collection or only_alias(counting.client)
    docset = DocSet(name="bench", kind="folder", source="", collection=collection)
    asked = [q.question for q in load_questions(args.questions)]
    questions = [asked[i % len(asked)] for i in range(args.count)]
    settings = Settings(_env_file=None, rerank_model="none", search_mode=args.mode)
    pipelines = {
        check_s: RagPipeline(
            settings,
            embedder=embedder,
            stores=DocSetStores(counting, [docset], uri=uri, index_check_s=check_s),  # type: ignore[arg-type]
        )
        for check_s in CHECK_SETTINGS
    }
    results = {check_s: Timings() for check_s in CHECK_SETTINGS}
    for pipeline in pipelines.values():
        pipeline.stores[docset.name].load_published()
        ask_all(pipeline, counting, questions[:5], Timings())  # warm up
    per_pass = max(1, args.count // args.repeat)
    for start in range(0, args.count, per_pass):
        for check_s, pipeline in pipelines.items():
            ask_all(pipeline, counting, questions[start : start + per_pass], results[check_s])
    counting.client.close()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    embedder = load_minilm(args.model)
    with tempfile.TemporaryDirectory(prefix="bench-ask-") as scratch:
        uri = args.milvus_uri
        if not uri:
            uri = str(Path(scratch) / "milvus.db")
            args.collection = args.collection or "bench_docs"
            build_index(args.docs, uri, args.collection, embedder)
        results = run(args, uri, embedder)
    print(
        f"\n{args.count} questions from {args.questions.name} per setting, {args.mode} search, "
        f"{args.model or 'packaged all-MiniLM-L6-v2'} on the CPU, no reranker, no chat model\n"
    )
    print("\n".join(table(results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
