"""Waiting for SIGTERM or SIGINT, the one way every ``ragbot`` process learns to stop."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from contextlib import contextmanager

TERMINATION_SIGNALS = (signal.SIGTERM, signal.SIGINT)
POLL_S = 0.5  # how often a wait looks at ``alive()``; signals interrupt it at once


@contextmanager
def termination_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT while the block runs; the previous handlers are
    put back on leaving it. Main thread only (``signal.signal`` raises elsewhere)."""
    received = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: received.set()) for sig in TERMINATION_SIGNALS}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def wait_until_set(received: threading.Event, *, alive: Callable[[], bool] | None = None) -> bool:
    """Block until ``received`` is set (True) or ``alive()`` turns false (False)."""
    while not received.wait(POLL_S):
        if alive is not None and not alive():
            return False
    return True


def wait_for_termination(*, alive: Callable[[], bool] | None = None) -> bool:
    """Block until SIGTERM or SIGINT (True) or until ``alive()`` turns false (False), then
    put the previous signal handlers back. Main thread only."""
    with termination_signals() as received:
        return wait_until_set(received, alive=alive)


def finish_executor(executor: Executor, timeout_s: float) -> bool:
    """Shut ``executor`` down after the tasks it holds, waiting at most ``timeout_s``
    seconds; False when some were still running then (they go on in the background)."""
    waiter = threading.Thread(
        target=executor.shutdown, kwargs={"wait": True}, name="executor-shutdown", daemon=True
    )
    waiter.start()
    waiter.join(timeout_s)
    return not waiter.is_alive()
