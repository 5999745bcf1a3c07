"""Load test of the Slack bot: N concurrent mentions through the real HTTP endpoint.

    .venv/bin/python bench/bench_load.py [--n 200] [--workers 2] [--worker-concurrency 4]
        [--concurrency 50] [--repeat 0.25] [--llm-delay 0] [--tokens-per-s 50] [--answer-tokens 120]
        [--chat-delay S]
        [--no-stream] [--spacing 0] [--timeout 300] [--stalled 0] [--logs DIR]
        [--device cpu|cuda] [--models tiny|qwen3-0.6b] [--model-dir DIR]

Starts everything as it runs in production, on this machine: the Slack Web API and
OpenAI stand-ins (loopback HTTP servers of the test suite), Redis (the local one at
``--redis``, under a prefix of its own, deleted afterwards), a ``milvus_lite server``
process, random-weight Qwen3 embedding and reranker models (tiny ones, or with
``--models qwen3-0.6b`` the size and tokenizer of the 0.6B models production runs, on
``--device``), ``ragbot serve --http`` and ``--workers`` ``ragbot worker`` processes, each
answering ``--worker-concurrency`` questions at once (``RAGBOT_WORKER_CONCURRENCY``).
It indexes a small corpus, fires ``--n`` signed ``app_mention`` events from
``--concurrency`` client threads (distinct questions, a ``--repeat`` share of them asked
again so the answer cache is exercised), then waits until every mention has its answer
in the stand-in or ``--timeout`` seconds pass.

With ``--stalled N`` the burst runs while N other connections to the app sit open
without finishing a request (nothing sent, half the headers, or a promised body that
never comes), as slow or hostile clients leave them.

The chat model writes replies of ``--answer-tokens`` words at ``--tokens-per-s`` after
``--llm-delay`` seconds, or in ``--chat-delay`` seconds in all, and the bot streams them
into Slack (``--no-stream``: answers posted whole); ``--spacing`` spreads
the mentions out in time (0: all at once). Ack latency is the HTTP round trip of
each event (Slack wants it under 3 s); first text runs from sending the event to the
stand-in receiving the answer's ``chat.startStream``; answer latency from sending the
event to the stand-in holding the finished reply (polled every 20 ms); throughput is the
mentions answered per second of the whole burst. Each mention is
judged as in the fault suite (:func:`tests.fixtures.faults.judge`): answered once (one
bot message carrying the answer), told in words (one message saying why not),
duplicated (more than one bot message in its thread) or lost (no final reply); errors
are non-200 acks, replies without sources and tracebacks in the processes' logs.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.bot_stack import (
    BotProcesses,
    MilvusLiteServer,
    bot_settings,
    bot_variables,
    index_docs,
    process_env,
    write_docs,
)
from tests.fixtures.fault_runs import ANSWERED, DUPLICATED, LOST, TOLD, judge
from tests.fixtures.fault_scenarios import stalled
from tests.fixtures.openai_server import OpenAIStubServer, default_reply
from tests.fixtures.redis_db import delete_prefix
from tests.fixtures.slack_api import BOT_USER_ID, SlackApiStandIn
from tests.fixtures.slack_events import Sent, SlackEvents

ACK_TARGET_S = 0.300
TOPICS = (
    "connect to Milvus Lite from Python",
    "install Milvus Lite",
    "fuse dense and BM25 results",
    "score documents with a reranker",
    "upgrade a Helm release",
    "size memory limits per node type",
    "split query, data and index nodes",
    "restart after changing replica counts",
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="mentions to send")
    parser.add_argument("--workers", type=int, default=2, help="ragbot worker processes")
    parser.add_argument(
        "--worker-concurrency", type=int, default=4, help="questions each worker answers at once"
    )
    parser.add_argument("--concurrency", type=int, default=50, help="client threads")
    parser.add_argument("--repeat", type=float, default=0.25, help="share of repeated questions")
    parser.add_argument("--llm-delay", type=float, default=0.0, help="chat model seconds/reply")
    parser.add_argument("--tokens-per-s", type=float, default=50.0, help="chat model stream rate")
    parser.add_argument(
        "--chat-delay", type=float, default=None, help="chat model seconds per reply, in all"
    )
    parser.add_argument("--no-stream", action="store_true", help="post answers whole")
    parser.add_argument("--answer-tokens", type=int, default=120, help="words per model reply")
    parser.add_argument("--spacing", type=float, default=0.0, help="seconds between mentions")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for answers")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="Redis to use")
    parser.add_argument("--stalled", type=int, default=0, help="stalled connections held open")
    parser.add_argument("--device", default="cpu", help="the workers' models: cpu, cuda, auto")
    parser.add_argument(
        "--models",
        choices=("tiny", "qwen3-0.6b"),
        default="tiny",
        help="random models: tiny, or shaped like the production 0.6B ones",
    )
    parser.add_argument("--model-dir", type=Path, help="reuse (or keep) the built models here")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--logs", type=Path, default=None, help="copy the processes' logs here")
    return parser.parse_args(argv)


def questions(n: int, repeat: float, rng: random.Random) -> list[str]:
    """``n`` questions; about ``repeat`` of them repeat an earlier one word for word."""
    asked: list[str] = []
    for number in range(n):
        if asked and rng.random() < repeat:
            asked.append(rng.choice(asked))
        else:
            asked.append(f"How do I {TOPICS[number % len(TOPICS)]}? (case {number})")
    return asked


@dataclass(slots=True)
class Outcome:
    sent: Sent
    question: str
    sent_at: float  # time.monotonic(), the same clock in every process of this machine
    answered_at: float | None = None
    text: str = ""
    verdict: str = LOST


def send_all(
    url: str, plan: list[tuple[str, str, str]], concurrency: int, spacing_s: float = 0.0
) -> list[Outcome]:
    """POST one mention per ``(ts, user, question)`` from ``concurrency`` threads, the
    n-th no sooner than ``n * spacing_s`` seconds after the first.

    Runs in a process of its own, as Slack's servers are not in the app's or the Slack
    stand-in's process: the latencies measured are the app's, not this benchmark's.
    """
    events = SlackEvents(url)
    begin = time.monotonic()

    def one(item: tuple[int, tuple[str, str, str]]) -> Outcome:
        number, (ts, user, question) = item
        time.sleep(max(0.0, begin + number * spacing_s - time.monotonic()))
        started = time.monotonic()
        return Outcome(events.mention(question, user=user, ts=ts), question, started)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, enumerate(plan)))


def long_reply(request: dict[str, Any], *, tokens: int) -> str:
    """The stand-in's default reply (the question and [1], [2]) grown to about ``tokens``
    words, as long as a real answer."""
    head = default_reply(request)
    filler = "The second source [2] explains the settings that matter here in more detail."
    words = head.split()
    while len(words) < tokens:
        words += filler.split()
    return " ".join(words[: max(tokens, len(head.split()))])


def fire(
    url: str,
    stand_in: SlackApiStandIn,
    asked: list[str],
    concurrency: int,
    spacing_s: float = 0.0,
) -> list[Outcome]:
    """Store the users' messages in the stand-in (as Slack would have them), then send
    their events from a separate process; returns what each send got back."""
    events = SlackEvents(url)
    plan = []
    for question in asked:
        ts, user = events.new_ts(), f"U{uuid.uuid4().hex[:10].upper()}"
        stand_in.seed_message("C1", ts, f"<@{BOT_USER_ID}> {question}", user=user)
        plan.append((ts, user, question))
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as client:
        return client.submit(send_all, url, plan, concurrency, spacing_s).result()


def wait_for_answers(stand_in: SlackApiStandIn, outcomes: list[Outcome], timeout_s: float) -> None:
    """Poll until every mention has a final reply; records when each one arrived: when
    Slack received the call that finished it (mentions may still be arriving while
    earlier ones are answered)."""
    deadline = time.monotonic() + timeout_s
    waiting = list(outcomes)
    while waiting and time.monotonic() < deadline:
        still = []
        for outcome in waiting:
            verdict = judge(stand_in, outcome.sent, outcome.question)
            if verdict.outcome == LOST:
                still.append(outcome)
            else:
                outcome.answered_at = finished_at(stand_in, outcome.sent)
                outcome.text = (verdict.texts or [""])[0]
        waiting = still
        time.sleep(0.02)


def finished_at(stand_in: SlackApiStandIn, sent: Sent) -> float:
    """When the stand-in received the last successful post or update of the bot's reply
    in ``sent``'s thread."""
    replies = {m["ts"] for m in stand_in.thread(sent.channel, sent.ts) if m.get("bot_id")}
    times = [
        call.at
        for call in stand_in.calls
        if call.status == 200
        and call.args.get("channel") == sent.channel
        and (
            (call.method == "chat.postMessage" and call.args.get("thread_ts") == sent.ts)
            or (call.method == "chat.update" and call.args.get("ts") in replies)
        )
    ]
    return max(times, default=time.monotonic())


def judge_all(stand_in: SlackApiStandIn, outcomes: list[Outcome]) -> None:
    """The final verdict of each mention, once late duplicates had time to show up."""
    for outcome in outcomes:
        outcome.verdict = judge(stand_in, outcome.sent, outcome.question).outcome


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def server_acks(app_url: str) -> tuple[float, float, float]:
    """From the app's own ``ragbot_ack_seconds`` histogram: requests, their mean time and
    how many took at most :data:`ACK_TARGET_S` (the bucket of that bound), as the app
    measured them, without the load generator's own queueing."""
    with urllib.request.urlopen(f"{app_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {
        (sample.name, sample.labels.get("le", "")): sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "ragbot_ack_seconds"
        for sample in family.samples
    }
    count = samples[("ragbot_ack_seconds_count", "")]
    mean = samples[("ragbot_ack_seconds_sum", "")] / count if count else float("nan")
    return count, mean, samples[("ragbot_ack_seconds_bucket", str(ACK_TARGET_S))]


def report(
    args: argparse.Namespace,
    outcomes: list[Outcome],
    stand_in: SlackApiStandIn,
    llm_requests: int,
    tracebacks: int,
    seconds: float,
    acked_by_app: tuple[float, float, float],
) -> str:
    acks = [o.sent.ack.seconds for o in outcomes]
    starts = {c.args.get("thread_ts"): c.at for c in stand_in.calls_for("chat.startStream")}
    firsts = [starts[o.sent.ts] - o.sent_at for o in outcomes if o.sent.ts in starts]
    answered = [o for o in outcomes if o.answered_at is not None]
    waits = [o.answered_at - o.sent_at for o in answered if o.answered_at is not None]
    verdicts = [o.verdict for o in outcomes]
    bad_acks = sum(1 for o in outcomes if o.sent.ack.status != 200)
    unsourced = sum(1 for o in outcomes if o.verdict == ANSWERED and "Sources: [1]" not in o.text)
    rows = [
        ("ack latency p50", f"{statistics.median(acks) * 1000:.1f} ms"),
        ("ack latency p99", f"{percentile(acks, 0.99) * 1000:.1f} ms"),
        ("ack latency max", f"{max(acks) * 1000:.1f} ms"),
        ("acks under 300 ms", f"{sum(1 for a in acks if a < ACK_TARGET_S)}/{len(acks)}"),
        ("  as the app measured them", f"{acked_by_app[2]:.0f}/{acked_by_app[0]:.0f}"),
        ("  app's mean ack time", f"{acked_by_app[1] * 1000:.1f} ms"),
        ("first streamed text p50", f"{statistics.median(firsts):.2f} s" if firsts else "-"),
        ("first streamed text p99", f"{percentile(firsts, 0.99):.2f} s" if firsts else "-"),
        ("  answers streamed", f"{len(firsts)}/{len(outcomes)} (the rest: cache, posted whole)"),
        ("answer latency p50", f"{statistics.median(waits):.2f} s" if waits else "-"),
        ("answer latency p99", f"{percentile(waits, 0.99):.2f} s" if waits else "-"),
        ("throughput", f"{len(answered) / seconds:.2f} questions/s"),
        ("answered once", f"{verdicts.count(ANSWERED)}/{len(outcomes)}"),
        ("told in words", str(verdicts.count(TOLD))),
        ("duplicates", str(verdicts.count(DUPLICATED))),
        ("lost", str(verdicts.count(LOST))),
        ("errors", f"{bad_acks + unsourced + tracebacks}"),
        ("  non-200 acks", str(bad_acks)),
        ("  replies without sources", str(unsourced)),
        ("  tracebacks in logs", str(tracebacks)),
        ("chat model requests", f"{llm_requests} (the rest came from the answer cache)"),
        ("wall time", f"{seconds:.1f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    title = (
        f"ragbot load: {args.n} mentions, {args.concurrency} concurrent, {args.workers} "
        f"workers × {args.worker_concurrency} at once, {args.repeat:.0%} repeated, "
        f"chat model {chat_model(args)}, "
        f"{'no streaming' if args.no_stream else f'streaming at {args.tokens_per_s:g} tokens/s'}"
        f", {args.stalled} stalled connections; {args.models} models on {args.device}"
    )
    lines = [title, f"{'metric':<{width}}  value", f"{'-' * width}  -----"]
    return "\n".join([*lines, *(f"{name:<{width}}  {value}" for name, value in rows)])


def chat_model(args: argparse.Namespace) -> str:
    """How long the stand-in chat model takes, in words."""
    if args.chat_delay is not None:
        return f"{args.chat_delay:g} s per reply"
    return f"delay {args.llm_delay:g} s + {args.answer_tokens} tokens at {args.tokens_per_s:g}/s"


def build_models(args: argparse.Namespace, scratch: Path) -> tuple[Path, Path]:
    """The embedding and reranker folders of ``--models``, built unless ``--model-dir``
    already holds them."""
    from tests import model_factory

    builders = {
        "tiny": (model_factory.build_qwen3_embedding, model_factory.build_qwen3_reranker),
        "qwen3-0.6b": (
            model_factory.build_qwen3_0_6b_embedding,
            model_factory.build_qwen3_0_6b_reranker,
        ),
    }[args.models]
    root = args.model_dir or scratch
    folders = (root / f"embedding-{args.models}", root / f"reranker-{args.models}")
    for build, folder in zip(builders, folders, strict=True):
        if not (folder / "config.json").is_file():
            build(folder)
    return folders


def start_bot(args: argparse.Namespace, scratch: Path, stand_in: SlackApiStandIn, llm_url: str):
    embed_model, rerank_model = build_models(args, scratch)
    milvus = MilvusLiteServer(scratch / "milvus", log_path=scratch / "milvus.log")
    milvus.start()
    variables = bot_variables(
        slack_api_url=stand_in.base_url,
        llm_base_url=llm_url,
        milvus_uri=milvus.uri,
        embed_model=embed_model,
        rerank_model=rerank_model,
        docs=write_docs(scratch / "docs"),
        redis_url=args.redis,
        redis_prefix=f"ragbot-bench:{uuid.uuid4().hex[:10]}:",
        metrics_port=0,  # several workers on one machine: no fixed metrics port
        stream_answers=not args.no_stream,
        device=args.device,
        worker_concurrency=args.worker_concurrency,
    )
    processes = BotProcesses(process_env(variables), log_dir=scratch, cwd=scratch)
    processes.start_app()
    for number in range(1, args.workers + 1):
        processes.start_worker(f"w{number}")
    print(index_docs(bot_settings(variables)), file=sys.stderr)
    processes.wait_ready()
    return milvus, processes, variables


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.chat_delay is not None:  # the whole reply takes that long, streamed or not
        args.llm_delay, args.tokens_per_s = 0.0, args.answer_tokens / max(args.chat_delay, 1e-3)
    stand_in = SlackApiStandIn().start()
    llm = OpenAIStubServer()
    llm.start()
    if args.llm_delay > 0:
        llm.delay(args.llm_delay, times=None)
    llm.stream_rate(args.tokens_per_s)
    llm.reply = partial(long_reply, tokens=args.answer_tokens)
    with tempfile.TemporaryDirectory(prefix="ragbot-load-") as folder:
        scratch = Path(folder)
        milvus, processes, variables = start_bot(args, scratch, stand_in, llm.base_url)
        try:
            stand_in.reset()
            asked = questions(args.n, args.repeat, random.Random(args.seed))
            print(f"sending {args.n} mentions ...", file=sys.stderr)
            started = time.monotonic()
            held = (
                stalled(processes.port, args.stalled) if args.stalled else contextlib.nullcontext()
            )
            with held:
                outcomes = fire(processes.url, stand_in, asked, args.concurrency, args.spacing)
            wait_for_answers(stand_in, outcomes, args.timeout)
            seconds = time.monotonic() - started
            time.sleep(2.0)  # let a late duplicate show up before counting
            judge_all(stand_in, outcomes)
            tracebacks = sum(
                log.read_text(errors="replace").count("Traceback")
                for log in scratch.glob("*.log")
                if log.name != "milvus.log"
            )
            acked_by_app = server_acks(processes.url)
            print(
                report(
                    args, outcomes, stand_in, len(llm.requests), tracebacks, seconds, acked_by_app
                )
            )
        finally:
            processes.stop()
            milvus.stop()
            if args.logs is not None:
                args.logs.mkdir(parents=True, exist_ok=True)
                for log in scratch.glob("*.log"):
                    shutil.copy(log, args.logs / log.name)
            client = redis.Redis.from_url(args.redis)
            delete_prefix(client, variables["RAGBOT_REDIS_PREFIX"])
            client.close()
            llm.stop()
            stand_in.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
