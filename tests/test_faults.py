"""The bot's promise under faults, with real components: every question answered once,
or the asker told in words why not; none lost; no duplicates.

One stack (the app and two workers as processes, a private Redis with an append-only
file, a private ``milvus_lite server``) serves every scenario of
:mod:`tests.fixtures.fault_scenarios`. The slow ones (Redis and Milvus killed and
restarted, 30 s of Redis out of memory, the worker and the app terminated mid-answer)
run with ``FAULT_SCENARIOS=all``; ``bench/bench_faults.py`` runs them all and prints
the table.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.fault_runs import Scenario, run_scenario
from tests.fixtures.fault_scenarios import SCENARIOS
from tests.fixtures.faults import FaultStack, Models

SLOW = pytest.mark.skipif(
    os.environ.get("FAULT_SCENARIOS") != "all",
    reason="slow fault scenario: set FAULT_SCENARIOS=all (bench/bench_faults.py runs it too)",
)


@pytest.fixture(scope="module")
def fault_stack(
    tmp_path_factory: pytest.TempPathFactory,
    slack_api_server,
    openai_stub_session,
    tiny_embedding_path: Path,
    tiny_reranker_path: Path,
) -> Iterator[FaultStack]:
    stack = FaultStack(
        tmp_path_factory.mktemp("faults"),
        slack=slack_api_server,
        llm=openai_stub_session,
        models=Models(tiny_embedding_path, tiny_reranker_path),
    )
    try:
        yield stack.start()
    finally:
        stack.stop()
        stack.reset_stand_ins()


@pytest.mark.parametrize(
    "scenario",
    [pytest.param(s, id=s.name, marks=[SLOW] if s.slow else []) for s in SCENARIOS],
)
def test_every_question_is_answered_once_or_explained(
    fault_stack: FaultStack, scenario: Scenario
) -> None:
    result = run_scenario(fault_stack, scenario)

    assert result.passed, f"{result.explain()}\n{fault_stack.log_tail()}"
