"""One build at a time per doc set, across every worker and ``ragbot index``.

With Redis (``RAGBOT_REDIS_URL``) the lock is a Redis lock, so processes on different
machines share it; without, a file lock in ``RAGBOT_DATA_DIR/locks`` serves the processes
of one machine (the only setup without Redis). The holder refreshes a Redis lock as its
build makes progress; a holder that dies loses it after :data:`LOCK_TTL_S`. While a doc
set's lock is held nobody else builds it, so the holder may drop versions that were never
published: they can only be leftovers of a crashed build.
"""

from __future__ import annotations

import fcntl
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

import redis
from redis.exceptions import LockError

from rag_core.errors import InputError, StoreUnavailableError

log = logging.getLogger(__name__)

LOCK_TTL_S = 30 * 60
REFRESH_EVERY_S = 30.0

Refresh = Callable[[], None]


class BuildInProgressError(InputError):
    """Another process is building the doc set."""


class BuildLocks(Protocol):
    def hold(self, docset: str) -> AbstractContextManager[Refresh]:
        """Hold ``docset``'s lock for the ``with`` block; raises
        :class:`BuildInProgressError` when another process holds it. The block gets a
        function to call as the build progresses (it keeps the lock alive)."""
        ...


def _busy(docset: str) -> BuildInProgressError:
    return BuildInProgressError(
        f"Doc set {docset} is being indexed by another process; try again when it finishes."
    )


class RedisBuildLocks:
    """Locks in Redis (``redis-py``'s :class:`redis.lock.Lock`), under ``prefix``."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str,
        ttl_s: float = LOCK_TTL_S,
        refresh_every_s: float = REFRESH_EVERY_S,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl_s = ttl_s
        self._refresh_every_s = refresh_every_s

    @contextmanager
    def hold(self, docset: str) -> Iterator[Refresh]:
        lock = self._client.lock(
            f"{self._prefix}build:{docset}",
            timeout=self._ttl_s,
            blocking=False,
            thread_local=False,
        )
        try:
            acquired = lock.acquire()
        except redis.RedisError as error:
            raise StoreUnavailableError(
                f"Redis is unavailable, so the build lock of doc set {docset} cannot be "
                f"taken ({error}); try again when Redis is back."
            ) from error
        if not acquired:
            raise _busy(docset)
        last = time.monotonic()

        def refresh() -> None:
            nonlocal last
            if time.monotonic() - last < self._refresh_every_s:
                return
            last = time.monotonic()
            try:
                lock.reacquire()
            except (LockError, redis.RedisError) as error:
                log.warning("could not extend the build lock of %s: %s", docset, error)

        try:
            yield refresh
        finally:
            try:
                lock.release()
            except (LockError, redis.RedisError) as error:
                log.warning("could not release the build lock of %s: %s", docset, error)


class FileBuildLocks:
    """``flock`` locks on files in ``folder``: every process of this machine shares them,
    and the system frees a lock when its holder dies."""

    def __init__(self, folder: Path) -> None:
        self._folder = Path(folder)

    @contextmanager
    def hold(self, docset: str) -> Iterator[Refresh]:
        self._folder.mkdir(parents=True, exist_ok=True)
        with open(self._folder / f"{docset}.lock", "a+b") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise _busy(docset) from None
            try:
                yield _no_refresh
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _no_refresh() -> None:
    return None


def build_locks(redis_url: str, *, prefix: str, data_dir: Path) -> BuildLocks:
    """Redis locks when ``redis_url`` is set, else file locks under ``data_dir/locks``."""
    if redis_url:
        client = redis.Redis.from_url(redis_url, socket_timeout=10, socket_connect_timeout=5)
        return RedisBuildLocks(client, prefix=prefix)
    return FileBuildLocks(Path(data_dir) / "locks")
