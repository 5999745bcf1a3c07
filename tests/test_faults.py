"""The bot's promise under faults, with real components: every question answered once,
or the asker told in words why not; none lost; no duplicates.

One stack (the app and two workers as processes, a private Redis with an append-only
file, a private ``milvus_lite server``) serves every scenario of
:mod:`tests.fixtures.fault_scenarios`; ``bench/bench_faults.py`` runs the same
scenarios and prints the table.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.fault_runs import Scenario, run_scenario
from tests.fixtures.fault_scenarios import SCENARIOS, STREAMING_SCENARIOS
from tests.fixtures.faults import FaultStack, Models


def _stack(folder: Path, slack, llm, models: Models, **overrides: object) -> Iterator[FaultStack]:
    stack = FaultStack(folder, slack=slack, llm=llm, models=models, **overrides)
    try:
        yield stack.start()
    finally:
        stack.stop()
        stack.reset_stand_ins()


@pytest.fixture(scope="module")
def fault_stack(
    tmp_path_factory: pytest.TempPathFactory,
    slack_api_server,
    openai_stub_session,
    tiny_embedding_path: Path,
    tiny_reranker_path: Path,
) -> Iterator[FaultStack]:
    """Answers posted whole: the path every stream also falls back to."""
    models = Models(tiny_embedding_path, tiny_reranker_path)
    folder = tmp_path_factory.mktemp("faults")
    yield from _stack(folder, slack_api_server, openai_stub_session, models)


@pytest.fixture(scope="module")
def streaming_stack(
    tmp_path_factory: pytest.TempPathFactory,
    slack_api_server,
    openai_stub_session,
    tiny_embedding_path: Path,
    tiny_reranker_path: Path,
) -> Iterator[FaultStack]:
    """Answers streamed into Slack as the chat model writes them."""
    models = Models(tiny_embedding_path, tiny_reranker_path)
    folder = tmp_path_factory.mktemp("faults-streaming")
    yield from _stack(folder, slack_api_server, openai_stub_session, models, stream_answers=True)


@pytest.mark.parametrize(
    "scenario",
    [pytest.param(s, id=s.name) for s in SCENARIOS],
)
def test_every_question_is_answered_once_or_explained(
    fault_stack: FaultStack, scenario: Scenario
) -> None:
    result = run_scenario(fault_stack, scenario)

    assert result.passed, f"{result.explain()}\n{fault_stack.log_tail()}"


@pytest.mark.parametrize(
    "scenario",
    [pytest.param(s, id=s.name) for s in STREAMING_SCENARIOS],
)
def test_streamed_answers_are_answered_once_under_faults(
    streaming_stack: FaultStack, scenario: Scenario
) -> None:
    result = run_scenario(streaming_stack, scenario)

    assert result.passed, f"{result.explain()}\n{streaming_stack.log_tail()}"
