"""Fault table of the Slack bot: each fault, and whether the bot kept its promise.

    .venv/bin/python bench/bench_faults.py [--only NAME,...] [--skip-slow] [--logs DIR]
    .venv/bin/python bench/bench_faults.py --list

Runs the scenarios of :mod:`tests.fixtures.fault_scenarios` (the same code as
``tests/test_faults.py``) on a stack of real components (a second one, streaming its
answers, for the streaming faults): ``ragbot serve --http`` and two ``ragbot worker``
processes, a private ``redis-server`` with an append-only file,
a ``milvus_lite server``, tiny random-weight Qwen3 models, and the Slack Web API and
OpenAI stand-ins of the test suite. Prints one row per fault: questions asked, answered
exactly once, told in words why not, duplicated, lost, and PASS/FAIL (a question that
got the wrong one of the two acceptable outcomes, or any other broken check, fails the
row; the reasons go to stderr). Exits 1 when a row fails.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from tests.fixtures.fault_runs import Result, Scenario, run_scenario, table
from tests.fixtures.fault_scenarios import BY_NAME, SCENARIOS, STREAMING_SCENARIOS
from tests.fixtures.faults import FaultStack, Models
from tests.fixtures.openai_server import OpenAIStubServer
from tests.fixtures.slack_api import SlackApiStandIn


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument("--skip-slow", action="store_true", help="leave out the slow scenarios")
    parser.add_argument("--list", action="store_true", help="print the scenario names and exit")
    parser.add_argument("--logs", type=Path, default=None, help="copy the processes' logs here")
    return parser.parse_args(argv)


def chosen(args: argparse.Namespace) -> list:
    if args.only:
        unknown = sorted(set(args.only.split(",")) - set(BY_NAME))
        if unknown:
            raise SystemExit(f"unknown scenarios: {', '.join(unknown)}; see --list")
        return [BY_NAME[name] for name in args.only.split(",")]
    every = (*SCENARIOS, *STREAMING_SCENARIOS)
    return [s for s in every if not (args.skip_slow and s.slow)]


def run_on(stack: FaultStack, scenarios: list[Scenario]) -> list[Result]:
    """Start ``stack``, run ``scenarios`` on it, stop it."""
    results = []
    try:
        print("starting the bot ...", file=sys.stderr)
        stack.start()
        for scenario in scenarios:
            print(f"{scenario.name} ...", file=sys.stderr)
            result = run_scenario(stack, scenario)
            results.append(result)
            if not result.passed:
                print(result.explain(), file=sys.stderr)
    finally:
        stack.stop()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for scenario in (*SCENARIOS, *STREAMING_SCENARIOS):
            print(f"{scenario.name:<26} {'slow  ' if scenario.slow else '      '}{scenario.fault}")
        return 0
    scenarios = chosen(args)
    from tests.model_factory import build_qwen3_embedding, build_qwen3_reranker

    slack = SlackApiStandIn().start()
    llm = OpenAIStubServer()
    llm.start()
    results: list[Result] = []
    try:
        with tempfile.TemporaryDirectory(prefix="ragbot-faults-") as folder:
            scratch = Path(folder)
            models = Models(
                build_qwen3_embedding(scratch / "embedding"),
                build_qwen3_reranker(scratch / "reranker"),
            )
            for streaming in (False, True):
                chosen_here = [s for s in scenarios if s.streaming == streaming]
                if chosen_here:
                    folder_name = "stack-streaming" if streaming else "stack"
                    stack = FaultStack(
                        scratch / folder_name,
                        slack=slack,
                        llm=llm,
                        models=models,
                        stream_answers=streaming,
                    )
                    results += run_on(stack, chosen_here)
            if args.logs is not None:
                args.logs.mkdir(parents=True, exist_ok=True)
                for log in scratch.rglob("*.log"):
                    shutil.copy(log, args.logs / f"{log.parent.parent.name}-{log.name}")
    finally:
        llm.stop()
        slack.stop()
    print(table(results))
    for result in results:
        for note in result.notes:
            print(f"  {result.fault}: {note}")
    seconds = sum(r.seconds for r in results)
    print(f"{sum(r.passed for r in results)}/{len(results)} PASS in {seconds:.0f} s")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
