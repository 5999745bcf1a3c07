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
from rag_core.sources.git_credentials import GitTokens

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
    embed_revision: str = Field(
        default="",
        description="Hub branch, tag or commit of the embedder; empty: the default branch.",
    )
    embed_dim: int | None = Field(
        default=None, ge=8, description="Matryoshka output size; empty keeps the model's own."
    )
    embed_instruction: str = DEFAULT_QUERY_INSTRUCTION
    embed_batch_size: int = Field(
        default=256, ge=1, description="Most texts per embedding forward pass."
    )
    embed_batch_tokens: int = Field(
        default=16384, ge=256, description="Padded tokens per embedding forward pass."
    )
    embed_max_length: int = Field(default=8192, ge=16)
    rerank_model: str = DEFAULT_RERANK_MODEL
    rerank_instruction: str = DEFAULT_RERANK_INSTRUCTION
    rerank_max_length: int = Field(default=8192, ge=64)
    rerank_batch_tokens: int = Field(
        default=16384, ge=256, description="Padded tokens per reranker forward pass."
    )
    device: DeviceName = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    batch_wait_ms: float = Field(
        default=5.0,
        ge=0,
        le=1000,
        description="How long a model call waits for other questions' calls to join its batch.",
    )

    # Milvus
    milvus_uri: str = "./ragbot_data/milvus.db"
    milvus_token: str = ""
    collection: str = Field(default="ragbot_docs", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,200}$")
    index_check_s: float = Field(
        default=30.0,
        ge=0,
        description="Seconds a question trusts the last check of what is published; 0: check "
        "every question.",
    )

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
    bm25_analyzer: Literal["auto", "english", "english_stop", "standard"] = Field(
        default="auto",
        description="BM25 analyzer of new builds; auto: for English docs english where "
        "Milvus has it, else english_stop; standard for other languages.",
    )

    # Retrieval
    search_mode: SearchMode = "hybrid"
    candidates: int = Field(default=40, ge=1, le=16384)
    top_n: int = Field(default=5, ge=1, le=50)
    min_rerank_score: float = Field(default=0.25, ge=0.0, le=1.0)
    max_question_chars: int = Field(default=4000, ge=16)
    rrf_k: float = Field(
        default=60.0, gt=0, le=16384, description="Reciprocal rank fusion k: higher flattens ranks."
    )
    dense_weight: float = Field(default=1.0, ge=0, description="Weight of the dense leg in RRF.")
    bm25_weight: float = Field(default=0.3, ge=0, description="Weight of the BM25 leg in RRF.")
    fusion_depth: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Each hybrid leg fetches this many times the candidates before fusing.",
    )
    foreign_bm25_weight: float | None = Field(
        default=None,
        ge=0,
        description="BM25 leg weight for a question not in the docs' language that was not "
        "translated (no chat model); unset (auto): see rag_core.query_plan.foreign_weight.",
    )
    docs_language: str = Field(
        default="English",
        min_length=2,
        description="Language the docs are written in; questions in others are translated "
        "to it for retrieval when a chat model is set.",
    )

    # Generation
    llm_model: str = "gpt-4o-mini"
    llm_base_url: str = ""
    openai_api_key: str = Field(
        default="", validation_alias=AliasChoices("OPENAI_API_KEY", "RAGBOT_OPENAI_API_KEY")
    )
    llm_timeout_s: float = Field(default=60.0, gt=0)
    llm_max_retries: int = Field(default=3, ge=0, le=10)
    llm_temperature: float = Field(default=0.1, ge=0.0, le=2.0)
    translate_questions: bool = Field(
        default=True,
        description="With a chat model, search a question not in the docs' language with "
        "its translation too (one short, cached call).",
    )

    _docsets: tuple[DocSet, ...] = PrivateAttr(default=())
    _git_tokens: GitTokens = PrivateAttr(default=GitTokens())

    @field_validator("embed_dim", "config", "git_ssh_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("foreign_bm25_weight", mode="before")
    @classmethod
    def _auto_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and value.strip().lower() in ("", "auto") else value

    @field_validator("rerank_model")
    @classmethod
    def _normalise_none(cls, value: str) -> str:
        return "" if value.strip().lower() in {"", "none", "off", "false"} else value.strip()

    @model_validator(mode="after")
    def _check_weights(self) -> Settings:
        if not (self.dense_weight or self.bm25_weight):
            raise ValueError("RAGBOT_DENSE_WEIGHT and RAGBOT_BM25_WEIGHT cannot both be 0")
        if not (self.dense_weight or self.foreign_bm25_weight is None or self.foreign_bm25_weight):
            raise ValueError("RAGBOT_DENSE_WEIGHT and RAGBOT_FOREIGN_BM25_WEIGHT cannot both be 0")
        return self

    @model_validator(mode="after")
    def _check_overlap(self) -> Settings:
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError(
                f"RAGBOT_CHUNK_OVERLAP ({self.chunk_overlap}) must be smaller than "
                f"RAGBOT_CHUNK_TOKENS ({self.chunk_tokens})"
            )
        return self

    @model_validator(mode="after")
    def _read_git_tokens(self) -> Settings:
        self._git_tokens = GitTokens.parse(self.git_token.get_secret_value())
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
    def git_tokens(self) -> GitTokens:
        """``RAGBOT_GIT_TOKEN``, read per host (see :mod:`rag_core.sources.git_credentials`)."""
        return self._git_tokens

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
