"""Covariates in real units: normalisation as in the published model, and every validation error."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from brainsynth.covariates import generic_covariates, resolve_covariates
from brainsynth.errors import InvalidParameterError
from brainsynth.loading.presets import UKB_COVARIATES


def test_ukb_normalisation_matches_reference_ranges():
    resolved = resolve_covariates(
        UKB_COVARIATES, {"sex": "male", "age": 82, "ventricular_volume": 6.99568, "brain_volume": 1793.91}
    )
    assert resolved.normalised == pytest.approx((1.0, 1.0, 0.0, 1.0))
    mid = resolve_covariates(
        UKB_COVARIATES, {"sex": "female", "age": 63, "ventricular_volume": 89.185, "brain_volume": 1469.075}
    )
    assert mid.normalised == pytest.approx((0.0, 0.5, 0.5, 0.5), abs=1e-4)
    assert mid.real["sex"] == "female"


def test_defaults_fill_missing_covariates():
    resolved = resolve_covariates(UKB_COVARIATES, {})
    assert resolved.real == {"sex": "female", "age": 64.0, "ventricular_volume": 40.0, "brain_volume": 1404.0}
    assert resolved.extrapolated == ()


@pytest.mark.parametrize("value", ["male", "Male", " MALE ", 1, 1.0])
def test_sex_accepts_names_and_codes(value):
    assert resolve_covariates(UKB_COVARIATES, {"sex": value}).real["sex"] == "male"


@pytest.mark.parametrize("value", ["m", "other", 0.5, 2, True])
def test_sex_rejects_anything_else(value):
    with pytest.raises(InvalidParameterError, match=r"sex must be one of 'female' \(0\), 'male' \(1\)"):
        resolve_covariates(UKB_COVARIATES, {"sex": value})


def test_unknown_covariate():
    with pytest.raises(InvalidParameterError, match=r"unknown covariate 'height'; this model's covariates are sex"):
        resolve_covariates(UKB_COVARIATES, {"height": 180})


def test_sex_without_default_is_required():
    specs = [replace(s, default=None) if s.name == "sex" else s for s in UKB_COVARIATES]
    with pytest.raises(InvalidParameterError, match=r"covariate sex is required \(female or male\)"):
        resolve_covariates(specs, {})


def test_missing_required_covariate():
    with pytest.raises(InvalidParameterError, match=r"covariate c1 is required"):
        resolve_covariates(generic_covariates(2), {"c0": 0.5})


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_covariate(value):
    with pytest.raises(InvalidParameterError, match=r"age must be a finite number"):
        resolve_covariates(UKB_COVARIATES, {"age": value})


@pytest.mark.parametrize("value", ["seventy", [70], True])
def test_wrong_type_covariate(value):
    with pytest.raises(InvalidParameterError, match=r"age must be a number in years \(got"):
        resolve_covariates(UKB_COVARIATES, {"age": value})


def test_out_of_range_is_refused_with_the_range_and_the_way_out():
    with pytest.raises(
        InvalidParameterError,
        match=r"age must be between 44 and 82 years \(got 130\); pass extrapolate=True",
    ):
        resolve_covariates(UKB_COVARIATES, {"age": 130})


def test_extrapolation_is_allowed_on_request_and_recorded():
    resolved = resolve_covariates(UKB_COVARIATES, {"ventricular_volume": 250.0}, extrapolate=True)
    assert resolved.extrapolated == ("ventricular_volume",)
    assert resolved.normalised[2] == pytest.approx((250.0 - 6.99568) / (171.375 - 6.99568))


def test_extrapolation_has_limits():
    with pytest.raises(InvalidParameterError, match=r"age must be between 6 and 120 years even when extrapolating"):
        resolve_covariates(UKB_COVARIATES, {"age": 150}, extrapolate=True)
