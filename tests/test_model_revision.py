"""Model identity: the revision an index records and refuses to mix, and Qwen3's
end-of-text token appended when an older tokenizer leaves it out.

Real tiny Qwen3 models (tests/model_factory.py), real Milvus Lite, and a real Hugging Face
cache layout (``refs/`` and ``snapshots/``) in a temporary folder, read offline.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from sentence_transformers import SentenceTransformer
from transformers import AutoTokenizer

from rag_core.components import Models
from rag_core.docset_stores import DocSetStores
from rag_core.docsets import DocSet
from rag_core.embedding import Qwen3Embedder, SentenceTransformerEmbedder, load_embedder
from rag_core.end_of_text import ENDOFTEXT, EndOfText
from rag_core.errors import IndexMismatchError, ModelLoadError
from rag_core.ingest.chunking import MarkdownChunker
from rag_core.ingest.indexer import Indexer
from rag_core.model_batching import batch_across_threads
from rag_core.model_revision import folder_revision, hub_revision
from rag_core.pipeline import RagPipeline
from rag_core.settings import Settings
from rag_core.store import MilvusStore
from rag_core.types import Embedder
from tests.fixtures.counting_embedder import CountingEmbedder
from tests.model_factory import build_qwen3_embedding

REPO = "test-org/tiny-embedding"
COMMIT_A = "a" * 40
COMMIT_B = "b" * 40
DOCS = {
    "intro.md": "# Intro\n\nMilvus stores vectors in collections.\n",
    "search.md": "# Search\n\nHybrid search fuses dense and BM25 results.\n",
}
TEXTS = [
    "What is Milvus?",
    "",
    "a",
    "Partitions split a collection so that a search can skip data it does not need; " * 4,
    "Hybrid search combines dense vectors with sparse BM25 vectors.",
]


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    root.mkdir()
    for name, text in DOCS.items():
        (root / name).write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def store(milvus_uri: str) -> Iterator[MilvusStore]:
    store = MilvusStore.connect(milvus_uri, collection="revision_test")
    yield store
    store.close()


@pytest.fixture(scope="module")
def retrained_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny embedding model with other weights (another seed): another snapshot."""
    return build_qwen3_embedding(tmp_path_factory.mktemp("retrained"), seed=1)


@pytest.fixture(scope="module")
def no_eos_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny embedding model (same vocabulary, same weights) with a tokenizer that does
    not end inputs with <|endoftext|>, as early Qwen3-Embedding snapshots had."""
    return build_qwen3_embedding(tmp_path_factory.mktemp("no-eos"), append_eos=False)


@pytest.fixture
def hub_cache(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tiny_embedding_path: Path,
    retrained_path: Path,
) -> Path:
    """An offline Hugging Face cache holding two snapshots of ``REPO``, main at A."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    repo = cache / f"models--{REPO.replace('/', '--')}"
    shutil.copytree(tiny_embedding_path, repo / "snapshots" / COMMIT_A)
    shutil.copytree(retrained_path, repo / "snapshots" / COMMIT_B)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT_A)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return repo


def move_main(repo: Path, commit: str) -> None:
    (repo / "refs" / "main").write_text(commit)


def indexer(store: MilvusStore, embedder: Embedder) -> Indexer:
    chunker = MarkdownChunker(embedder.count_tokens, max_tokens=96, overlap_tokens=8)
    return Indexer(store, embedder, chunker)


# -- the revision of a model's files --------------------------------------------------


def test_a_folder_revision_is_stable_wherever_the_folder_lies(tiny_embedding_path, tmp_path):
    copy = shutil.copytree(tiny_embedding_path, tmp_path / "elsewhere")
    revision = folder_revision(tiny_embedding_path)
    assert revision.startswith("sha256:") and len(revision) == len("sha256:") + 16
    assert folder_revision(copy) == revision


@pytest.mark.parametrize(
    ("name", "changes"),
    [
        ("tokenizer_config.json", True),
        ("tokenizer.json", True),
        ("1_Pooling/config.json", True),
        ("config_sentence_transformers.json", True),
        ("README.md", False),
        (".cache/huggingface/download/model.safetensors.metadata", False),
    ],
)
def test_a_folder_revision_follows_the_files_that_decide_vectors(
    tiny_embedding_path, tmp_path, name, changes
):
    copy = shutil.copytree(tiny_embedding_path, tmp_path / "copy")
    path = copy / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as edited:
        edited.write("\n")
    assert (folder_revision(copy) != folder_revision(tiny_embedding_path)) is changes


def test_fine_tuned_weights_of_the_same_shapes_change_the_revision(tiny_embedding_path, tmp_path):
    copy = shutil.copytree(tiny_embedding_path, tmp_path / "tuned")
    weights = load_file(copy / "model.safetensors")
    torch.manual_seed(1)
    save_file(
        {name: tensor + 1e-3 * torch.randn_like(tensor) for name, tensor in weights.items()},
        copy / "model.safetensors",
        metadata={"format": "pt"},
    )
    before = (tiny_embedding_path / "model.safetensors").stat().st_size
    assert (copy / "model.safetensors").stat().st_size == before  # only the values differ
    assert folder_revision(copy) != folder_revision(tiny_embedding_path)


def test_embedders_report_the_revision_of_their_folder(
    tiny_embedder, tiny_embedding_path, minilm_path
):
    minilm = SentenceTransformerEmbedder(str(minilm_path), device="cpu")
    assert tiny_embedder.revision == folder_revision(tiny_embedding_path)
    assert minilm.revision == folder_revision(minilm_path)
    shared = batch_across_threads(Models(tiny_embedder, None), callers=2)
    assert shared.embedder.revision == tiny_embedder.revision
    shared.close()


def test_a_hub_revision_is_the_commit_of_the_snapshot_main_points_to(hub_cache):
    assert hub_revision(REPO) == COMMIT_A
    move_main(hub_cache, COMMIT_B)
    assert hub_revision(REPO) == COMMIT_B
    assert hub_revision(REPO, revision=COMMIT_A) == COMMIT_A
    assert hub_revision("test-org/not-cached") == ""


def test_a_hub_model_loads_the_pinned_revision(hub_cache, tiny_embedder, retrained_path):
    move_main(hub_cache, COMMIT_B)
    latest = load_embedder(REPO, device="cpu", dtype="float32")
    pinned = load_embedder(REPO, device="cpu", dtype="float32", revision=COMMIT_A)
    assert (latest.revision, pinned.revision) == (COMMIT_B, COMMIT_A)
    np.testing.assert_allclose(
        pinned.embed_documents(TEXTS), tiny_embedder.embed_documents(TEXTS), atol=1e-6
    )
    retrained = Qwen3Embedder(str(retrained_path), device="cpu", dtype="float32")
    np.testing.assert_allclose(
        latest.embed_documents(TEXTS), retrained.embed_documents(TEXTS), atol=1e-6
    )


# -- an index refuses another revision of its model -------------------------------------


def test_another_snapshot_of_the_same_model_id_is_refused(hub_cache, store, docs):
    first = load_embedder(REPO, device="cpu", dtype="float32")
    built = indexer(store, first).index(docs)
    info = store.index_info()
    assert info is not None and info.embed_revision == COMMIT_A

    move_main(hub_cache, COMMIT_B)
    loaded = load_embedder(REPO, device="cpu", dtype="float32")
    newer = CountingEmbedder(loaded, revision=loaded.revision)  # records what it embeds
    assert newer.revision == COMMIT_B
    with pytest.raises(IndexMismatchError) as caught:
        indexer(store, newer).index(docs)
    message = str(caught.value)
    assert REPO in message and COMMIT_A in message and COMMIT_B in message
    assert "--recreate" in message and f"RAGBOT_EMBED_REVISION={COMMIT_A}" in message
    assert newer.texts == []  # nothing embedded, no vector reused
    with pytest.raises(IndexMismatchError, match=COMMIT_B):
        store.check_compatible(embed_model=REPO, dim=newer.dim, embed_revision=COMMIT_B)

    pinned = load_embedder(REPO, device="cpu", dtype="float32", revision=COMMIT_A)
    assert indexer(store, pinned).index(docs).version == built.version  # unchanged
    summary = indexer(store, newer).index(docs, recreate=True)
    info = store.index_info()
    assert info is not None and (info.version, info.embed_revision) == (
        summary.version,
        COMMIT_B,
    )
    assert summary.chunks_new == summary.chunks_total  # every vector is the new model's


def test_questions_are_refused_by_an_embedder_of_another_revision(milvus_uri, tiny_embedder, docs):
    stores = DocSetStores.connect(
        milvus_uri, [DocSet(name="docs", kind="folder", source="", collection="rev_docs")]
    )
    try:
        indexer(stores["docs"], tiny_embedder).index(docs)
        settings = Settings(_env_file=None, candidates=5, top_n=2)
        other = CountingEmbedder(tiny_embedder, revision="sha256:0123456789abcdef")
        with pytest.raises(IndexMismatchError, match="sha256:0123456789abcdef"):
            RagPipeline(settings, embedder=other, stores=stores).ask("What is Milvus?")
        answer = RagPipeline(settings, embedder=tiny_embedder, stores=stores).ask("What is Milvus?")
        assert answer.passages
    finally:
        stores.close()


def test_an_index_without_a_recorded_revision_keeps_serving(store, docs, tiny_embedder, caplog):
    legacy = CountingEmbedder(tiny_embedder, revision="")  # as built before revisions were recorded
    first = indexer(store, legacy).index(docs)
    info = store.index_info()
    assert info is not None and info.embed_revision == ""

    with caplog.at_level(logging.WARNING, logger="rag_core.store"):
        for _ in range(3):
            checked = store.check_compatible(
                embed_model=tiny_embedder.model_id,
                dim=tiny_embedder.dim,
                embed_revision=tiny_embedder.revision,
            )
            assert checked.version == first.version
    warnings = [r for r in caplog.records if "records no revision" in r.getMessage()]
    assert len(warnings) == 1 and first.version in warnings[0].getMessage()

    # A build reusing its vectors cannot vouch for them: the revision stays unknown.
    (docs / "search.md").write_text("# Search\n\nDense search only.\n", encoding="utf-8")
    current = CountingEmbedder(tiny_embedder, revision=tiny_embedder.revision)
    summary = indexer(store, current).index(docs)
    assert 0 < summary.chunks_unchanged < summary.chunks_total
    assert store.index_info().embed_revision == ""  # type: ignore[union-attr]
    indexer(store, current).index(docs, recreate=True)
    assert store.index_info().embed_revision == tiny_embedder.revision  # type: ignore[union-attr]


def test_an_embedder_that_cannot_tell_its_revision_is_served(store, docs, tiny_embedder):
    indexer(store, tiny_embedder).index(docs)
    info = store.check_compatible(
        embed_model=tiny_embedder.model_id, dim=tiny_embedder.dim, embed_revision=""
    )
    assert info.embed_revision == tiny_embedder.revision


# -- Qwen3's end-of-text token ------------------------------------------------------------


def test_the_probe_sees_which_tokenizer_appends_end_of_text(tiny_embedding_path, no_eos_path):
    with_eos = AutoTokenizer.from_pretrained(tiny_embedding_path)
    without = AutoTokenizer.from_pretrained(no_eos_path)
    eos = with_eos.convert_tokens_to_ids(ENDOFTEXT)
    assert with_eos.get_vocab() == without.get_vocab()
    assert with_eos("What is Milvus?")["input_ids"][-1] == eos
    assert without("What is Milvus?")["input_ids"][-1] != eos
    assert EndOfText.of(with_eos, model="a") == EndOfText(eos, appended_by_tokenizer=True)
    assert EndOfText.of(without, model="b") == EndOfText(eos, appended_by_tokenizer=False)


@pytest.mark.parametrize("max_length", [1, 2, 8, 8192])
def test_both_tokenizers_give_the_same_ids(tiny_embedding_path, no_eos_path, max_length):
    with_eos = AutoTokenizer.from_pretrained(tiny_embedding_path)
    without = AutoTokenizer.from_pretrained(no_eos_path)
    ids = EndOfText.of(with_eos, model="a").encode(with_eos, TEXTS, max_length=max_length)
    appended = EndOfText.of(without, model="b").encode(without, TEXTS, max_length=max_length)
    eos = with_eos.convert_tokens_to_ids(ENDOFTEXT)
    assert appended == ids
    assert all(row[-1] == eos and 1 <= len(row) <= max_length for row in ids)


def test_a_tokenizer_without_end_of_text_gets_it_appended(tiny_embedder, no_eos_path):
    embedder = Qwen3Embedder(str(no_eos_path), device="cpu", dtype="float32")
    np.testing.assert_allclose(
        embedder.embed_documents(TEXTS), tiny_embedder.embed_documents(TEXTS), atol=1e-6
    )
    np.testing.assert_allclose(
        embedder.embed_queries(TEXTS), tiny_embedder.embed_queries(TEXTS), atol=1e-6
    )


@pytest.mark.parametrize("max_length", [8, 32768])
def test_vectors_match_sentence_transformers_with_the_fixed_tokenizer(
    tiny_embedding_path, no_eos_path, max_length
):
    fixed = SentenceTransformer(
        str(tiny_embedding_path), device="cpu", model_kwargs={"dtype": torch.float32}
    )
    unfixed = SentenceTransformer(
        str(no_eos_path), device="cpu", model_kwargs={"dtype": torch.float32}
    )
    fixed.max_seq_length = unfixed.max_seq_length = max_length
    expected = fixed.encode(TEXTS, normalize_embeddings=True)
    for folder in (tiny_embedding_path, no_eos_path):
        embedder = Qwen3Embedder(str(folder), device="cpu", dtype="float32", max_length=max_length)
        np.testing.assert_allclose(embedder.embed_documents(TEXTS), expected, atol=1e-5)
    # Without the appended token the vectors would be others: the check above can fail.
    assert not np.allclose(unfixed.encode(TEXTS, normalize_embeddings=True), expected, atol=1e-3)


def test_a_tokenizer_without_the_token_is_not_a_qwen3_embedding_one(minilm_path):
    bert = AutoTokenizer.from_pretrained(minilm_path)
    with pytest.raises(ModelLoadError, match=r"no <\|endoftext\|> token"):
        EndOfText.of(bert, model="minilm")
