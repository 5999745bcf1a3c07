"""Log output: JSON lines with the extra fields, and secrets redacted in both formats."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import configured_secrets
from bot.log_format import SecretRedactor, json_formatter
from bot.settings import BotSettings

ROOT = Path(__file__).resolve().parents[1]
BOT_TOKEN = "xoxb-1111-2222-abcdefABCDEF"
USER_TOKEN = "xoxp-3333-4444-ghijkl"
APP_TOKEN = "xapp-1-A111-222-abcdef"
REFRESH_TOKEN = "xoxe.xoxp-1-Mi0yLTEy"
OPENAI_KEY = "sk-proj-abcdefghijklmnopqrstuvwxyz012345"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SECRETS = (BOT_TOKEN, USER_TOKEN, APP_TOKEN, REFRESH_TOKEN, OPENAI_KEY, SIGNING_SECRET)


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    """A private logger with one handler writing to a string (root untouched)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(SecretRedactor([SIGNING_SECRET]))
    logger = logging.getLogger("ragbot-test-log-format")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield logger, stream, handler
    finally:
        logger.removeHandler(handler)


def test_json_lines_carry_level_logger_message_time_and_extras(capture):
    logger, stream, handler = capture
    handler.setFormatter(json_formatter())
    logger.info("answered %s", "q1", extra={"job_id": "j1", "channel": "C1", "stage": "total"})
    logger.warning("second line")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["level"] == "INFO" and first["logger"] == "ragbot-test-log-format"
    assert first["message"] == "answered q1"
    assert (first["job_id"], first["channel"], first["stage"]) == ("j1", "C1", "total")
    assert first["time"].startswith("20") and first["time"].endswith("+00:00")
    assert second["level"] == "WARNING" and "job_id" not in second


@pytest.mark.parametrize("as_json", [False, True])
def test_secrets_are_redacted_everywhere(capture, as_json):
    logger, stream, handler = capture
    if as_json:
        handler.setFormatter(json_formatter())
    logger.warning("tokens %s %s %s", BOT_TOKEN, USER_TOKEN, APP_TOKEN)
    logger.warning(f"refresh {REFRESH_TOKEN} key {OPENAI_KEY} secret {SIGNING_SECRET}")
    logger.warning("in extra", extra={"header": f"Authorization: Bearer {BOT_TOKEN}"})
    try:
        raise RuntimeError(f"Slack refused {BOT_TOKEN}")
    except RuntimeError:
        logger.exception("call failed")
    text = stream.getvalue()
    for secret in SECRETS:
        assert secret not in text
    assert "xoxb-[redacted]" in text and "sk-[redacted]" in text and "[redacted]" in text
    assert "RuntimeError: Slack refused xoxb-[redacted]" in text
    if as_json:
        records = [json.loads(line) for line in text.splitlines()]
        assert records[3]["exc_info"].startswith("Traceback")
        assert records[2]["header"] == "Authorization: Bearer [redacted]"


def test_ordinary_text_is_left_alone(capture):
    logger, stream, _ = capture
    logger.info("task-force sk-short xoxb job 0123456789abcdef0123456789abcdef")
    assert (
        stream.getvalue().strip() == "task-force sk-short xoxb job 0123456789abcdef0123456789abcdef"
    )


def test_the_ragbot_command_logs_json_when_asked(tmp_path):
    """The real start-up path: settings read once, then JSON and redaction on stderr."""
    script = textwrap.dedent(
        f"""
        import logging
        from bot import cli

        def handler(args, settings):
            log = logging.getLogger("bot.worker")
            log.warning("posting with %s", {BOT_TOKEN!r}, extra={{"job_id": "j9"}})
            return 0

        def extend(commands):
            commands.add_parser("probe").set_defaults(handler=handler)

        raise SystemExit(cli.core_cli.main(["probe"], extend=extend,
                                           load=cli.load_settings_and_logging))
        """
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "RAGBOT_LOG_FORMAT": "json",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
    }
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    [line] = result.stderr.splitlines()
    record = json.loads(line)
    assert record["message"] == "posting with xoxb-[redacted]"
    assert (record["level"], record["logger"], record["job_id"]) == ("WARNING", "bot.worker", "j9")


def test_credentials_in_the_redis_url_milvus_and_git_settings_are_redacted(capture):
    settings = BotSettings(
        _env_file=None,
        redis_url="redis://:redis-p%40ssword-1@redis.internal:6379/0",
        milvus_uri="https://db_admin:milvus-passw0rd@milvus.internal:19530",
        milvus_token="db_admin:token-passw0rd",
        git_token="ghp_gitpassw0rd",
    )
    logger, stream, handler = capture
    handler.addFilter(SecretRedactor(configured_secrets(settings)))
    logger.warning(
        "redis-p@ssword-1 redis-p%40ssword-1 db_admin:milvus-passw0rd token-passw0rd "
        "ghp_gitpassw0rd done"
    )
    text = stream.getvalue()
    assert "passw" not in text and "ssword" not in text, text
    assert text.strip().endswith("done")
