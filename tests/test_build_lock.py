"""Build locks: one build per doc set at a time, in Redis or in files, and a build in
progress that another process's run leaves alone."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag_core.build_lock import BuildInProgressError, FileBuildLocks, RedisBuildLocks
from rag_core.docset_index import DocSetIndexer
from rag_core.docset_stores import DocSetStores
from rag_core.docsets import DocSet
from rag_core.settings import Settings

HOLD_IN_ANOTHER_PROCESS = """
import sys, time
from pathlib import Path
from rag_core.build_lock import FileBuildLocks
with FileBuildLocks(Path(sys.argv[1])).hold("docs"):
    print("held", flush=True)
    time.sleep(30)
"""


def test_file_locks_are_shared_by_processes_and_freed_when_the_holder_dies(tmp_path: Path):
    locks = FileBuildLocks(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_IN_ANOTHER_PROCESS, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with (
            pytest.raises(BuildInProgressError, match=r"Doc set docs is being indexed"),
            locks.hold("docs"),
        ):
            pass
        with locks.hold("other"):  # another doc set builds meanwhile
            pass
    finally:
        holder.kill()  # a crashed holder: the system frees its lock
        holder.wait()
    with locks.hold("docs"):
        pass


def test_redis_locks_expire_unless_refreshed(redis_client, redis_prefix):
    first = RedisBuildLocks(redis_client, prefix=redis_prefix, ttl_s=1, refresh_every_s=0.1)
    second = RedisBuildLocks(redis_client, prefix=redis_prefix, ttl_s=1)

    with first.hold("docs") as refresh:
        for _ in range(4):  # a build making progress keeps its lock past the TTL
            time.sleep(0.4)
            refresh()
        busy = pytest.raises(BuildInProgressError, match=r"Doc set docs is being indexed")
        with busy, second.hold("docs"):
            pass
    with second.hold("docs"):  # released
        pass
    with first.hold("docs"):
        time.sleep(1.3)  # a holder that stopped refreshing (it died) loses the lock
        with second.hold("docs"):
            pass


def test_a_build_in_progress_is_not_dropped_by_another_run(tmp_path, milvus_uri, tiny_embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nSome text about otters.\n", encoding="utf-8")
    docset = DocSet(name="docs", kind="folder", source=str(docs), collection="locked")
    settings = Settings(_env_file=None, milvus_uri=milvus_uri, rerank_model="none")
    locks = FileBuildLocks(tmp_path / "locks")
    stores = DocSetStores.connect(milvus_uri, [docset])
    store = stores["docs"]
    try:
        with locks.hold("docs"):  # another process is building: its version exists, unpublished
            building = store.create_version(
                embed_model=tiny_embedder.model_id, dim=tiny_embedder.dim
            )
            indexer = DocSetIndexer(settings, tiny_embedder, FileBuildLocks(tmp_path / "locks"))
            with pytest.raises(BuildInProgressError, match="Doc set docs is being indexed"):
                indexer.index(docset, store)
            assert building in store.versions()
        summary = indexer.index(docset, store).summary  # once it is free, a run cleans up
        assert summary.chunks_total == 1
        assert store.versions() == [store.index_info().version]
    finally:
        stores.close()
