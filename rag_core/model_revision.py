"""Which files an embedding model's vectors come from, as one short string.

Two loads of the "same" model id can give different vectors: the hub repository gets a
new snapshot (a fixed tokenizer, retrained weights), or a local folder is overwritten
with another model. An index records the revision it was built with, so that a later
load of different files is refused before its vectors mix with the stored ones.

huggingface_hub is imported inside the functions, so importing this module costs nothing.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from rag_core.devices import ModelSource

log = logging.getLogger(__name__)

FOLDER_PREFIX = "sha256:"
"""Starts the revision of a local folder; a hub revision is the bare commit hash."""

CONFIG_SUFFIXES = frozenset({".json", ".model", ".tiktoken", ".py"})
"""Configuration, tokenizer and custom-code files: hashed whole (they are small)."""

VOCABULARY_WORDS = ("vocab", "merges")
"""``.txt`` files whose name holds one of these are tokenizer files, hashed whole."""

WEIGHT_SUFFIXES = frozenset(
    {".safetensors", ".bin", ".pt", ".pth", ".onnx", ".h5", ".msgpack", ".gguf"}
)
"""Weight files: too large to hash whole at every start-up, so fingerprinted (see
:func:`weights_fingerprint`)."""

SAMPLE_BYTES = 64 * 1024
SAMPLES = 4


def model_revision(source: ModelSource) -> str:
    """The revision of the model at ``source``, read after it was loaded.

    A hub id gives the commit hash of the snapshot the Hugging Face cache resolves
    ``source.revision`` (the default branch when None) to; a local folder gives
    ``sha256:`` and 16 hex digits of :func:`folder_revision`. ``""`` when the cache
    does not hold the snapshot (the load went elsewhere), which an index treats as
    unknown.
    """
    location = Path(source.location).expanduser()
    if location.is_dir():
        return folder_revision(location)
    return hub_revision(source.location, revision=source.revision)


def hub_revision(repo_id: str, *, revision: str | None = None) -> str:
    """The commit hash ``repo_id`` at ``revision`` resolves to in the local hub cache.

    ``try_to_load_from_cache`` follows ``refs/{revision}`` to
    ``snapshots/{commit}/config.json``, the file every load reads first; it never
    touches the network. Call it after the load, which updates the ref when it
    downloads a newer snapshot.
    """
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    if not isinstance(cached, str):
        log.warning("model %s: no cached snapshot found; its revision is unknown", repo_id)
        return ""
    snapshot = Path(cached).parent
    if snapshot.parent.name != "snapshots":
        log.warning("model %s: %s is not in a hub snapshot; revision unknown", repo_id, cached)
        return ""
    return snapshot.name


def folder_revision(folder: Path) -> str:
    """A digest of everything in ``folder`` that decides the vectors.

    Configuration and tokenizer files (``config.json``, ``tokenizer*.json``, vocabulary
    and merges files, the sentence-transformers modules such as ``1_Pooling/config.json``)
    are hashed whole. Weight files are fingerprinted by name, size and a few sampled
    blocks (:func:`weights_fingerprint`). Hidden folders (``.git``, ``.cache``) and
    documentation are left out, so editing a model card changes nothing.
    """
    digest = hashlib.sha256()
    for path in sorted(_model_files(folder)):
        relative = path.relative_to(folder).as_posix()
        if path.suffix.lower() in WEIGHT_SUFFIXES:
            part = weights_fingerprint(path)
        else:
            part = hashlib.sha256(path.read_bytes()).digest()
        digest.update(relative.encode("utf-8") + b"\0" + part)
    return f"{FOLDER_PREFIX}{digest.hexdigest()[:16]}"


def weights_fingerprint(path: Path) -> bytes:
    """The size of ``path`` and ``SAMPLES`` blocks of ``SAMPLE_BYTES`` spread over it.

    Hashing the weights whole would read the model twice at every start-up (about 2 s
    for 0.6B parameters in bf16, 20 s for 8B). Any retraining, fine-tune or change
    of precision rewrites every tensor, and a safetensors file opens with a header
    naming each tensor's dtype, shape and offsets, so a few blocks, the first among
    them, tell two models apart at the cost of a few reads. What it can miss is an
    edit confined to tensors between the samples, which no training run makes.
    """
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode("ascii"))
    last = max(size - SAMPLE_BYTES, 0)
    offsets = sorted({last * i // (SAMPLES - 1) for i in range(SAMPLES)})
    with path.open("rb") as weights:
        for offset in offsets:
            weights.seek(offset)
            digest.update(weights.read(SAMPLE_BYTES))
    return digest.digest()


def _model_files(folder: Path) -> list[Path]:
    found: list[Path] = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        suffix = path.suffix.lower()
        vocabulary = suffix == ".txt" and any(w in path.name.lower() for w in VOCABULARY_WORDS)
        if suffix in CONFIG_SUFFIXES or suffix in WEIGHT_SUFFIXES or vocabulary:
            found.append(path)
    return found


def model_identity(model_id: str, revision: str) -> str:
    """``model_id@revision`` (``model_id`` alone when the revision is unknown): what
    caches of a model's outputs are keyed by."""
    return f"{model_id}@{revision}" if revision else model_id


def revision_mismatch(collection: str, model: str, indexed: str, loaded: str) -> str:
    """The message refusing to mix vectors of two revisions of ``model``: both named,
    with the two ways out."""
    if indexed.startswith(FOLDER_PREFIX):
        pin = f"put back the files of {model} the index was built with"
    else:
        pin = f"set RAGBOT_EMBED_REVISION={indexed} to load the snapshot it was built with"
    return (
        f"Collection {collection} was indexed with {model} at revision {indexed}, but the "
        f"embedder now loads revision {loaded} of it, whose vectors do not match the stored "
        f"ones; re-index with `ragbot index PATH --recreate`, or {pin}."
    )
