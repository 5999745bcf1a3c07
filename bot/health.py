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
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rag_core.store import MilvusStore

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 1.0  # a probe answers within this even when a dependency hangs


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

    Checks run in parallel on a few threads of their own, and one that has not answered
    within ``check_timeout_s`` reports failure: a probe never waits on a hung Redis.
    """

    def __init__(self, *, check_timeout_s: float | None = None) -> None:
        self._lock = threading.Lock()
        self._checks: dict[str, _Check] = {}
        self._ready = False
        self._state = "starting"
        self._timeout_s = CHECK_TIMEOUT_S if check_timeout_s is None else check_timeout_s
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="health-check")

    def add_check(
        self, name: str, check: Callable[[], CheckResult], *, liveness: bool = False
    ) -> None:
        with self._lock:
            self._checks[name] = _Check(check, liveness)

    def set_ready(self) -> None:
        with self._lock:
            self._ready, self._state = True, "ready"

    def set_draining(self) -> None:
        with self._lock:
            self._ready, self._state = False, "draining"

    def live(self) -> tuple[bool, dict[str, object]]:
        results = self._results(only_liveness=True)
        ok = all(result.ok for result in results.values())
        return ok, {"ok": ok, "checks": _as_json(results)}

    def ready(self) -> tuple[bool, dict[str, object]]:
        results = self._results(only_liveness=False)
        with self._lock:
            ready, state = self._ready, self._state
        live = all(r.ok for n, r in results.items() if self._checks[n].liveness)
        ok = ready and live
        return ok, {"ready": ok, "state": state, "checks": _as_json(results)}

    def _results(self, *, only_liveness: bool) -> dict[str, CheckResult]:
        with self._lock:
            checks = dict(self._checks)
        running = {
            name: self._pool.submit(check.run)
            for name, check in checks.items()
            if check.liveness or not only_liveness
        }
        deadline = time.monotonic() + self._timeout_s
        results = {}
        for name, future in running.items():
            try:
                results[name] = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                results[name] = CheckResult(False, f"no answer within {self._timeout_s:g} s")
            except Exception as error:  # a broken check reports, never crashes the probe
                log.warning("health check %s failed: %r", name, error)
                results[name] = CheckResult(False, repr(error))
        return results


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


def milvus_check(store: MilvusStore) -> Callable[[], CheckResult]:
    """Milvus as the search sees it: the published index version and its size."""
    from rag_core.errors import StoreUnavailableError

    def check() -> CheckResult:
        try:
            info = store.index_info()
        except StoreUnavailableError as error:
            return CheckResult(False, str(error))
        if info is None:
            return CheckResult(True, "reachable; nothing indexed yet")
        return CheckResult(True, f"{info.version}: {info.chunk_count} chunks")

    return check
