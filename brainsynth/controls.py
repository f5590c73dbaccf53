"""The controls a face offers for a model, as plain data: napari and Jupyter only render them.

:func:`covariate_controls` turns a model's covariate specs into one :class:`CovariateControl` each
(a menu for a categorical covariate, a slider in real units over the training range, or over the
extrapolation bounds); :func:`sampling_limits` gives the seed, step and guidance limits of a model
(steps up to its number of training timesteps; guidance only for a model trained with conditioning
dropout); :func:`result_title` names a result the same way in every face.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from brainsynth.config import MAX_GUIDANCE, ModelConfig
from brainsynth.covariates import EXTRAPOLATION_BOUNDS, CovariateSpec

#: Seeds the faces offer (their random button draws from these; the API takes up to 2**63-1).
MAX_FACE_SEED = 2**31 - 1
#: Largest guidance a slider offers (beyond it samples degrade quickly; the API takes up to MAX_GUIDANCE).
GUIDANCE_SLIDER_MAX = 7.0
#: Number of slider positions across a covariate's range.
SLIDER_POSITIONS = 200


@dataclass(frozen=True)
class CovariateControl:
    """One covariate as a face shows it.

    Attributes
    ----------
    name : str
        The covariate's name (the key of its value).
    label : str
        What the control is labelled with, unit included (``"Age (years)"``).
    choices : tuple of str
        The categories of a categorical covariate (a menu); empty for a number (a slider).
    low, high, step : float
        The slider's range and step in real units (the training range, or the extrapolation bounds).
    value : float or str
        The initial value: the covariate's default, or the middle of its range.
    """

    name: str
    label: str
    choices: tuple[str, ...]
    low: float
    high: float
    step: float
    value: float | str | None

    @property
    def categorical(self) -> bool:
        """Whether the control is a menu of :attr:`choices`."""
        return bool(self.choices)


def covariate_control(spec: CovariateSpec, extrapolate: bool = False) -> CovariateControl:
    """The control of one covariate; with ``extrapolate`` a slider spans the extrapolation bounds."""
    label = f"{spec.label} ({spec.unit})" if spec.unit else spec.label
    if spec.categorical:
        return CovariateControl(spec.name, label, tuple(spec.choices), 0.0, 0.0, 0.0, spec.default)
    bounds = (spec.denormalise(b) for b in EXTRAPOLATION_BOUNDS) if extrapolate else (spec.low, spec.high)
    low, high = sorted(bounds)
    value = spec.default if spec.default is not None else (spec.low + spec.high) / 2
    value = min(max(float(value), low), high)
    return CovariateControl(spec.name, label, (), low, high, (high - low) / SLIDER_POSITIONS, value)


def covariate_controls(config: ModelConfig, extrapolate: bool = False) -> list[CovariateControl]:
    """The controls of a model's covariates, in conditioning order."""
    return [covariate_control(spec, extrapolate) for spec in config.covariates]


@dataclass(frozen=True)
class SamplingLimits:
    """What the sampling controls of a face allow for one model."""

    max_seed: int
    default_steps: int
    max_steps: int
    default_scheduler: str
    guidance_enabled: bool
    guidance_default: float
    guidance_max: float
    guidance_step: float = 0.25


def sampling_limits(config: ModelConfig) -> SamplingLimits:
    """The seed, step and guidance limits of a model's sampling controls."""
    return SamplingLimits(
        max_seed=MAX_FACE_SEED,
        default_steps=config.default_steps,
        max_steps=config.noise_schedule.num_train_timesteps,
        default_scheduler=config.default_scheduler,
        guidance_enabled=config.null_condition is not None,
        guidance_default=config.default_guidance,
        guidance_max=min(GUIDANCE_SLIDER_MAX, MAX_GUIDANCE),
    )


def result_title(covariates: dict[str, Any], seed: int | None) -> str:
    """A short title of one brain from its covariates and seed, e.g. ``male age 70 ventr 45 brain 1400 seed 3``
    (categories by name, numbers by the first word of their name, cut to five letters)."""
    parts = [
        value if isinstance(value, str) else f"{name.split('_')[0][:5]} {value:.0f}"
        for name, value in covariates.items()
    ]
    if seed is not None:
        parts.append(f"seed {seed}")
    return " ".join(parts)
