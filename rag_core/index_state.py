"""What an index serves, remembered between questions.

Reading what is published behind an alias takes four Milvus round trips (the aliases,
the alias, the collection's description, an exact row count); a question needs only the
search itself. A published version never changes (builds write a fresh one and move the
alias), so :class:`IndexState` keeps the last reading for ``max_age_s`` seconds and then
asks only where the alias points, reading the rest again when it has moved.

Staleness is bounded three ways: a publish by this process calls :meth:`invalidate` at
once; a publish by another process is seen within ``max_age_s``; and a search of a
remembered version that another publish dropped fails "not found", so the store
invalidates and looks again (see :meth:`rag_core.store.MilvusStore.search`); a cached
answer, which needs no search, is served only after
:meth:`~rag_core.store.MilvusStore.still_published` confirms its version. Finding
nothing published is not trusted at all: the alias is looked for on every question until
a first index appears, so it serves as soon as it is built.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rag_core.store import IndexInfo

ReadVersion = Callable[[], "str | None"]
"""Where the alias points now (None: nothing published); one or two round trips."""
ReadInfo = Callable[[], "IndexInfo | None"]
"""The published version and its build record, read in full."""


@dataclass(frozen=True, slots=True)
class _Reading:
    info: IndexInfo | None  # None: nothing was published
    at: float  # clock seconds when the reading started


class IndexState:
    """The last reading of one alias, trusted for ``max_age_s`` seconds (0: never).

    Safe to share between threads: one thread reads Milvus while the others wait for
    its result; :meth:`invalidate` waits for a reading in progress, then forgets it.
    """

    def __init__(self, max_age_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if max_age_s < 0:
            raise ValueError(f"max_age_s must not be negative, got {max_age_s}.")
        self.max_age_s = max_age_s
        self._clock = clock
        self._reading: _Reading | None = None
        self._lock = threading.Lock()

    @property
    def version(self) -> str | None:
        """The version of the last reading, fresh or not; None when there is none."""
        reading = self._reading
        return reading.info.version if reading is not None and reading.info is not None else None

    def current(self, read_version: ReadVersion, read_info: ReadInfo) -> IndexInfo | None:
        """The published index: remembered while fresh, else looked up again.

        When the remembered reading is stale, only the alias is read; the version's build
        record is read again only when the alias points elsewhere.
        """
        reading = self._reading
        if self._fresh(reading):
            return reading.info if reading is not None else None
        with self._lock:
            reading, started = self._reading, self._clock()
            if self._fresh(reading):
                return reading.info if reading is not None else None
            if reading is not None and self.max_age_s > 0:
                remembered = reading.info.version if reading.info is not None else None
                if read_version() == remembered:
                    self._reading = _Reading(reading.info, started)
                    return reading.info
            info = read_info()
            self._reading = _Reading(info, started)
            return info

    def refresh(self, read_info: ReadInfo) -> IndexInfo | None:
        """Read the published index in full and remember it."""
        with self._lock:
            started = self._clock()
            info = read_info()
            self._reading = _Reading(info, started)
            return info

    def invalidate(self) -> None:
        """Forget the reading: the alias moved (or may have), so the next one reads Milvus."""
        with self._lock:
            self._reading = None

    def _fresh(self, reading: _Reading | None) -> bool:
        if reading is None or reading.info is None:
            return False
        return self._clock() - reading.at < self.max_age_s
