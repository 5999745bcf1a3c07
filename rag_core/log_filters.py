"""Dropping a library's log records that are expected answers, not faults."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def dropped(logger_name: str, *, prefix: str = "") -> Iterator[None]:
    """While the block runs, records logged by ``logger_name`` whose message starts with
    ``prefix`` (every record: ``""``) are dropped; other loggers and messages pass."""
    logger = logging.getLogger(logger_name)

    def keep(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(prefix)

    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)
