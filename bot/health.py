"""Liveness and readiness of one process, from named checks.

Liveness (``/healthz``) says the process works: only checks registered with
``liveness=True`` (a worker thread that keeps dying) can fail it. Readiness (``/readyz``)
says the process takes work now: it is false while starting and draining, and its body
lists every check (Redis, Milvus, workers) with details. A dependency that is down does
not make the Slack app unready: it still acknowledges events and tells users why it
cannot answer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from rag_core.errors import StoreUnavailableError

if TYPE_CHECKING:
    from rag_core.docset_stores import DocSetStores

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 1.0  # a probe answers within this even when a dependency hangs
CHECK_THREADS = 4


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class _Check:
    run: Callable[[], CheckResult]
    liveness: bool


class Health:
    """Named checks plus a ready flag; thread-safe.

    Liveness checks run inline on the probe's thread: they read in-process state only,
    so a slow dependency can never fail ``/healthz``. Readiness checks (Redis, Milvus)
    run on a few threads of their own, and one that has not answered within
    ``check_timeout_s`` reports failure: a probe never waits on a hung Redis. A check
    whose previous run is still going is not started again; it reports "still running".
    Details are short fixed texts; a check's exception is logged, not shown.
    """

    def __init__(self, *, check_timeout_s: float | None = None) -> None:
        self._lock = threading.Lock()
        self._checks: dict[str, _Check] = {}
        self._running: dict[str, Future[CheckResult]] = {}
        self._ready = False
        self._state = "starting"
        self._timeout_s = CHECK_TIMEOUT_S if check_timeout_s is None else check_timeout_s
        self._pool = ThreadPoolExecutor(
            max_workers=CHECK_THREADS, thread_name_prefix="health-check"
        )

    def add_check(
        self, name: str, check: Callable[[], CheckResult], *, liveness: bool = False
    ) -> None:
        """Register ``check``; ``liveness=True`` only for a check that touches no network."""
        with self._lock:
            self._checks[name] = _Check(check, liveness)

    def set_ready(self) -> None:
        with self._lock:
            self._ready, self._state = True, "ready"

    def set_draining(self) -> None:
        with self._lock:
            self._ready, self._state = False, "draining"

    def close(self) -> None:
        """Stop the check threads without waiting for a hung check; later readiness
        probes report the checks as stopped."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def live(self) -> tuple[bool, dict[str, object]]:
        results = self._liveness_results()
        ok = all(result.ok for result in results.values())
        return ok, {"ok": ok, "checks": _as_json(results)}

    def ready(self) -> tuple[bool, dict[str, object]]:
        live = self._liveness_results()
        results = {**live, **self._readiness_results()}
        with self._lock:
            ready, state = self._ready, self._state
        ok = ready and all(result.ok for result in live.values())
        return ok, {"ready": ok, "state": state, "checks": _as_json(results)}

    def _liveness_results(self) -> dict[str, CheckResult]:
        with self._lock:
            checks = {name: c for name, c in self._checks.items() if c.liveness}
        return {name: _run(name, check.run) for name, check in checks.items()}

    def _readiness_results(self) -> dict[str, CheckResult]:
        results: dict[str, CheckResult] = {}
        started: dict[str, Future[CheckResult]] = {}
        with self._lock:
            for name, check in self._checks.items():
                if check.liveness:
                    continue
                previous = self._running.get(name)
                if previous is not None and not previous.done():
                    results[name] = CheckResult(False, "still running")
                    continue
                try:
                    future = self._pool.submit(_run, name, check.run)
                except RuntimeError:  # closed: the process is stopping
                    results[name] = CheckResult(False, "stopped")
                    continue
                self._running[name] = started[name] = future
        deadline = time.monotonic() + self._timeout_s
        for name, future in started.items():
            try:
                results[name] = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                results[name] = CheckResult(False, f"no answer within {self._timeout_s:g} s")
            except CancelledError:
                results[name] = CheckResult(False, "stopped")
        return results


def _run(name: str, check: Callable[[], CheckResult]) -> CheckResult:
    """``check()``; a broken check is logged and reports failure, never crashes the probe."""
    try:
        return check()
    except Exception as error:
        log.warning("health check %s failed: %r", name, error)
        return CheckResult(False, "failed")


def _as_json(results: dict[str, CheckResult]) -> dict[str, object]:
    return {name: {"ok": r.ok, "detail": r.detail} for name, r in results.items()}


class Pingable(Protocol):
    def ping(self) -> bool: ...


def redis_check(queue: Pingable) -> Callable[[], CheckResult]:
    """Redis as the job queue sees it: a ping, with its round trip in the detail."""

    def check() -> CheckResult:
        started = time.perf_counter()
        ok = queue.ping()
        elapsed_ms = (time.perf_counter() - started) * 1000
        return CheckResult(ok, f"ping {elapsed_ms:.1f} ms" if ok else "unreachable")

    return check


def milvus_check(stores: DocSetStores) -> Callable[[], CheckResult]:
    """Milvus as the search sees it: each doc set's published index version and size. Why
    it is unreachable is logged, not shown (Milvus' address may carry credentials)."""

    def check() -> CheckResult:
        parts = []
        for docset, store in stores:
            try:
                info = store.index_info()
            except StoreUnavailableError as error:
                log.warning("health check milvus: %s", error)
                return CheckResult(False, "unreachable")
            if info is None:
                parts.append(f"{docset.name}: nothing indexed yet")
            else:
                parts.append(f"{docset.name}: index {info.version} with {info.chunk_count} chunks")
        return CheckResult(True, "reachable; " + "; ".join(parts))

    return check
