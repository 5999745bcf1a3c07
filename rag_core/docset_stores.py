"""One :class:`~rag_core.store.MilvusStore` per doc set, over one shared Milvus client."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from pymilvus import MilvusClient

from rag_core.docsets import DocSet, select_docsets
from rag_core.store import MilvusStore, open_client


class DocSetStores:
    """The doc sets of the settings and their indexes, by name, in declaration order."""

    def __init__(
        self,
        client: MilvusClient,
        docsets: Sequence[DocSet],
        *,
        uri: str = "",
        index_check_s: float = 0.0,
    ) -> None:
        self._client = client
        self.docsets = tuple(docsets)
        self._stores = {
            d.name: MilvusStore(
                client, collection=d.collection, uri=uri, index_check_s=index_check_s
            )
            for d in self.docsets
        }

    @classmethod
    def connect(
        cls,
        uri: str,
        docsets: Sequence[DocSet],
        *,
        token: str = "",
        timeout_s: float = 10,
        index_check_s: float = 0.0,
    ) -> DocSetStores:
        """Open Milvus at ``uri`` once and load each doc set's published version.
        ``index_check_s``: see :class:`~rag_core.store.MilvusStore`."""
        client = open_client(uri, token=token, timeout_s=timeout_s)
        stores = cls(client, docsets, uri=uri, index_check_s=index_check_s)
        for store in stores._stores.values():
            store.load_published()
        return stores

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._stores)

    def __getitem__(self, name: str) -> MilvusStore:
        return self._stores[select_docsets(self.docsets, [name])[0].name]

    def __iter__(self) -> Iterator[tuple[DocSet, MilvusStore]]:
        return ((d, self._stores[d.name]) for d in self.docsets)

    def docset(self, name: str) -> DocSet:
        """The doc set called ``name``; an unknown name is an InputError listing them."""
        return select_docsets(self.docsets, [name])[0]

    def select(self, names: Sequence[str] | None) -> list[tuple[DocSet, MilvusStore]]:
        """The doc sets named (all of them for None), with their stores."""
        chosen = self.docsets if names is None else select_docsets(self.docsets, names)
        return [(d, self._stores[d.name]) for d in chosen]

    def close(self) -> None:
        """Release the shared connection; the stores cannot be used afterwards."""
        self._client.close()
