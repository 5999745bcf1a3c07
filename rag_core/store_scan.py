"""Reading a whole index version page by page, for :class:`rag_core.store.MilvusStore`.

A version is read with one query iterator, ``rows_per_page`` rows a request, never with
a lookup per batch of values: the fields looked up (content hashes, paths) have no
index, so each filtered query scans the whole version and a lookup per batch costs the
square of the version's size. pymilvus and gRPC errors pass; the store words them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator

import numpy as np
from pymilvus import MilvusClient

from rag_core import store_schema as rows
from rag_core.log_filters import dropped

COPIED_FIELDS = [rows.ID, rows.TEXT, rows.DENSE, *rows.METADATA_FIELDS]
"""What a copied row keeps; BM25 vectors are rebuilt by Milvus from the text."""
ITERATOR_LOGGER = "pymilvus.client.iterator.query_iterator"


def pages(
    client: MilvusClient, version: str, fields: list[str], *, rows_per_page: int, timeout: float
) -> Iterator[list[dict]]:
    """Every row of ``version`` (loaded first), ``fields`` only, a page at a time."""
    client.load_collection(version, timeout=timeout)
    # Milvus Lite has no session timestamp to give; pymilvus warns and uses its own.
    with dropped(ITERATOR_LOGGER, prefix="failed to get mvccTs"):
        iterator = client.query_iterator(
            version, batch_size=rows_per_page, filter="", output_fields=fields, timeout=timeout
        )
    try:
        while page := iterator.next():
            yield page
    finally:
        iterator.close()


def stored_vectors(
    client: MilvusClient,
    version: str,
    hashes: Collection[str],
    *,
    rows_per_page: int,
    timeout: float,
) -> Iterator[tuple[str, np.ndarray]]:
    """``(content hash, dense vector as float32)`` for each of ``hashes`` that ``version``
    holds, each once, as one pass over ``version`` finds them. Memory: one page.

    ``hashes`` is consulted as the pass goes, so a caller may remove what it no longer
    needs; the pass ends early once ``hashes`` is empty.
    """
    if not hashes:
        return
    seen: set[str] = set()
    fields = [rows.CONTENT_HASH, rows.DENSE]
    for page in pages(client, version, fields, rows_per_page=rows_per_page, timeout=timeout):
        for row in page:
            key = row[rows.CONTENT_HASH]
            if key in hashes and key not in seen:
                seen.add(key)
                yield key, np.asarray(row[rows.DENSE], dtype=np.float32)
        if not hashes:
            return


def rows_to_copy(
    client: MilvusClient,
    version: str,
    skip_paths: Collection[str],
    *,
    rows_per_page: int,
    timeout: float,
) -> Iterator[list[dict]]:
    """The rows of ``version`` (:data:`COPIED_FIELDS`) outside the documents
    ``skip_paths``, a page at a time."""
    skipped = set(skip_paths)
    for page in pages(client, version, COPIED_FIELDS, rows_per_page=rows_per_page, timeout=timeout):
        kept = [
            {name: row[name] for name in COPIED_FIELDS}
            for row in page
            if row[rows.DOC_PATH] not in skipped
        ]
        if kept:
            yield kept
