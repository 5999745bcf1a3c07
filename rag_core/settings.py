"""The one place that reads configuration from the environment.

Every setting has the prefix ``RAGBOT_`` (``OPENAI_API_KEY`` is the exception,
read under its usual name) and may also come from a ``.env`` file in the
working directory. Build it once at start-up with :func:`load_settings` and
pass it down; nothing else reads ``os.environ``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rag_core.docsets import DocSet, default_docset, load_docsets
from rag_core.errors import ConfigError

DEFAULT_EMBED_MODEL = "Qwen/Qwen3-Embedding-0.6B"
DEFAULT_RERANK_MODEL = "Qwen/Qwen3-Reranker-0.6B"
DEFAULT_QUERY_INSTRUCTION = (
    "Given a web search query, retrieve relevant passages that answer the query"
)
DEFAULT_RERANK_INSTRUCTION = DEFAULT_QUERY_INSTRUCTION

SearchMode = Literal["hybrid", "dense", "bm25"]
DeviceName = str  # "auto", "cpu", "cuda", "cuda:1", "mps"


class Settings(BaseSettings):
    """Configuration of the RAG engine; frozen once read."""

    model_config = SettingsConfigDict(
        env_prefix="RAGBOT_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        populate_by_name=True,
    )

    # Models
    embed_model: str = DEFAULT_EMBED_MODEL
    embed_dim: int | None = Field(
        default=None, ge=8, description="Matryoshka output size; empty keeps the model's own."
    )
    embed_instruction: str = DEFAULT_QUERY_INSTRUCTION
    embed_batch_size: int = Field(default=32, ge=1)
    embed_max_length: int = Field(default=8192, ge=16)
    rerank_model: str = DEFAULT_RERANK_MODEL
    rerank_instruction: str = DEFAULT_RERANK_INSTRUCTION
    rerank_max_length: int = Field(default=8192, ge=64)
    rerank_batch_tokens: int = Field(
        default=16384, ge=256, description="Padded tokens per reranker forward pass."
    )
    device: DeviceName = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"

    # Milvus
    milvus_uri: str = "./ragbot_data/milvus.db"
    milvus_token: str = ""
    collection: str = Field(default="ragbot_docs", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,200}$")

    # Doc sets
    config: Path | None = Field(
        default=None, description="TOML file declaring doc sets; empty: one folder, docs_path."
    )
    data_dir: Path = Path("ragbot_data")
    dm_docsets: str = Field(
        default="", description="Comma-separated doc sets DMs search; empty: all of them."
    )
    git_token: SecretStr = SecretStr("")
    git_ssh_key: Path | None = None

    # Redis: the caches, the build locks (and, for the bot, the queue)
    redis_url: str = ""
    redis_prefix: str = "ragbot:"

    # Ingestion
    docs_path: Path = Path("sample_docs")
    source_base_url: str = ""
    chunk_tokens: int = Field(default=512, ge=32)
    chunk_overlap: int = Field(default=64, ge=0)

    # Retrieval
    search_mode: SearchMode = "hybrid"
    candidates: int = Field(default=40, ge=1, le=16384)
    top_n: int = Field(default=5, ge=1, le=50)
    min_rerank_score: float = Field(default=0.25, ge=0.0, le=1.0)
    max_question_chars: int = Field(default=4000, ge=16)

    # Generation
    llm_model: str = "gpt-4o-mini"
    llm_base_url: str = ""
    openai_api_key: str = Field(
        default="", validation_alias=AliasChoices("OPENAI_API_KEY", "RAGBOT_OPENAI_API_KEY")
    )
    llm_timeout_s: float = Field(default=60.0, gt=0)
    llm_max_retries: int = Field(default=3, ge=0, le=10)
    llm_temperature: float = Field(default=0.1, ge=0.0, le=2.0)

    _docsets: tuple[DocSet, ...] = PrivateAttr(default=())

    @field_validator("embed_dim", "config", "git_ssh_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("rerank_model")
    @classmethod
    def _normalise_none(cls, value: str) -> str:
        return "" if value.strip().lower() in {"", "none", "off", "false"} else value.strip()

    @model_validator(mode="after")
    def _check_overlap(self) -> Settings:
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError(
                f"RAGBOT_CHUNK_OVERLAP ({self.chunk_overlap}) must be smaller than "
                f"RAGBOT_CHUNK_TOKENS ({self.chunk_tokens})"
            )
        return self

    @model_validator(mode="after")
    def _read_docsets(self) -> Settings:
        if self.config is None:
            self._docsets = (
                default_docset(
                    docs_path=self.docs_path,
                    source_base_url=self.source_base_url,
                    collection=self.collection,
                ),
            )
        else:
            self._docsets = load_docsets(self.config, collection=self.collection)
        known = {d.name for d in self._docsets}
        for name in self.dm_docset_names:
            if name not in known:
                raise ConfigError(
                    f"RAGBOT_DM_DOCSETS names {name!r}, which is not a doc set "
                    f"(doc sets: {', '.join(sorted(known))})."
                )
        return self

    @property
    def docsets(self) -> tuple[DocSet, ...]:
        """The doc sets of ``RAGBOT_CONFIG``, or the one folder of ``RAGBOT_DOCS_PATH``."""
        return self._docsets

    @property
    def dm_docset_names(self) -> tuple[str, ...]:
        return tuple(n.strip() for n in self.dm_docsets.split(",") if n.strip())

    @property
    def reranking_enabled(self) -> bool:
        return bool(self.rerank_model)

    @property
    def llm_enabled(self) -> bool:
        """An LLM is used when an API key or an OpenAI-compatible base URL is set."""
        return bool(self.openai_api_key or self.llm_base_url)


def load_settings(**overrides: object) -> Settings:
    """Read :class:`Settings` from the environment (and ``.env``), then apply overrides."""
    return Settings(**overrides)  # type: ignore[arg-type]
