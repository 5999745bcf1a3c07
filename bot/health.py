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
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class _Check:
    run: Callable[[], CheckResult]
    liveness: bool


class Health:
    """Named checks plus a ready flag; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._checks: dict[str, _Check] = {}
        self._ready = False
        self._state = "starting"

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
        results = {}
        for name, check in checks.items():
            if only_liveness and not check.liveness:
                continue
            try:
                results[name] = check.run()
            except Exception as error:  # a broken check reports, never crashes the probe
                log.warning("health check %s failed: %r", name, error)
                results[name] = CheckResult(False, repr(error))
        return results


def _as_json(results: dict[str, CheckResult]) -> dict[str, object]:
    return {name: {"ok": r.ok, "detail": r.detail} for name, r in results.items()}
