"""Milvus: versioned index collections behind an alias, and dense, BM25 and hybrid search.

Every build writes a fresh collection ``{alias}__v{timestamp}_{random}``; publishing
moves the alias (the name queries use) to it in one step and then drops the version
it replaced, so a query never sees a half-built index. Versions a crashed build left
behind are dropped by :meth:`MilvusStore.drop_stale_versions`.

Works against Milvus Lite (a local ``*.db`` path, served in-process) and Milvus
standalone or cluster (``http(s)://`` or ``tcp://``) alike.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import grpc
import numpy as np
from pymilvus import MilvusClient, MilvusException

from rag_core import store_scan as scan
from rag_core import store_schema as rows
from rag_core.analyzers import AnalyzerChooser, AnalyzerSetting
from rag_core.errors import (
    ConfigError,
    IndexNotFoundError,
    InputError,
    StoreUnavailableError,
)
from rag_core.index_info import (
    IndexInfo,
    check_built_with,
    info_from_properties,
    warn_unrecorded_revision,
)
from rag_core.index_state import IndexState
from rag_core.milvus_client import open_client
from rag_core.settings import SearchMode
from rag_core.store_errors import is_not_found, is_not_loaded, reason
from rag_core.store_search import Fusion, check_query, run_search
from rag_core.types import Chunk, ScoredChunk

log = logging.getLogger(__name__)


class MilvusStore:
    """The index of chunks in Milvus, addressed through the alias ``collection``.

    The client is created once (see :meth:`connect`) and shared; every request has a
    deadline of ``request_timeout_s`` seconds, so a vanished server fails quickly with
    :class:`StoreUnavailableError` instead of hanging. ``batch_size`` rows travel per
    insert, ``scan_rows`` per page of a scan (see :mod:`rag_core.store_scan`). What is
    published is remembered for ``index_check_s`` seconds between questions (see
    :mod:`rag_core.index_state`).
    """

    def __init__(
        self,
        client: MilvusClient,
        *,
        collection: str,
        uri: str = "",
        request_timeout_s: float = 60.0,
        batch_size: int = 256,
        scan_rows: int = 1024,
        index_check_s: float = 0.0,
    ) -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,200}", collection):
            raise ConfigError(
                f"Collection name {collection!r} is invalid: use letters, digits and "
                "underscores, starting with a letter or underscore."
            )
        if request_timeout_s <= 0 or min(batch_size, scan_rows) < 1 or index_check_s < 0:
            raise ConfigError(
                "request_timeout_s must be positive, batch_size and scan_rows at least 1 "
                "and index_check_s not negative."
            )
        self._client = client
        self._alias = collection
        self._uri = uri or "the configured Milvus"
        self._timeout = request_timeout_s
        self._batch_size = batch_size
        self._scan_rows = scan_rows
        self._analyzers = AnalyzerChooser(client, timeout=request_timeout_s)
        self._state = IndexState(index_check_s)
        self._expected: dict[str, Any] | None = None  # what the last check asked for
        self._unrecorded_warned: set[str] = set()  # versions without a model revision

    @classmethod
    def connect(
        cls,
        uri: str,
        *,
        token: str = "",
        collection: str,
        timeout_s: float = 10,
        index_check_s: float = 0.0,
    ) -> MilvusStore:
        """Open Milvus at ``uri`` (see :func:`open_client`) and load ``collection``'s
        published version."""
        store = cls(
            open_client(uri, token=token, timeout_s=timeout_s),
            collection=collection,
            uri=uri,
            index_check_s=index_check_s,
        )
        store.load_published()
        return store

    @property
    def collection(self) -> str:
        """The alias searches go through (``RAGBOT_COLLECTION``)."""
        return self._alias

    # -- what is served ---------------------------------------------------------------

    def load_published(self) -> None:
        """Load the published version into memory (a no-op when it already is).

        A reopened Milvus Lite file, or a restarted server, starts with every collection
        released: the process that built the index loaded it only for itself.
        """
        with self._errors("load the index"):
            version = self._published_version()
            if version is not None:
                self._client.load_collection(version, timeout=self._timeout)

    def index_info(self) -> IndexInfo | None:
        """The published version and its build record; None when nothing is indexed."""
        with self._errors("read the index description"):
            version = self._published_version()
            if version is None:
                return None
            described = self._client.describe_collection(version, timeout=self._timeout)
            counted = self._count_rows(version)
        return info_from_properties(version, described.get("properties") or {}, counted)

    def check_compatible(
        self, *, embed_model: str, dim: int, embed_revision: str = "", cached: bool = False
    ) -> IndexInfo:
        """The published index, if it was built with this model, revision and dimension.

        ``embed_revision`` (see :mod:`rag_core.model_revision`) must equal the one the
        index recorded; an index that recorded none (built before revisions were kept),
        or an embedder that cannot tell (``""``), is served with a warning.

        ``cached``: accept what was read within the last ``index_check_s`` seconds (the
        question path); otherwise Milvus is read (a build). Searches then go to the
        version found. Raises :class:`IndexNotFoundError` when nothing is indexed and
        :class:`IndexMismatchError` (naming both builds and the fixes) otherwise.
        """
        self._expected = {"embed_model": embed_model, "dim": dim, "embed_revision": embed_revision}
        if cached:
            info = self._state.current(self._read_published_version, self.index_info)
        else:
            info = self._state.refresh(self.index_info)
        if info is None:
            raise IndexNotFoundError(
                f"Nothing is indexed yet in collection {self._alias}; run `ragbot index PATH`."
            )
        check_built_with(
            info, self._alias, embed_model=embed_model, dim=dim, embed_revision=embed_revision
        )
        if not info.embed_revision and info.version not in self._unrecorded_warned:
            self._unrecorded_warned.add(info.version)
            warn_unrecorded_revision(info, self._alias)
        return info

    def still_published(self, version: str) -> bool:
        """Whether the alias still points at ``version``, read now (one or two round
        trips); when it has moved, what this store remembers is forgotten. Before a
        cached answer is served: another process may have published since the last
        check. Milvus unreachable counts as yes, so cached answers outlive an outage."""
        try:
            current = self._read_published_version()
        except StoreUnavailableError as error:
            log.info("could not confirm the published index (%s); trusting %s", error, version)
            return True
        if current != version:
            self._state.invalidate()
            return False
        return True

    # -- building a version -----------------------------------------------------------

    def create_version(
        self,
        *,
        embed_model: str,
        dim: int,
        source_digest: str = "",
        revision: str = "",
        revision_at: datetime | None = None,
        embed_revision: str = "",
        analyzer: AnalyzerSetting = "auto",
        docs_language: str = "English",
    ) -> str:
        """Create an empty, loaded collection for a new build; returns its name.

        It stays invisible to searches until :meth:`publish`. ``source_digest`` records
        what it is built from, so an unchanged corpus can be recognised next time;
        ``revision`` and ``revision_at`` the git commit, so a refresh can diff from it;
        ``embed_revision`` the model's files, so another snapshot of it is refused.
        ``analyzer`` chooses BM25's analyzer for docs in ``docs_language`` (see
        :mod:`rag_core.analyzers`; ``auto`` asks the server once); the choice is recorded.
        """
        if dim < 1:
            raise InputError(f"The embedding dimension must be positive, not {dim}.")
        now = datetime.now(UTC)
        version = rows.new_version_name(self._alias, now)
        with self._errors(f"create collection {version}"):
            chosen = self._analyzers.choose(analyzer, docs_language=docs_language)
            self._client.create_collection(
                version,
                schema=rows.build_schema(dim, analyzer=chosen),
                properties=rows.collection_properties(
                    embed_model=embed_model,
                    dim=dim,
                    created_at=now,
                    source_digest=source_digest,
                    revision=revision,
                    revision_at=revision_at,
                    embed_revision=embed_revision,
                    analyzer=chosen,
                ),
                timeout=self._timeout,
            )
            # An empty collection has nothing to index: skip pymilvus' 0.5 s build polling.
            self._client.create_index(
                version, rows.build_index_params(), timeout=self._timeout, sync=False
            )
            self._client.load_collection(version, timeout=self._timeout)
        log.info(
            "created index version %s (%s, dim %d, %s analyzer)", version, embed_model, dim, chosen
        )
        return version

    def insert(self, version: str, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Write chunks with their vectors (one row each, ``batch_size`` rows per request)."""
        if vectors.ndim != 2 or vectors.shape[0] != len(chunks):
            raise InputError(
                f"Got {len(chunks)} chunks but vectors of shape {vectors.shape}; "
                "one row per chunk is needed."
            )
        for start in range(0, len(chunks), self._batch_size):
            stop = start + self._batch_size
            batch = [
                rows.chunk_to_row(chunk, vector)
                for chunk, vector in zip(chunks[start:stop], vectors[start:stop], strict=True)
            ]
            with self._errors(f"insert into {version}"):
                self._client.insert(version, batch, timeout=self._timeout)

    def stored_hashes(self, version: str) -> dict[str, str]:
        """Chunk id -> content hash of every row of ``version``, read page by page."""
        found: dict[str, str] = {}
        with self._errors(f"read the chunk hashes of {version}"):
            for page in self._pages(version, [rows.ID, rows.CONTENT_HASH]):
                found.update((row[rows.ID], row[rows.CONTENT_HASH]) for row in page)
        return found

    def document_count(self, version: str) -> int:
        """How many distinct documents ``version`` holds chunks of (one scan of the paths)."""
        paths: set[str] = set()
        with self._errors(f"count the documents of {version}"):
            for page in self._pages(version, [rows.DOC_PATH]):
                paths.update(row[rows.DOC_PATH] for row in page)
        return len(paths)

    def stored_vectors(
        self, version: str, hashes: Collection[str]
    ) -> Iterator[tuple[str, np.ndarray]]:
        """``(content hash, stored dense vector)`` for each of ``hashes`` that ``version``
        holds, in one pass over it (see :func:`rag_core.store_scan.stored_vectors`).

        Lets an unchanged chunk keep its embedding instead of being embedded again.
        """
        rows.check_hashes(hashes)
        with self._errors(f"read vectors from {version}"):
            yield from scan.stored_vectors(
                self._client, version, hashes, rows_per_page=self._scan_rows, timeout=self._timeout
            )

    def vectors_for_hashes(self, version: str, hashes: Collection[str]) -> dict[str, np.ndarray]:
        """Content hash -> stored dense vector (float32) for the hashes ``version`` holds."""
        return dict(self.stored_vectors(version, set(hashes)))

    def copy_rows(self, source: str, target: str, *, skip_paths: Collection[str]) -> int:
        """Copy every row of version ``source`` into ``target``, vectors included, except
        the rows of documents in ``skip_paths``; returns how many were copied. BM25 vectors
        are rebuilt by Milvus from the text on insert."""
        copied = 0
        with self._errors(f"copy rows from {source}"):
            for kept in scan.rows_to_copy(
                self._client,
                source,
                skip_paths,
                rows_per_page=self._scan_rows,
                timeout=self._timeout,
            ):
                for start in range(0, len(kept), self._batch_size):
                    batch = kept[start : start + self._batch_size]
                    self._client.insert(target, batch, timeout=self._timeout)
                copied += len(kept)
        return copied

    def publish(self, version: str) -> str | None:
        """Point the alias at ``version`` (one atomic switch), then drop the version it
        replaced; returns that dropped version's name, or None for the first publish."""
        self._check_own_version(version)
        with self._errors(f"publish {version}"):
            self._client.flush(version, timeout=self._timeout)
            self._client.load_collection(version, timeout=self._timeout)
            previous = self._published_version()
            if previous is None:
                if self._client.has_collection(self._alias, timeout=self._timeout):
                    raise ConfigError(
                        f"RAGBOT_COLLECTION {self._alias!r} names an existing collection, not "
                        "an alias; drop it or choose another collection name."
                    )
                self._client.create_alias(version, self._alias, timeout=self._timeout)
            else:
                self._client.alter_alias(version, self._alias, timeout=self._timeout)
        self._state.invalidate()
        log.info("published index version %s (replacing %s)", version, previous)
        if previous is None or previous == version:
            return None
        self.drop_version(previous)
        return previous

    def drop_version(self, version: str) -> None:
        """Delete a version that is not being served (a failed or replaced build)."""
        self._check_own_version(version)
        with self._errors(f"drop {version}"):
            if version == self._published_version():
                raise InputError(f"{version} is the published index; publish another first.")
            self._client.drop_collection(version, timeout=self._timeout)

    def versions(self) -> list[str]:
        """Every version of this alias in Milvus, published or not, oldest first."""
        with self._errors("list collections"):
            names = self._client.list_collections(timeout=self._timeout)
        return sorted(n for n in names if rows.is_version_of(self._alias, n))

    def drop_stale_versions(self) -> list[str]:
        """Drop every version of this alias that is not published (left by a crashed
        build); returns their names. Run it when no other build is in progress."""
        with self._errors("list collections"):
            published = self._published_version()
            names = self._client.list_collections(timeout=self._timeout)
        stale = sorted(n for n in names if rows.is_version_of(self._alias, n) and n != published)
        for name in stale:
            log.info("dropping stale index version %s", name)
            with self._errors(f"drop {name}"):
                self._client.drop_collection(name, timeout=self._timeout)
        return stale

    # -- searching --------------------------------------------------------------------

    def search(
        self,
        *,
        query_vector: np.ndarray | None,
        query_text: str,
        mode: SearchMode,
        limit: int,
        fusion: Fusion | None = None,
    ) -> list[ScoredChunk]:
        """The best ``limit`` chunks of the published index, best first.

        ``hybrid`` fuses a dense and a BM25 candidate list with weighted reciprocal
        rank fusion as ``fusion`` says (default: equal weights, k=60, lists of
        ``limit``; see :func:`~rag_core.store_search.run_search`); ``dense`` ranks by
        inner product; ``bm25`` by BM25 on the text. Scores are those of the mode.

        The version the last :meth:`check_compatible` found is searched (the alias when
        there was none), so results and the version answers are cached under agree. When
        another publish dropped it, the index is checked again as last asked (a mismatch
        is refused) and searched once more.
        """
        check_query(query_vector, query_text, mode, limit)
        search = functools.partial(
            run_search,
            self._client,
            vector=query_vector,
            text=query_text,
            mode=mode,
            limit=limit,
            timeout=self._timeout,
            fusion=fusion,
        )
        target = self._state.version or self._alias
        try:
            return search(target)
        except grpc.RpcError as error:
            raise self._unavailable("search", error) from error
        except MilvusException as error:
            if is_not_loaded(error):
                self._load(target)
                with self._errors("search"):
                    return search(target)
            if not is_not_found(error):
                raise self._unavailable("search", error) from error
        self._state.invalidate()
        target = self._recheck()
        with self._errors("search"):
            return search(target)

    def close(self) -> None:
        """Release the connection; the store cannot be used afterwards."""
        self._client.close()

    # -- internals --------------------------------------------------------------------

    def _load(self, target: str) -> None:
        """Load ``target`` (a restarted server released it)."""
        if target == self._alias:
            self.load_published()
            return
        with self._errors("load the index"):
            self._client.load_collection(target, timeout=self._timeout)

    def _recheck(self) -> str:
        """The version to search after the one searched vanished: checked as the last
        :meth:`check_compatible` asked, or simply the published one."""
        if self._expected is not None:
            return self.check_compatible(**self._expected).version
        with self._errors("search"):
            version = self._published_version()
        if version is None:
            raise IndexNotFoundError(
                f"Nothing is indexed yet in collection {self._alias}; run `ragbot index PATH`."
            )
        return version

    def _pages(self, version: str, fields: list[str]) -> Iterator[list[dict]]:
        return scan.pages(
            self._client, version, fields, rows_per_page=self._scan_rows, timeout=self._timeout
        )

    def _count_rows(self, version: str) -> int:
        """Exact row count; loads ``version`` first when a restart left it released."""
        for attempt in (1, 2):
            try:
                counted = self._client.query(
                    version,
                    filter="",
                    output_fields=["count(*)"],
                    consistency_level="Strong",
                    timeout=self._timeout,
                )
                return int(counted[0]["count(*)"]) if counted else 0
            except MilvusException as error:
                if attempt == 2 or not is_not_loaded(error):
                    raise
                self._client.load_collection(version, timeout=self._timeout)
        return 0

    def _read_published_version(self) -> str | None:
        with self._errors("read the index description"):
            return self._published_version()

    def _published_version(self) -> str | None:
        aliases = self._client.list_aliases(timeout=self._timeout).get("aliases", [])
        if self._alias not in aliases:
            return None
        described = self._client.describe_alias(self._alias, timeout=self._timeout)
        return str(described["collection_name"])

    def _check_own_version(self, version: str) -> None:
        if not rows.is_version_of(self._alias, version):
            raise InputError(f"{version!r} is not an index version of {self._alias}.")

    def _unavailable(self, action: str, error: BaseException) -> StoreUnavailableError:
        return StoreUnavailableError(f"Milvus at {self._uri} failed to {action}: {reason(error)}.")

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn pymilvus and gRPC failures into one-line :class:`StoreUnavailableError`."""
        try:
            yield
        except (MilvusException, grpc.RpcError) as error:
            raise self._unavailable(action, error) from error
