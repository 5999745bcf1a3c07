"""Settings: every one documented, read from the environment, validated with clear names."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.settings import BotSettings
from rag_core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def env_name(name: str, field) -> str:
    alias = field.validation_alias
    return alias.choices[0] if alias is not None else f"RAGBOT_{name.upper()}"


@pytest.mark.parametrize("document", [".env.example", "README.md"])
def test_every_setting_is_documented(document):
    text = (ROOT / document).read_text(encoding="utf-8")
    missing = [
        env_name(name, field)
        for name, field in BotSettings.model_fields.items()
        if env_name(name, field) not in text
    ]
    assert missing == []


def test_env_example_defaults_parse_to_the_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text("utf-8"), "utf-8")
    from_file = BotSettings()
    assert from_file == BotSettings(_env_file=None)


def test_environment_and_aliases(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("RAGBOT_RERANK_MODEL", "none")
    monkeypatch.setenv("RAGBOT_EMBED_DIM", "256")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("RAGBOT_ADMIN_USER_IDS", "U1, U2,,")
    settings = BotSettings()
    assert settings.llm_enabled and not settings.reranking_enabled
    assert settings.embed_dim == 256
    assert settings.slack_bot_token == "xoxb-1"
    assert settings.admin_ids == {"U1", "U2"}


def test_settings_are_frozen_and_validated():
    settings = Settings(_env_file=None)
    with pytest.raises(ValidationError):
        settings.top_n = 3  # type: ignore[misc]
    with pytest.raises(ValidationError, match="CHUNK_OVERLAP"):
        Settings(_env_file=None, chunk_tokens=64, chunk_overlap=64)
    with pytest.raises(ValidationError):
        Settings(_env_file=None, search_mode="fuzzy")
