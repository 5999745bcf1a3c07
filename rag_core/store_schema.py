"""The Milvus collection layout of the index: fields, indexes, rows and version names.

Pure functions and constants; :mod:`rag_core.store` does the talking to Milvus.
Each chunk is one row. ``text`` holds :attr:`Chunk.embed_text` (what BM25 searches
and the embedder saw); :attr:`Chunk.text` is recovered by stripping the context
header, so nothing is stored twice.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
from pymilvus import CollectionSchema, DataType, Function, FunctionType, MilvusClient
from pymilvus.milvus_client import IndexParams

from rag_core.errors import InputError
from rag_core.types import Chunk

SCHEMA_VERSION = "1"
"""Bumped when the row layout changes; recorded on every collection."""

PROP_EMBED_MODEL = "ragbot.embed_model"
PROP_EMBED_DIM = "ragbot.embed_dim"
PROP_CREATED_AT = "ragbot.created_at"
PROP_SCHEMA_VERSION = "ragbot.schema_version"
PROP_SOURCE_DIGEST = "ragbot.source_digest"  # the documents and chunking it was built from
PROP_REVISION = "ragbot.source_revision"  # the git commit indexed; "" for other sources
PROP_REVISION_AT = "ragbot.source_revision_at"  # that commit's date, ISO 8601 UTC
PROP_EMBED_REVISION = "ragbot.embed_revision"  # the embedder's files (rag_core.model_revision)
PROP_ANALYZER = "ragbot.analyzer"  # the BM25 analyzer of ``text`` (rag_core.analyzers)

ENGLISH_STOP_WORDS = (
    *("a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into"),
    *("is", "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then"),
    *("there", "these", "they", "this", "to", "was", "will", "with"),
)
"""The stop words of Milvus' ``english`` analyzer (Lucene's English set)."""

ANALYZER_PARAMS: dict[str, dict[str, Any]] = {
    "english": {"type": "english"},
    "english_stop": {
        "tokenizer": "standard",
        "filter": ["lowercase", {"type": "stop", "stop_words": list(ENGLISH_STOP_WORDS)}],
    },
    "standard": {"type": "standard"},
}
"""The ``analyzer_params`` of each BM25 analyzer a build may use."""

ID = "id"
TEXT = "text"
DENSE = "dense"
SPARSE = "sparse"
DOC_PATH = "doc_path"
TITLE = "title"
HEADING_PATH = "heading_path"
ANCHOR = "anchor"
URL = "url"
CHUNK_INDEX = "chunk_index"
CONTENT_HASH = "content_hash"

METADATA_FIELDS = (DOC_PATH, TITLE, HEADING_PATH, ANCHOR, URL, CHUNK_INDEX, CONTENT_HASH)
OUTPUT_FIELDS = [TEXT, *METADATA_FIELDS]
"""Everything a search returns: enough to rebuild the :class:`Chunk`, never the vectors."""

# Upper bounds in UTF-8 bytes (Milvus counts VARCHAR lengths in bytes). Generous:
# a limit costs nothing in storage, and a chunk that breaks one fails with a clear error.
MAX_ID = 64
MAX_TEXT = 65_535
MAX_PATH = 4_096
MAX_TITLE = 4_096
MAX_HEADING = 2_048
MAX_HEADINGS = 64
MAX_ANCHOR = 1_024
MAX_URL = 8_192
MAX_HASH = 64

HNSW_M = 16
HNSW_EF_CONSTRUCTION = 200
HNSW_MIN_EF = 64
"""Search-time HNSW candidate list; raised to ``limit`` when larger (Milvus needs ef >= k)."""

_VERSION_SUFFIX = r"__v\d{14}_[0-9a-f]{6}"
_HASH_PATTERN = re.compile(r"[0-9a-f]{1,64}")


def build_schema(dim: int, *, analyzer: str = "standard") -> CollectionSchema:
    """The collection schema: chunk metadata, a dense vector, and BM25 over ``text``
    read by ``analyzer`` (a name of :data:`ANALYZER_PARAMS`)."""
    if analyzer not in ANALYZER_PARAMS:
        raise InputError(f"Unknown BM25 analyzer {analyzer!r}.")
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field(ID, DataType.VARCHAR, is_primary=True, max_length=MAX_ID)
    schema.add_field(
        TEXT,
        DataType.VARCHAR,
        max_length=MAX_TEXT,
        enable_analyzer=True,
        analyzer_params=ANALYZER_PARAMS[analyzer],
    )
    schema.add_field(DENSE, DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field(SPARSE, DataType.SPARSE_FLOAT_VECTOR)
    schema.add_field(DOC_PATH, DataType.VARCHAR, max_length=MAX_PATH)
    schema.add_field(TITLE, DataType.VARCHAR, max_length=MAX_TITLE)
    schema.add_field(
        HEADING_PATH,
        DataType.ARRAY,
        element_type=DataType.VARCHAR,
        max_capacity=MAX_HEADINGS,
        max_length=MAX_HEADING,
    )
    schema.add_field(ANCHOR, DataType.VARCHAR, max_length=MAX_ANCHOR)
    schema.add_field(URL, DataType.VARCHAR, max_length=MAX_URL)
    schema.add_field(CHUNK_INDEX, DataType.INT64)
    schema.add_field(CONTENT_HASH, DataType.VARCHAR, max_length=MAX_HASH)
    schema.add_function(
        Function(
            name="text_bm25",
            function_type=FunctionType.BM25,
            input_field_names=[TEXT],
            output_field_names=[SPARSE],
        )
    )
    return schema


def build_index_params() -> IndexParams:
    """HNSW (inner product on unit vectors) for ``dense``; an inverted BM25 index for ``sparse``."""
    params = MilvusClient.prepare_index_params()
    params.add_index(
        field_name=DENSE,
        index_type="HNSW",
        metric_type="IP",
        params={"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION},
    )
    params.add_index(
        field_name=SPARSE,
        index_type="SPARSE_INVERTED_INDEX",
        metric_type="BM25",
        params={},
    )
    return params


def collection_properties(
    *,
    embed_model: str,
    dim: int,
    created_at: datetime,
    source_digest: str = "",
    revision: str = "",
    revision_at: datetime | None = None,
    embed_revision: str = "",
    analyzer: str = "standard",
) -> dict[str, str]:
    """What a collection records about how it was built (read back by ``index_info``)."""
    return {
        PROP_EMBED_MODEL: embed_model,
        PROP_EMBED_DIM: str(dim),
        PROP_CREATED_AT: created_at.isoformat(),
        PROP_SCHEMA_VERSION: SCHEMA_VERSION,
        PROP_SOURCE_DIGEST: source_digest,
        PROP_REVISION: revision,
        PROP_REVISION_AT: revision_at.isoformat() if revision_at else "",
        PROP_EMBED_REVISION: embed_revision,
        PROP_ANALYZER: analyzer,
    }


def new_version_name(alias: str, now: datetime | None = None) -> str:
    """``{alias}__v{UTC yyyymmddHHMMSS}_{6 hex}``: sorts by build time, never collides."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{alias}__v{moment:%Y%m%d%H%M%S}_{secrets.token_hex(3)}"


def is_version_of(alias: str, name: str) -> bool:
    """Whether ``name`` is a build made for ``alias`` (and not some other collection)."""
    return re.fullmatch(re.escape(alias) + _VERSION_SUFFIX, name) is not None


def chunk_to_row(chunk: Chunk, vector: np.ndarray) -> dict[str, Any]:
    """One Milvus row; raises :class:`InputError` when a field is over its limit."""
    row: dict[str, Any] = {
        ID: chunk.id,
        TEXT: chunk.embed_text,
        DENSE: vector.astype(np.float32, copy=False).tolist(),
        DOC_PATH: chunk.doc_path,
        TITLE: chunk.title,
        HEADING_PATH: list(chunk.heading_path),
        ANCHOR: chunk.anchor,
        URL: chunk.url,
        CHUNK_INDEX: chunk.chunk_index,
        CONTENT_HASH: chunk.content_hash,
    }
    _check_lengths(chunk, row)
    return row


def _check_lengths(chunk: Chunk, row: Mapping[str, Any]) -> None:
    limits = {
        TEXT: MAX_TEXT,
        DOC_PATH: MAX_PATH,
        TITLE: MAX_TITLE,
        ANCHOR: MAX_ANCHOR,
        URL: MAX_URL,
    }
    where = f"chunk {chunk.chunk_index} of {chunk.doc_path}"
    for name, limit in limits.items():
        size = len(row[name].encode("utf-8"))
        if size > limit:
            raise InputError(f"The {name} of {where} is {size} bytes; the index allows {limit}.")
    if len(chunk.heading_path) > MAX_HEADINGS:
        raise InputError(f"The heading path of {where} is deeper than {MAX_HEADINGS} levels.")
    for heading in chunk.heading_path:
        if len(heading.encode("utf-8")) > MAX_HEADING:
            raise InputError(f"A heading of {where} is longer than {MAX_HEADING} bytes.")


def row_to_chunk(row: Mapping[str, Any]) -> Chunk:
    """Rebuild the :class:`Chunk` stored by :func:`chunk_to_row` (exactly, metadata included)."""
    title = str(row[TITLE])
    heading_path = tuple(str(h) for h in row[HEADING_PATH] or ())
    context = " > ".join([title, *heading_path]) if title else " > ".join(heading_path)
    embed_text = str(row[TEXT])
    header = f"{context}\n\n"
    text = embed_text[len(header) :] if context and embed_text.startswith(header) else embed_text
    return Chunk(
        doc_path=str(row[DOC_PATH]),
        title=title,
        heading_path=heading_path,
        anchor=str(row[ANCHOR]),
        url=str(row[URL]),
        chunk_index=int(row[CHUNK_INDEX]),
        text=text,
    )


def check_hashes(hashes: Iterable[str]) -> None:
    """Refuse anything but content hashes (hex digests), before they are looked up."""
    for value in hashes:
        if not _HASH_PATTERN.fullmatch(value):
            raise InputError(f"{value!r} is not a content hash (lower-case hex expected).")
