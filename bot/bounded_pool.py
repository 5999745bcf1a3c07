"""A fixed set of threads working through a bounded backlog of tasks.

``concurrent.futures.ThreadPoolExecutor`` queues without limit, so a stalled dependency
turns a burst of Slack events into an ever-growing backlog nobody is told about. Here a
full backlog is the caller's to handle: :meth:`BoundedThreadPool.try_submit` says no.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from rag_core.errors import ConfigError

log = logging.getLogger(__name__)

Task = Callable[[], object]


class BoundedThreadPool:
    """``threads`` daemon threads named ``{name}-{n}``, at most ``backlog`` tasks waiting.

    A task's exception is logged with its traceback (there is no caller left to raise it
    to) and the thread goes on with the next task.
    """

    def __init__(self, *, threads: int, backlog: int, name: str) -> None:
        if threads < 1 or backlog < 1:
            raise ConfigError(f"{name} needs threads >= 1 and backlog >= 1.")
        self.name = name
        self._tasks: queue.Queue[Task | None] = queue.Queue(maxsize=backlog)
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{n}", daemon=True)
            for n in range(1, threads + 1)
        ]
        for thread in self._threads:
            thread.start()

    def try_submit(self, task: Task) -> bool:
        """Queue ``task`` without waiting; ``False`` when the backlog is full or the
        pool was shut down."""
        if self._closed:
            return False
        try:
            self._tasks.put_nowait(task)
        except queue.Full:
            return False
        return True

    @property
    def closed(self) -> bool:
        """True once :meth:`shutdown` was called: no task is taken any more."""
        return self._closed

    def shutdown(self, timeout_s: float = 30.0) -> bool:
        """Finish the queued tasks, then stop the threads; ``False`` when some were still
        busy after ``timeout_s`` seconds (they are daemons and end with the process)."""
        self._closed = True
        deadline = time.monotonic() + timeout_s
        for _ in self._threads:
            try:
                self._tasks.put(None, timeout=max(0.0, deadline - time.monotonic()))
            except queue.Full:
                return False
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    def wait_idle(self, timeout_s: float = 30.0) -> bool:
        """Block until every queued task has finished; ``False`` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._tasks.all_tasks_done:
            while self._tasks.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._tasks.all_tasks_done.wait(left)
        return True

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            try:
                if task is None:
                    return
                task()
            except Exception:
                log.exception("%s: task failed", self.name)
            finally:
                self._tasks.task_done()
