"""The ``ragbot`` console script: the engine's commands plus ``serve``, ``worker``,
``jobs`` and ``feedback``. Settings are read once, here; ``RAGBOT_LOG_FORMAT`` applies as
soon as they are.

``python -m bot.cli`` runs the same thing without the console script installed.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from urllib.parse import unquote, urlsplit

from bot.feedback_cli import add_feedback_command
from bot.jobs_cli import add_jobs_command
from bot.log_format import configure_log_output
from bot.settings import BotSettings, load_bot_settings
from rag_core import cli as core_cli
from rag_core.settings import Settings

SERVICE_LOGGERS = ("bot", "rag_core")


def add_bot_commands(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser("serve", help="run the Slack app (Socket Mode, or --http)")
    serve.add_argument("--http", action="store_true", help="serve the Events API over HTTP")
    serve.add_argument("--host", default="0.0.0.0", help="HTTP bind address")
    serve.add_argument("--port", type=int, default=3000, help="HTTP port (default 3000)")
    serve.set_defaults(handler=_cmd_serve)

    worker = commands.add_parser("worker", help="answer queued questions (needs RAGBOT_REDIS_URL)")
    worker.add_argument("--name", default=None, help="consumer name (default: host-pid)")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    worker.set_defaults(handler=_cmd_worker)

    add_jobs_command(commands)
    add_feedback_command(commands)


def log_service_events(*, verbose: bool) -> None:
    """Long-running commands log what they do (a question queued, an answer posted) at INFO.

    Without ``-v`` the root logger only shows warnings; the service's own loggers are
    raised to INFO so each job still leaves one line.
    """
    if not verbose:
        for name in SERVICE_LOGGERS:
            logging.getLogger(name).setLevel(logging.INFO)


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from bot.serve import serve

    assert isinstance(settings, BotSettings)
    log_service_events(verbose=args.verbose)
    return serve(settings, http=args.http, host=args.host, port=args.port)


def _cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from bot.worker_setup import run_worker_process

    assert isinstance(settings, BotSettings)
    log_service_events(verbose=args.verbose)
    return run_worker_process(settings, name=args.name, burst=args.burst)


def load_settings_and_logging() -> BotSettings:
    """The settings of this run; then the log format they ask for, and redaction of the
    secrets they hold (the engine's CLI has already set up logging as text)."""
    settings = load_bot_settings()
    configure_log_output(settings.log_format, secrets=configured_secrets(settings))
    return settings


def configured_secrets(settings: BotSettings) -> tuple[str, ...]:
    """Every configured value a log line must not show: tokens, keys, the signing secret,
    the Milvus token (and its password part), the git tokens, and the credentials inside
    the Redis URL and the Milvus URI."""
    token_password = settings.milvus_token.partition(":")[2]  # a token may be "user:password"
    return (
        settings.slack_bot_token,
        settings.slack_app_token,
        settings.slack_signing_secret,
        settings.openai_api_key,
        settings.milvus_token,
        token_password,
        settings.git_token.get_secret_value(),
        *settings.git_tokens.secrets,
        *url_credentials(settings.redis_url),
        *url_credentials(settings.milvus_uri),
    )


def url_credentials(url: str) -> tuple[str, ...]:
    """The ``user:password`` part of ``url`` and its password, as written and decoded;
    none for a URL without one (or a file path)."""
    userinfo, at, _ = urlsplit(url).netloc.rpartition("@")
    if not at:
        return ()
    password = userinfo.partition(":")[2]
    return tuple({userinfo, unquote(userinfo), password, unquote(password)} - {""})


def main(argv: Sequence[str] | None = None) -> int:
    return core_cli.main(argv, extend=add_bot_commands, load=load_settings_and_logging)


if __name__ == "__main__":
    raise SystemExit(main())
