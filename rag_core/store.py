"""Milvus: versioned index collections behind an alias, and dense, BM25 and hybrid search.

Every build writes a fresh collection ``{alias}__v{timestamp}_{random}``; publishing
moves the alias (the name queries use) to it in one step and then drops the version
it replaced, so a query never sees a half-built index. Versions a crashed build left
behind are dropped by :meth:`MilvusStore.drop_stale_versions`.

Works against Milvus Lite (a local ``*.db`` path, served in-process) and Milvus
standalone or cluster (``http(s)://`` or ``tcp://``) alike.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import grpc
import numpy as np
from pymilvus import MilvusClient, MilvusException

from rag_core import store_schema as rows
from rag_core.errors import (
    ConfigError,
    IndexMismatchError,
    IndexNotFoundError,
    InputError,
    StoreUnavailableError,
)
from rag_core.settings import SearchMode
from rag_core.store_errors import is_not_found, is_not_loaded, reason
from rag_core.store_search import check_query, run_search
from rag_core.types import Chunk, ScoredChunk

log = logging.getLogger(__name__)

_REMOTE_SCHEMES = ("http", "https", "tcp", "unix")


@dataclass(frozen=True, slots=True)
class IndexInfo:
    """What is being served behind the alias, and how it was built."""

    version: str  # the collection name behind the alias
    embed_model: str
    embed_dim: int
    created_at: datetime | None  # UTC; None for a collection this project did not create
    chunk_count: int
    source_digest: str = ""  # see Indexer.source_digest; "" when unknown
    revision: str = ""  # the git commit it was built from; "" for other sources
    revision_at: datetime | None = None  # that commit's date (UTC)


class MilvusStore:
    """The index of chunks in Milvus, addressed through the alias ``collection``.

    The client is created once (see :meth:`connect`) and shared; every request has a
    deadline of ``request_timeout_s`` seconds, so a vanished server fails quickly with
    :class:`StoreUnavailableError` instead of hanging. ``batch_size`` rows travel per
    insert, per page of a scan and per ``in [...]`` lookup.
    """

    def __init__(
        self,
        client: MilvusClient,
        *,
        collection: str,
        uri: str = "",
        request_timeout_s: float = 60.0,
        batch_size: int = 256,
    ) -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,200}", collection):
            raise ConfigError(
                f"Collection name {collection!r} is invalid: use letters, digits and "
                "underscores, starting with a letter or underscore."
            )
        if request_timeout_s <= 0 or batch_size < 1:
            raise ConfigError("request_timeout_s must be positive and batch_size at least 1.")
        self._client = client
        self._alias = collection
        self._uri = uri or "the configured Milvus"
        self._timeout = request_timeout_s
        self._batch_size = batch_size

    @classmethod
    def connect(
        cls, uri: str, *, token: str = "", collection: str, timeout_s: float = 10
    ) -> MilvusStore:
        """Open Milvus at ``uri`` (see :func:`open_client`) and load ``collection``'s
        published version."""
        store = cls(
            open_client(uri, token=token, timeout_s=timeout_s), collection=collection, uri=uri
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
        props = described.get("properties") or {}
        created = props.get(rows.PROP_CREATED_AT, "")
        revision_at = props.get(rows.PROP_REVISION_AT, "")
        return IndexInfo(
            version=version,
            embed_model=props.get(rows.PROP_EMBED_MODEL, ""),
            embed_dim=int(props.get(rows.PROP_EMBED_DIM, "0") or 0),
            created_at=datetime.fromisoformat(created) if created else None,
            chunk_count=counted,
            source_digest=props.get(rows.PROP_SOURCE_DIGEST, ""),
            revision=props.get(rows.PROP_REVISION, ""),
            revision_at=datetime.fromisoformat(revision_at) if revision_at else None,
        )

    def check_compatible(self, *, embed_model: str, dim: int) -> IndexInfo:
        """The published index, if it was built with this model and dimension.

        Raises :class:`IndexNotFoundError` when nothing is indexed and
        :class:`IndexMismatchError` (naming both builds and the fixes) otherwise.
        """
        info = self.index_info()
        if info is None:
            raise IndexNotFoundError(
                f"Nothing is indexed yet in collection {self._alias}; run `ragbot index PATH`."
            )
        if (info.embed_model, info.embed_dim) != (embed_model, dim):
            raise IndexMismatchError(
                f"Collection {self._alias} was indexed with "
                f"{info.embed_model or 'an unknown model'} (dim {info.embed_dim}) "
                f"but the embedder is now {embed_model} (dim {dim}); "
                "re-index with `ragbot index PATH --recreate`, or set "
                f"RAGBOT_EMBED_MODEL={info.embed_model} and RAGBOT_EMBED_DIM={info.embed_dim} "
                "back to what the index was built with."
            )
        return info

    # -- building a version -----------------------------------------------------------

    def create_version(
        self,
        *,
        embed_model: str,
        dim: int,
        source_digest: str = "",
        revision: str = "",
        revision_at: datetime | None = None,
    ) -> str:
        """Create an empty, loaded collection for a new build; returns its name.

        It stays invisible to searches until :meth:`publish`. ``source_digest`` records
        what it is built from, so an unchanged corpus can be recognised next time;
        ``revision`` and ``revision_at`` the git commit, so a refresh can diff from it.
        """
        if dim < 1:
            raise InputError(f"The embedding dimension must be positive, not {dim}.")
        now = datetime.now(UTC)
        version = rows.new_version_name(self._alias, now)
        with self._errors(f"create collection {version}"):
            self._client.create_collection(
                version,
                schema=rows.build_schema(dim),
                properties=rows.collection_properties(
                    embed_model=embed_model,
                    dim=dim,
                    created_at=now,
                    source_digest=source_digest,
                    revision=revision,
                    revision_at=revision_at,
                ),
                timeout=self._timeout,
            )
            # An empty collection has nothing to index: skip pymilvus' 0.5 s build polling.
            self._client.create_index(
                version, rows.build_index_params(), timeout=self._timeout, sync=False
            )
            self._client.load_collection(version, timeout=self._timeout)
        log.info("created index version %s (%s, dim %d)", version, embed_model, dim)
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

    def vectors_for_hashes(self, version: str, hashes: Collection[str]) -> dict[str, np.ndarray]:
        """Content hash -> stored dense vector (float32) for the hashes ``version`` holds.

        Lets an unchanged chunk keep its embedding instead of being embedded again.
        """
        wanted = sorted(set(hashes))
        found: dict[str, np.ndarray] = {}
        if wanted:
            with self._errors(f"load {version}"):
                self._client.load_collection(version, timeout=self._timeout)
        for start in range(0, len(wanted), self._batch_size):
            expression = rows.hash_filter(wanted[start : start + self._batch_size])
            with self._errors(f"read vectors from {version}"):
                page = self._client.query(
                    version,
                    filter=expression,
                    output_fields=[rows.CONTENT_HASH, rows.DENSE],
                    timeout=self._timeout,
                )
            for row in page:
                found[row[rows.CONTENT_HASH]] = np.asarray(row[rows.DENSE], dtype=np.float32)
        return found

    def copy_rows(self, source: str, target: str, *, skip_paths: Collection[str]) -> int:
        """Copy every row of version ``source`` into ``target``, vectors included, except
        the rows of documents in ``skip_paths``; returns how many were copied. BM25 vectors
        are rebuilt by Milvus from the text on insert."""
        skipped = set(skip_paths)
        copied = 0
        fields = [rows.ID, rows.TEXT, rows.DENSE, *rows.METADATA_FIELDS]
        with self._errors(f"copy rows from {source}"):
            for page in self._pages(source, fields):
                kept = [
                    {name: row[name] for name in fields}
                    for row in page
                    if row[rows.DOC_PATH] not in skipped
                ]
                if kept:
                    self._client.insert(target, kept, timeout=self._timeout)
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
    ) -> list[ScoredChunk]:
        """The best ``limit`` chunks of the published index, best first.

        ``hybrid`` fuses a dense and a BM25 candidate list of ``limit`` each with
        reciprocal rank fusion (k=60); ``dense`` ranks by inner product; ``bm25`` by
        BM25 on the text. Scores are those of the mode.
        """
        check_query(query_vector, query_text, mode, limit)
        try:
            return self._search_once(query_vector, query_text, mode, limit)
        except grpc.RpcError as error:
            raise self._unavailable("search", error) from error
        except MilvusException as error:
            if is_not_loaded(error):
                return self._load_and_search(query_vector, query_text, mode, limit)
            if not is_not_found(error):
                raise self._unavailable("search", error) from error
        with self._errors("search"):
            if self._published_version() is None:
                raise IndexNotFoundError(
                    f"Nothing is indexed yet in collection {self._alias}; run `ragbot index PATH`."
                )
            # The alias moved on while the version it pointed at was dropped: once more.
            return self._search_once(query_vector, query_text, mode, limit)

    def close(self) -> None:
        """Release the connection; the store cannot be used afterwards."""
        self._client.close()

    # -- internals --------------------------------------------------------------------

    def _search_once(
        self, vector: np.ndarray | None, text: str, mode: SearchMode, limit: int
    ) -> list[ScoredChunk]:
        return run_search(
            self._client,
            self._alias,
            vector=vector,
            text=text,
            mode=mode,
            limit=limit,
            timeout=self._timeout,
        )

    def _load_and_search(
        self, vector: np.ndarray | None, text: str, mode: SearchMode, limit: int
    ) -> list[ScoredChunk]:
        """Load the published version (a restarted server released it), search once more."""
        self.load_published()
        with self._errors("search"):
            return self._search_once(vector, text, mode, limit)

    def _pages(self, version: str, fields: list[str]) -> Iterator[list[dict]]:
        """Every row of ``version`` (loaded first), ``fields`` only, a page at a time."""
        self._client.load_collection(version, timeout=self._timeout)
        iterator = self._client.query_iterator(
            version,
            batch_size=self._batch_size,
            filter="",
            output_fields=fields,
            timeout=self._timeout,
        )
        try:
            while page := iterator.next():
                yield page
        finally:
            iterator.close()

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


def open_client(uri: str, *, token: str = "", timeout_s: float = 10) -> MilvusClient:
    """A client of Milvus at ``uri``: a Milvus Lite ``*.db`` path (its folder is created)
    or an ``http(s)://``/``tcp://`` address. Fails within ``timeout_s`` seconds with
    :class:`StoreUnavailableError` naming the URI when it cannot be reached."""
    if uri.endswith(".db"):
        Path(uri).expanduser().parent.mkdir(parents=True, exist_ok=True)
        target = str(Path(uri).expanduser())
    elif urlparse(uri).scheme.lower() in _REMOTE_SCHEMES:
        target = uri
    else:
        raise ConfigError(
            f"RAGBOT_MILVUS_URI {uri!r} is neither a Milvus Lite file path ending in .db "
            "nor an http(s):// or tcp:// address of a Milvus server."
        )
    try:
        # No keepalive pings while idle: Milvus Lite's server answers them with GOAWAY.
        options = {"grpc_options": {"grpc.keepalive_permit_without_calls": False}}
        remote = urlparse(uri).scheme.lower() in _REMOTE_SCHEMES
        return MilvusClient(
            uri=target, token=token, timeout=timeout_s, **(options if remote else {})
        )
    except (MilvusException, grpc.RpcError) as error:
        hint = (
            " Is another process using it? Several processes need a Milvus server "
            "(e.g. `milvus-lite server`) and RAGBOT_MILVUS_URI=http://HOST:PORT."
            if uri.endswith(".db")
            else ""
        )
        raise StoreUnavailableError(
            f"Cannot reach Milvus at {uri}: {reason(error)}.{hint}"
        ) from error
