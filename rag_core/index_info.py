"""What a published index is and how it was built, read from its collection's
properties, and the check that an embedder may search it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from rag_core import store_schema as rows
from rag_core.errors import IndexMismatchError
from rag_core.model_revision import revision_mismatch

log = logging.getLogger(__name__)


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
    embed_revision: str = ""  # see rag_core.model_revision; "" when the build predates it
    analyzer: str = ""  # BM25 analyzer (rag_core.analyzers); "" for a build before they were


def info_from_properties(version: str, props: Mapping[str, str], chunk_count: int) -> IndexInfo:
    """The :class:`IndexInfo` of collection ``version`` from the properties it was built
    with (:func:`rag_core.store_schema.collection_properties`)."""
    created = props.get(rows.PROP_CREATED_AT, "")
    revision_at = props.get(rows.PROP_REVISION_AT, "")
    return IndexInfo(
        version=version,
        embed_model=props.get(rows.PROP_EMBED_MODEL, ""),
        embed_dim=int(props.get(rows.PROP_EMBED_DIM, "0") or 0),
        created_at=datetime.fromisoformat(created) if created else None,
        chunk_count=chunk_count,
        source_digest=props.get(rows.PROP_SOURCE_DIGEST, ""),
        revision=props.get(rows.PROP_REVISION, ""),
        revision_at=datetime.fromisoformat(revision_at) if revision_at else None,
        embed_revision=props.get(rows.PROP_EMBED_REVISION, ""),
        analyzer=props.get(rows.PROP_ANALYZER, ""),
    )


def check_built_with(
    info: IndexInfo, alias: str, *, embed_model: str, dim: int, embed_revision: str = ""
) -> None:
    """Raise :class:`IndexMismatchError` (naming both builds and the fixes) unless the
    index behind ``alias`` was built with this model, dimension and revision.

    An index that recorded no revision (built before revisions were kept), or an
    embedder that cannot tell (``""``), passes: :func:`warn_unrecorded_revision`.
    """
    if (info.embed_model, info.embed_dim) != (embed_model, dim):
        raise IndexMismatchError(
            f"Collection {alias} was indexed with "
            f"{info.embed_model or 'an unknown model'} (dim {info.embed_dim}) "
            f"but the embedder is now {embed_model} (dim {dim}); "
            "re-index with `ragbot index PATH --recreate`, or set "
            f"RAGBOT_EMBED_MODEL={info.embed_model} and RAGBOT_EMBED_DIM={info.embed_dim} "
            "back to what the index was built with."
        )
    indexed = info.embed_revision
    if indexed and embed_revision and indexed != embed_revision:
        raise IndexMismatchError(
            revision_mismatch(alias, info.embed_model, indexed, embed_revision)
        )


def warn_unrecorded_revision(info: IndexInfo, alias: str) -> None:
    """Log that ``info``'s build recorded no model revision (see :func:`check_built_with`)."""
    log.warning(
        "index %s of %s records no revision of %s (built before revisions were "
        "recorded); serving it as if built with the loaded one. If the model's files "
        "changed since, re-index with --recreate",
        info.version,
        alias,
        info.embed_model,
    )
