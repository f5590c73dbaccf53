"""What each entry point asks for, checked before anything runs: covariates per item and a noise plan.

Each function takes an entry point's arguments as the user gave them and returns a :class:`Request`:
the resolved covariates of every item, the :class:`~brainsynth.sampling.noise.NoisePlan`, the
sampling options still to check as :class:`~brainsynth.sampling.settings.SamplingSettings`, the
batch size and the callback. The model checks the options against itself and hands both to
:func:`brainsynth.sampling.pipeline.run`.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from brainsynth.config import ModelConfig
from brainsynth.covariates import ResolvedCovariates, blend_covariates, resolve_covariates
from brainsynth.errors import InvalidParameterError
from brainsynth.sampling.loop import ProgressCallback
from brainsynth.sampling.noise import NoisePlan, check_seed
from brainsynth.sampling.settings import run_options, split_options


@dataclass(frozen=True)
class Request:
    """One entry point's call, its covariates resolved and its noise planned.

    Attributes
    ----------
    conditions : tuple of ResolvedCovariates
        The covariates of each item.
    noise : NoisePlan
        The initial noise of each item (and its step generators).
    options : dict
        The sampling options, for :meth:`~brainsynth.model.LatentDiffusionModel.settings`.
    batch_size : int or None
        Items per network pass (``None``: all in one).
    callback : callable or None
        The progress callback.
    """

    conditions: tuple[ResolvedCovariates, ...]
    noise: NoisePlan
    options: dict[str, Any] = field(default_factory=dict)
    batch_size: int | None = None
    callback: ProgressCallback | None = None


def _resolver(config: ModelConfig, extrapolate: bool):
    return lambda values: resolve_covariates(config.covariates, values, extrapolate=extrapolate)


def sample(
    config: ModelConfig,
    covariates: Mapping[str, Any] | None,
    seed: int | None,
    noise: torch.Tensor | None,
    values: Mapping[str, Any],
) -> Request:
    """:meth:`~brainsynth.model.LatentDiffusionModel.sample`: one covariate set, ``batch_size`` seeds."""
    options, covariate_values = split_options(values)
    extrapolate, callback, batch_size = run_options(options)
    resolved = _resolver(config, extrapolate)({**(covariates or {}), **covariate_values})
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidParameterError(f"batch_size must be a positive integer (got {batch_size!r})")
    base = check_seed(seed) if seed is not None else secrets.randbelow(2**31)
    if noise is not None:
        plan = NoisePlan.explicit(noise, config.latent_shape, base)
    else:
        check_seed(base + batch_size - 1, "seed + batch_size - 1")
        plan = NoisePlan.from_seeds([base + i for i in range(batch_size)], config.latent_shape)
    return Request((resolved,) * len(plan), plan, options, None, callback)


def batch(
    config: ModelConfig, covariates: Sequence[Mapping[str, Any]], seeds: Sequence[int], options: Mapping[str, Any]
) -> Request:
    """:meth:`~brainsynth.model.LatentDiffusionModel.sample_batch`: one (covariates, seed) pair per item."""
    split_options(options, covariates_allowed=False)
    options = dict(options)
    extrapolate, callback, batch_size = run_options(options)
    if len(covariates) != len(seeds) or not seeds:
        raise InvalidParameterError(
            f"covariates and seeds must be non-empty and of equal length (got {len(covariates)} and {len(seeds)})"
        )
    resolve = _resolver(config, extrapolate)
    resolved = tuple(resolve(dict(values)) for values in covariates)
    checked = [check_seed(seed, f"seeds[{i}]") for i, seed in enumerate(seeds)]
    return Request(resolved, NoisePlan.from_seeds(checked, config.latent_shape), options, batch_size, callback)


def traversal(
    config: ModelConfig, covariate: str, values: Sequence[float | str], seed: int, fixed: Mapping[str, Any]
) -> Request:
    """:meth:`~brainsynth.model.LatentDiffusionModel.traverse`: one covariate swept over shared noise."""
    options, covariate_values = split_options(fixed)
    extrapolate, callback, batch_size = run_options(options)
    spec = config.covariate(covariate)
    if covariate in covariate_values:
        raise InvalidParameterError(f"{covariate} is swept by values; do not also give it as a fixed covariate")
    if isinstance(values, str) or len(values) < 1:
        raise InvalidParameterError(f"values must be a non-empty sequence of {spec.name} values (got {values!r})")
    resolve = _resolver(config, extrapolate)
    resolved = tuple(resolve({**covariate_values, covariate: v}) for v in values)
    plan = NoisePlan.shared(check_seed(seed), len(values), config.latent_shape)
    return Request(resolved, plan, options, batch_size, callback)


def interpolation(
    config: ModelConfig,
    seeds: tuple[int, int],
    frames: int,
    ends: tuple[Mapping[str, Any] | None, Mapping[str, Any] | None],
    options: Mapping[str, Any],
) -> Request:
    """:meth:`~brainsynth.model.LatentDiffusionModel.interpolate`: spherical noise, blended covariates."""
    split_options(options, covariates_allowed=False)
    options = dict(options)
    extrapolate, callback, batch_size = run_options(options)
    seed_a, seed_b = check_seed(seeds[0], "seed_a"), check_seed(seeds[1], "seed_b")
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 2:
        raise InvalidParameterError(f"frames must be an integer of at least 2 (got {frames!r})")
    covariates_a, covariates_b = ends
    resolve = _resolver(config, extrapolate)
    end_a = resolve(dict(covariates_a or {}))
    end_b = resolve(dict(covariates_b if covariates_b is not None else covariates_a or {}))
    positions = [float(t) for t in np.linspace(0.0, 1.0, frames)]
    resolved = tuple(blend_covariates(config.covariates, end_a, end_b, t) for t in positions)
    plan = NoisePlan.spherical(seed_a, seed_b, positions, config.latent_shape)
    return Request(resolved, plan, options, batch_size, callback)
