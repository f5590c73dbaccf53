"""Callback-driven sampling as a generator: one item per step, the result returned, early close cancels."""

from __future__ import annotations

import threading

import pytest

import brainsynth
from brainsynth.sampling.stepping import iterate_steps


def test_yields_every_step_and_returns_the_result(model):
    seen = []

    def consume():
        result = yield from iterate_steps(model.sample, seed=2, steps=4)
        seen.append(result)

    steps = [progress.step for progress in consume()]
    assert steps == [1, 2, 3, 4]
    assert isinstance(seen[0], brainsynth.SampleResult)
    assert seen[0].seeds == (2,)


def test_closing_early_cancels_the_call(model):
    """The call ends in SamplingCancelled long before its 500 steps (closing alone would wait for them all)."""
    outcome = {}

    def sample(**kwargs):
        callback, done = kwargs.pop("callback"), []

        def counting(progress):
            done.append(progress.step)
            callback(progress)

        try:
            return model.sample(callback=counting, **kwargs)
        except brainsynth.SamplingCancelled:
            outcome["cancelled_after"] = len(done)
            raise

    steps = iterate_steps(sample, seed=2, steps=500)
    assert next(steps).step == 1
    steps.close()
    assert not any(t.name == "brainsynth-sampling" and t.is_alive() for t in threading.enumerate())
    assert outcome["cancelled_after"] < 500


def test_errors_reach_the_consumer(model):
    with pytest.raises(brainsynth.InvalidParameterError, match=r"steps must be between 1 and 1000"):
        list(iterate_steps(model.sample, steps=0))
    with pytest.raises(TypeError, match=r"passes its own callback"):
        list(iterate_steps(model.sample, callback=print))
