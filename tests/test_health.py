"""Health checks: liveness never waits on a dependency, details never carry secrets."""

from __future__ import annotations

import logging
import threading
import time
from types import SimpleNamespace

from bot.health import CheckResult, Health, milvus_check
from rag_core.errors import StoreUnavailableError

SECRET_URI = "http://root:Milvus-Passw0rd@milvus.internal:19530"


def test_a_hung_readiness_check_never_fails_liveness():
    health = Health(check_timeout_s=0.2)
    release = threading.Event()
    calls: list[str] = []

    def hung(name: str):
        def check() -> CheckResult:
            calls.append(name)
            release.wait(10)
            return CheckResult(True)

        return check

    for n in range(8):  # more than the check threads
        health.add_check(f"milvus-{n}", hung(f"milvus-{n}"))
    health.add_check("workers", lambda: CheckResult(True, "1 alive"), liveness=True)
    health.set_ready()
    try:
        ready, body = health.ready()
        assert ready, body  # readiness checks report, they do not gate
        for _ in range(3):
            started = time.monotonic()
            live, body = health.live()
            assert live and time.monotonic() - started < 0.1, body
            ready, body = health.ready()
            assert body["checks"]["workers"] == {"ok": True, "detail": "1 alive"}
            assert body["checks"]["milvus-0"] == {"ok": False, "detail": "still running"}
        assert sorted(calls) == sorted(set(calls))  # a running check is never started again
    finally:
        release.set()
        health.close()


def test_a_check_runs_again_once_its_previous_run_ended():
    health = Health(check_timeout_s=0.5)
    runs: list[int] = []
    health.add_check("redis", lambda: runs.append(1) or CheckResult(True, "ping 1.0 ms"))
    try:
        for _ in range(3):
            assert health.ready()[1]["checks"]["redis"] == {"ok": True, "detail": "ping 1.0 ms"}
        assert len(runs) == 3
    finally:
        health.close()


def test_details_are_fixed_texts_and_errors_go_to_the_log(caplog):
    def unreachable():
        raise StoreUnavailableError(f"Milvus at {SECRET_URI} is unreachable")

    def broken() -> CheckResult:
        raise RuntimeError(f"cannot parse {SECRET_URI}")

    def published():
        return SimpleNamespace(version="v20250101-000000", chunk_count=42)

    health = Health(check_timeout_s=1.0)
    docs = SimpleNamespace(name="docs")
    health.add_check("milvus", milvus_check([(docs, SimpleNamespace(index_info=unreachable))]))
    health.add_check("broken", broken)
    health.add_check("index", milvus_check([(docs, SimpleNamespace(index_info=published))]))
    try:
        with caplog.at_level(logging.WARNING, logger="bot.health"):
            _, body = health.ready()
    finally:
        health.close()

    assert body["checks"] == {
        "milvus": {"ok": False, "detail": "unreachable"},
        "broken": {"ok": False, "detail": "failed"},
        "index": {"ok": True, "detail": "reachable; docs: index v20250101-000000 with 42 chunks"},
    }
    assert "Passw0rd" not in str(body)
    assert caplog.text.count(SECRET_URI) == 2  # the operator still learns why


def test_after_close_checks_report_stopped():
    health = Health()
    health.add_check("redis", lambda: CheckResult(True))
    health.close()
    assert health.ready()[1]["checks"]["redis"] == {"ok": False, "detail": "stopped"}
