"""Log output of the ``ragbot`` command: plain text or one JSON object per line, and
secrets redacted from every record either way.

JSON lines carry ``level``, ``logger``, ``message``, ``time`` (ISO 8601, UTC) and the
``extra`` fields the code passes (``job_id``, ``channel``, ``stage``, ...), so a log
pipeline can index them without parsing prose. Redaction happens in a handler filter,
before any formatter sees the record: Slack tokens (``xoxb-``, ``xoxp-``, ``xapp-``,
``xoxe-``...), ``sk-...`` API keys, bearer credentials, and the exact values of the
configured secrets (the signing secret has no recognisable shape).
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Iterable

from pythonjsonlogger.json import JsonFormatter

REDACTED = "[redacted]"
MIN_SECRET_CHARS = 8  # shorter configured values would redact ordinary words

# Each pattern keeps group 1 (the kind of secret) and hides the rest.
SECRET_PATTERNS = (
    re.compile(r"\b(Bearer\s+)[A-Za-z0-9._~+/-]+=*", re.IGNORECASE),  # before the tokens
    re.compile(r"\b(xox[a-z](?:\.xox[a-z])?-)[A-Za-z0-9-]+"),
    re.compile(r"\b(xapp-)[A-Za-z0-9-]+"),
    re.compile(r"\b(sk-)[A-Za-z0-9_-]{12,}"),
)


class SecretRedactor(logging.Filter):
    """Rewrites each record with secrets replaced by ``[redacted]``; never drops one.

    The message is rendered (``msg % args``) and stored back, string ``extra`` values are
    rewritten, and an exception's traceback is rendered into ``exc_text`` (``exc_info`` is
    cleared) so no formatter can print the original.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        values = sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)
        self._exact = re.compile("|".join(map(re.escape, values))) if values else None
        # A record's own attributes; any other string attribute is an ``extra`` field.
        blank = logging.LogRecord("", 0, "", 0, "", None, None)
        self._record_attrs = frozenset(vars(blank)) | {"message", "asctime"}

    def redact(self, text: str) -> str:
        if self._exact is not None:
            text = self._exact.sub(REDACTED, text)
        for pattern in SECRET_PATTERNS:
            text = pattern.sub(lambda match: match.group(1) + REDACTED, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # bad %-args: leave the record to logging's report
            return True
        record.msg, record.args = self.redact(message), None
        for name, value in list(vars(record).items()):
            if name not in self._record_attrs and isinstance(value, str):
                setattr(record, name, self.redact(value))
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def json_formatter() -> logging.Formatter:
    """One JSON object per record: level, logger, message, time and the extra fields."""
    return JsonFormatter(
        ["levelname", "name", "message"],
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
    )


def configure_log_output(log_format: str, *, secrets: Iterable[str] = ()) -> None:
    """Set the format of the root logger's handlers (``"text"`` keeps theirs) and give
    each a :class:`SecretRedactor` for ``secrets``. Call once, after ``basicConfig``."""
    redactor = SecretRedactor(secrets)
    for handler in logging.getLogger().handlers:
        for old in [f for f in handler.filters if isinstance(f, SecretRedactor)]:
            handler.removeFilter(old)
        handler.addFilter(redactor)
        if log_format == "json":
            handler.setFormatter(json_formatter())
