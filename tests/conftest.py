"""Session-wide fixtures live in tests/fixtures/; this file only registers them."""

pytest_plugins = [
    "tests.fixtures.models",
    "tests.fixtures.milvus",
    "tests.fixtures.openai_server",
    "tests.fixtures.redis_db",
    "tests.fixtures.slack_api",
    "tests.fixtures.bot",
    "tests.fixtures.socket_mode",
]
