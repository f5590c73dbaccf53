"""The controls both faces render, as plain data from a model's configuration."""

from __future__ import annotations

import pytest

from brainsynth.controls import covariate_controls, result_title, sampling_limits
from brainsynth.covariates import EXTRAPOLATION_BOUNDS
from tests.tiny import tiny_config


def test_covariates_become_menus_and_sliders_in_real_units():
    config = tiny_config()
    sex, age, *_ = covariate_controls(config)
    assert sex.categorical
    assert sex.choices == ("female", "male")
    assert sex.label == "Sex"
    spec = config.covariate("age")
    assert not age.categorical
    assert age.label == "Age (years)"
    assert (age.low, age.high) == (spec.low, spec.high)
    assert age.step == pytest.approx((spec.high - spec.low) / 200)
    assert age.value == spec.default
    wide = covariate_controls(config, extrapolate=True)[1]
    assert (wide.low, wide.high) == pytest.approx(tuple(spec.denormalise(b) for b in EXTRAPOLATION_BOUNDS))


def test_limits_follow_the_model():
    limits = sampling_limits(tiny_config(default_steps=7))
    assert (limits.default_steps, limits.max_steps) == (7, 1000)
    assert not limits.guidance_enabled
    guided = sampling_limits(tiny_config(null_condition=0.0, default_guidance=2.0))
    assert guided.guidance_enabled
    assert guided.guidance_default == 2.0


def test_one_title_for_every_face():
    covariates = {"sex": "male", "age": 70.2, "ventricular_volume": 45.0, "brain_volume": 1400.4}
    assert result_title(covariates, 3) == "male age 70 ventr 45 brain 1400 seed 3"
    assert result_title({"age": 50.0}, None) == "age 50"
