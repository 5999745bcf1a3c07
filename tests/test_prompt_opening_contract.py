"""What transformers calls on the reranker's opening cache during a forward pass.

``_OpeningCache`` replaces ``DynamicCache.update`` and stores nothing new, so it is
only correct while a forward pass uses the cache the way the class expects. These
tests record every public attribute a real forward reads or calls on the cache (names,
positional count, keyword names) and fail, naming the transformers release and the
call, when a release does anything the class does not declare in ``FORWARD_CALLS``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
import torch
import transformers

from rag_core.prompt_opening import _OpeningCache, _OpeningRecorder, cache_keyword


class _Call(tuple):
    """(name, positional count, sorted keyword names); positional count -1 for a read."""

    def __str__(self) -> str:
        name, positional, keywords = self
        if positional < 0:
            return f"{name} (attribute read)"
        return f"{name}({positional} positional{''.join(f', {k}=' for k in keywords)})"


def _recording(cls: type[_OpeningCache]) -> type[_OpeningCache]:
    """``cls`` with every outside use of a public attribute appended to ``self.calls``.

    Uses made by the cache's own methods (``depth > 0``) are not transformers' calls.
    """

    class Recording(cls):  # type: ignore[misc, valid-type]
        def __getattribute__(self, name: str) -> Any:
            get = object.__getattribute__
            if name.startswith("_") or name == "calls" or get(self, "_depth")[0]:
                return get(self, name)
            depth, calls = get(self, "_depth"), get(self, "calls")
            depth[0] += 1
            try:
                value = get(self, name)
            finally:
                depth[0] -= 1
            if not inspect.ismethod(value):
                calls.append(_Call((name, -1, ())))
                return value
            return _recorded_method(name, value, depth, calls)

    Recording.__name__ = f"Recording{cls.__name__}"
    return Recording


def _recorded_method(
    name: str, method: Callable[..., Any], depth: list[int], calls: list[_Call]
) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        calls.append(_Call((name, len(args), tuple(sorted(kwargs)))))
        depth[0] += 1
        try:
            return method(*args, **kwargs)
        finally:
            depth[0] -= 1

    return call


def _new(cls: type[_OpeningCache], *args: Any) -> Any:
    cache = object.__new__(cls)
    object.__setattr__(cache, "_depth", [1])  # the constructor's own calls are not recorded
    object.__setattr__(cache, "calls", [])
    cache.__init__(*args)
    cache._depth[0] = 0
    return cache


def _unsupported(calls: list[_Call]) -> list[str]:
    """Calls the class does not declare, or whose arguments its own methods do not take."""
    problems = []
    for call in dict.fromkeys(calls):
        name, positional, keywords = call
        if name not in _OpeningCache.FORWARD_CALLS:
            problems.append(f"{call}: not in _OpeningCache.FORWARD_CALLS")
        elif positional >= 0 and name in vars(_OpeningCache):
            method = inspect.signature(getattr(_OpeningCache, name))
            try:
                method.bind(None, *range(positional), **dict.fromkeys(keywords))
            except TypeError as error:
                problems.append(f"{call}: _OpeningCache.{name}{method} does not take it ({error})")
    return problems


def _assert_supported(calls: list[_Call]) -> None:
    problems = _unsupported(calls)
    assert not problems, (
        f"transformers {transformers.__version__} uses the reranker's opening cache in ways "
        "rag_core/prompt_opening.py does not support; check these calls against the release "
        "and update _OpeningCache (and FORWARD_CALLS) before relaxing this test:\n  "
        + "\n  ".join(problems)
    )


@pytest.fixture(scope="module")
def base(tiny_reranker):
    return tiny_reranker._base


def test_the_forward_takes_a_cache_keyword(base):
    keyword = cache_keyword(base)
    assert keyword in inspect.signature(base.forward).parameters
    expected = (
        "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
    )
    assert keyword == expected


def test_the_opening_run_uses_only_supported_calls(base):
    recorder = _new(_recording(_OpeningRecorder))
    with torch.inference_mode():
        base(
            input_ids=torch.arange(10).unsqueeze(0),
            use_cache=True,
            **{cache_keyword(base): recorder},
        )
    _assert_supported(recorder.calls)
    layers = base.config.num_hidden_layers
    assert [call[0] for call in recorder.calls].count("update") == layers
    assert len(recorder.recorded) == layers
    assert recorder.recorded[0][0].shape[-2] == 10


def test_a_batch_run_uses_only_supported_calls(base, tiny_reranker):
    opening = tiny_reranker._opening(tiny_reranker.instruction)
    assert opening is not None
    cache = _new(_recording(_OpeningCache), opening.states)
    width = 5
    mask = torch.ones((3, len(opening) + width), dtype=torch.long)
    mask[0, len(opening) : len(opening) + 2] = 0  # left padding after the opening
    with torch.inference_mode():
        base(
            input_ids=torch.arange(3 * width).reshape(3, width),
            attention_mask=mask,
            position_ids=torch.arange(width).expand(3, -1) + len(opening),
            use_cache=True,
            **{cache_keyword(base): cache},
        )
    _assert_supported(cache.calls)
    assert [call[0] for call in cache.calls].count("update") == base.config.num_hidden_layers
    assert cache.get_seq_length() == len(opening)  # the batch's keys and values were not kept


def test_the_check_names_a_call_the_class_does_not_take():
    problems = _unsupported(
        [
            _Call(("update", 3, ("kwargs",))),
            _Call(("update", 3, ("layer_state",))),
            _Call(("crop", 1, ())),
        ]
    )
    assert len(problems) == 2
    assert "update(3 positional, layer_state=)" in problems[0]
    assert "crop(1 positional)" in problems[1]
