"""``bench_rerank.py --concurrent N``: N questions reranked at once, batched across them,
against one question at a time.

A worker answering N questions at once sends their reranking to one model thread
(:mod:`rag_core.model_batching`), which scores every question's candidates in the same
token-bounded forward passes (a call holds as many questions as fill ``--batch-tokens``).
Here N threads each rerank a question of their own with
``--candidates`` passages (different passages for each question), released together, and
the wall time until the last has its scores is compared with scoring the same questions one
after another on the same :class:`~rag_core.reranking.Qwen3Reranker`. Times are medians of
``--repeats`` runs after ``--warmup`` (the ways take turns), with the mean time until a
question has its scores; scores of both ways are compared. On CUDA the
compute rate is estimated as 2 × (non-embedding parameters) FLOPs per prompt token run
(attention not counted, the prompt's shared opening not run), and given ``--peak-tflops``
(the card's dense bf16 peak; 989 for an H100/H200) shown as a share of it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--concurrent",
        type=int,
        default=0,
        help="N questions reranked at once, batched across them, against one at a time",
    )
    parser.add_argument("--batch-wait-ms", type=float, default=5.0, help="with --concurrent")
    parser.add_argument("--peak-tflops", type=float, default=0.0, help="with --concurrent")


def load_questions(path: Path, first: int, count: int) -> list[str]:
    lines = path.resolve().read_text(encoding="utf-8").splitlines()
    chosen = [lines[(first + n) % len(lines)] for n in range(count)]
    return [str(json.loads(line)["question"]) for line in chosen]


def run_concurrent(
    args: argparse.Namespace,
    model_dir: Path,
    load_candidates: Any,
) -> None:
    """Print the table of ``--concurrent N`` (see the module docstring)."""
    import torch

    from rag_core.devices import resolve_device, torch_dtype_for
    from rag_core.model_batching import BatchingReranker, ModelThread
    from rag_core.reranking import Qwen3Reranker

    count, per_question = args.concurrent, args.candidates
    questions = load_questions(args.questions, args.question_index, count)
    wanted = argparse.Namespace(**{**vars(args), "candidates": count * per_question})
    passages = load_candidates(wanted, model_dir)
    work = [
        (q, [passages[(n * per_question + i) % len(passages)] for i in range(per_question)])
        for n, q in enumerate(questions)
    ]
    device = resolve_device(args.device)
    dtype = "auto" if args.precision == "all" else args.precision
    reranker = Qwen3Reranker(
        str(model_dir), device=device, batch_tokens=args.batch_tokens, dtype=dtype
    )
    thread = ModelThread(wait_ms=args.batch_wait_ms, callers=count)
    batching = BatchingReranker(reranker, thread, batch_tokens=args.batch_tokens)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def one_at_a_time() -> Run:
        sync()
        started, scores, done = time.perf_counter(), [], []
        for query, documents in work:
            scores.append(reranker.score(query, documents))
            sync()
            done.append(time.perf_counter() - started)
        return Run(done[-1], statistics.mean(done), scores)

    def together() -> Run:
        sync()
        started = time.perf_counter()
        finished = _at_once([lambda q=q, d=docs: batching.score(q, d) for q, docs in work])
        sync()
        done = [at - started for at, _ in finished]
        return Run(max(done), statistics.mean(done), [scores for _, scores in finished])

    ways = {"one question at a time": one_at_a_time, f"{count} batched across questions": together}
    try:
        results = _alternated(ways, args)
    finally:
        thread.close()
    tokens = sum(len(row) for q, docs in work for row in reranker.build_inputs(q, docs))
    base = getattr(reranker, "_base", None)  # the decoder, for the FLOP estimate on CUDA
    params = sum(p.numel() for n, p in base.named_parameters() if "embed" not in n) if base else 0
    _print_table(args, device, str(torch_dtype_for(device, dtype)), tokens, params, results)


@dataclass(frozen=True, slots=True)
class Run:
    wall_s: float  # until the last question had its scores
    mean_s: float  # until a question had its scores, on average
    scores: list[list[float]]


def _at_once(calls: list[Any]) -> list[tuple[float, Any]]:
    """Each call on a thread of its own, released together: (when it returned, result)."""
    results: list[Any] = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(index: int) -> None:
        start.wait()
        value = calls[index]()
        results[index] = (time.perf_counter(), value)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for worker in threads:
        worker.start()
    for worker in threads:
        worker.join()
    return results


def _alternated(ways: dict[str, Any], args: argparse.Namespace) -> dict[str, Run]:
    """Per way, the run of median wall time among ``--repeats`` after ``--warmup``. The
    ways take turns, so a busy machine slows each alike."""
    runs: dict[str, list[Run]] = {name: [] for name in ways}
    for number in range(args.warmup + args.repeats):
        for name, way in ways.items():
            run = way()
            if number >= args.warmup:
                runs[name].append(run)
    return {
        name: sorted(done, key=lambda r: r.wall_s)[len(done) // 2] for name, done in runs.items()
    }


def _print_table(
    args: argparse.Namespace,
    device: str,
    dtype: str,
    tokens: int,
    params: int,
    results: dict[str, Run],
) -> None:
    base = next(iter(results.values()))
    print(
        f"device={device} dtype={dtype} layers={args.layers} hidden={args.hidden} "
        f"questions={args.concurrent} x {args.candidates} candidates, {tokens} prompt tokens; "
        f"batch tokens {args.batch_tokens}, wait {args.batch_wait_ms:g} ms; "
        f"median of {args.repeats} run(s) after {args.warmup} warm-up"
    )
    header = (
        f"{'way':<34} {'wall s':>8} {'mean s':>8} {'tokens/s':>10} {'speedup':>8} "
        f"{'max |diff|':>11}"
    )
    cuda = device.startswith("cuda")
    print(header + (f" {'TFLOP/s':>8} {'of peak':>8}" if cuda else ""))
    for name, run in results.items():
        diff = max(
            abs(a - b)
            for mine, theirs in zip(run.scores, base.scores, strict=True)
            for a, b in zip(mine, theirs, strict=True)
        )
        seconds = run.wall_s
        line = (
            f"{name:<34} {seconds:>8.3f} {run.mean_s:>8.3f} {tokens / seconds:>10.0f} "
            f"{base.wall_s / seconds:>7.2f}x {diff:>11.2e}"
        )
        if cuda:
            tflops = 2 * params * tokens / seconds / 1e12  # 0 when the decoder was not found
            share = f"{tflops / args.peak_tflops:.1%}" if args.peak_tflops else "-"
            line += f" {tflops:>8.1f} {share:>8}"
        print(line)
