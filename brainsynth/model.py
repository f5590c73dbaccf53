"""A latent diffusion model that samples brains conditioned on covariates in real units.

The class holds the networks and their configuration and offers the entry points; each checks its
request (covariates, then :class:`~brainsynth.sampling.settings.SamplingSettings`), plans the noise
(:class:`~brainsynth.sampling.noise.NoisePlan`) and hands both to the pipeline
(:func:`brainsynth.sampling.pipeline.run`: denoise -> unscale -> decode -> record).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from brainsynth.config import SAMPLING_PRECISIONS, SAMPLING_PRECISIONS_TEXT, ModelConfig
from brainsynth.covariates import ResolvedCovariates, blend_covariates, resolve_covariates
from brainsynth.devices import resolve_device, resolve_precision
from brainsynth.errors import InvalidParameterError
from brainsynth.result import SampleResult
from brainsynth.sampling import pipeline
from brainsynth.sampling.decoding import DECODING_MODES, UnsupportedDecoderError, check_split_supported
from brainsynth.sampling.loop import PRECISIONS
from brainsynth.sampling.noise import NoisePlan, check_seed
from brainsynth.sampling.settings import OPTIONS_DOC, SamplingOptions, SamplingSettings, run_options, split_options

if TYPE_CHECKING:
    from typing_extensions import Unpack


def _with_options(method):
    method.__doc__ = method.__doc__.replace("{options}", OPTIONS_DOC)
    return method


class LatentDiffusionModel:
    """An autoencoder, a conditioned diffusion U-Net and their configuration.

    Load one with :func:`brainsynth.load_model`; sample with :meth:`sample`, :meth:`sample_batch`,
    :meth:`traverse` and :meth:`interpolate`.

    Parameters
    ----------
    config : ModelConfig
        Networks, noise schedule, grids and covariates.
    autoencoder, unet : torch.nn.Module
        MONAI ``AutoencoderKL`` and ``DiffusionModelUNet`` with weights loaded.
    source : str
        Where the model was loaded from, for provenance.
    weight_hashes : dict
        Network name to ``{"sha256": ...}`` (or ``md5``) of its weight file.
    """

    def __init__(
        self,
        config: ModelConfig,
        autoencoder: torch.nn.Module,
        unet: torch.nn.Module,
        *,
        source: str = "",
        weight_hashes: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.config = config
        self.autoencoder = autoencoder.eval()
        self.unet = unet.eval()
        self.source = source
        self.weight_hashes = {k: dict(v) for k, v in (weight_hashes or {}).items()}
        self._decoding = "auto"
        self.compiled: dict[str, Any] | None = None

    def __repr__(self) -> str:
        covariates = ", ".join(f"{c.name} ({c.describe_range()})" for c in self.config.covariates)
        return f"LatentDiffusionModel(name={self.config.name!r}, covariates=[{covariates}])"

    @property
    def name(self) -> str:
        """The model's name."""
        return self.config.name

    @property
    def device(self) -> torch.device:
        """The device the networks are on."""
        return next(self.unet.parameters()).device

    def to(self, device: str | torch.device = "auto") -> LatentDiffusionModel:
        """Move both networks to ``device`` (see :func:`brainsynth.devices.resolve_device`)."""
        target = resolve_device(device)
        self.autoencoder.to(target)
        self.unet.to(target)
        return self

    @property
    def decoding(self) -> str:
        """How latents are decoded: ``"auto"`` (the default), ``"full"`` or ``"split"``.

        ``"split"`` runs the decoder slab by slab with bounded memory and gives the same volume as
        ``"full"`` up to float rounding (see :mod:`brainsynth.sampling.decoding`); ``"auto"`` chooses
        ``"full"`` when the plain decode fits in the device's free memory and ``"split"`` otherwise.
        """
        return self._decoding

    @decoding.setter
    def decoding(self, mode: str) -> None:
        if mode not in DECODING_MODES:
            raise InvalidParameterError(f"decoding must be one of {', '.join(DECODING_MODES)} (got {mode!r})")
        if mode == "split":
            try:
                check_split_supported(self.autoencoder)
            except UnsupportedDecoderError as exc:
                raise InvalidParameterError(f"decoding 'split' is not available for this model: {exc}") from exc
        self._decoding = mode

    @property
    def weight_dtype(self) -> str:
        """Data type the U-Net's weights are stored in: ``"float32"`` unless :meth:`set_weight_dtype` changed it."""
        return str(_weight_layers(self.unet)[0].weight.dtype).removeprefix("torch.")

    def set_weight_dtype(self, dtype: str) -> LatentDiffusionModel:
        """Store the U-Net's convolution and linear weights in ``dtype`` (``"float32"``, ``"bfloat16"`` or
        ``"float16"``); normalisation layers stay float32. bfloat16 halves the U-Net's memory; the model
        then samples with the matching ``precision`` only. Reload the model for exact float32 again."""
        if dtype not in PRECISIONS:
            raise InvalidParameterError(f"weight dtype must be one of {', '.join(PRECISIONS)} (got {dtype!r})")
        for layer in _weight_layers(self.unet):
            layer.to(PRECISIONS[dtype] or torch.float32)
        return self

    def compile(self, **options: Any) -> LatentDiffusionModel:
        """Compile the U-Net in place with :func:`torch.compile` (``options`` are its own, e.g.
        ``mode="max-autotune"``); the first sampling call pays the compilation."""
        self.unet.compile(**options)
        self.compiled = dict(options) or {"mode": "default"}
        return self

    def settings(self, batch_size: int | None = None, **options: Any) -> SamplingSettings:
        """Check sampling options against this model (see :meth:`sample`) without computing anything."""
        return SamplingSettings.check(self.config, batch_size=batch_size, weight_dtype=self.weight_dtype, **options)

    # ----------------------------------------------------------------------------------- entry points

    @_with_options
    def sample(
        self,
        covariates: Mapping[str, Any] | None = None,
        *,
        seed: int | None = None,
        noise: torch.Tensor | None = None,
        **values: Any,
    ) -> SampleResult:
        """Generate brains conditioned on covariates in real units.

        Parameters
        ----------
        covariates : mapping, optional
            Covariate values by name, e.g. ``{"sex": "male", "age": 70}``; they may also be given as
            keyword arguments. Missing ones take the model's defaults.
        seed : int, optional
            Seed of the initial noise, 0 to 2**63-1; item ``i`` of a batch uses ``seed + i``. A random
            seed is drawn and recorded when neither ``seed`` nor ``noise`` is given.
        noise : torch.Tensor, optional
            Explicit initial latent ``x_T``, shape (C, X, Y, Z) or (B, C, X, Y, Z), instead of a seed.
        {options}

        Returns
        -------
        SampleResult
            ``batch_size`` brains (or one per noise tensor).

        Examples
        --------
        >>> result = model.sample(sex="female", age=70, seed=1)  # doctest: +SKIP
        >>> result.save("brain.nii.gz")  # doctest: +SKIP
        """
        options, covariate_values = split_options(values)
        extrapolate, callback, batch_size = run_options(options)
        resolved = self._resolve({**(covariates or {}), **covariate_values}, extrapolate)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidParameterError(f"batch_size must be a positive integer (got {batch_size!r})")
        settings = self.settings(**options)
        base = check_seed(seed) if seed is not None else secrets.randbelow(2**31)
        if noise is not None:
            plan = NoisePlan.explicit(noise, self.config.latent_shape, base)
        else:
            check_seed(base + batch_size - 1, "seed + batch_size - 1")
            plan = NoisePlan.from_seeds([base + i for i in range(batch_size)], self.config.latent_shape)
        return pipeline.run(self, settings, plan, [resolved] * len(plan), callback)

    @_with_options
    def sample_batch(
        self, covariates: Sequence[Mapping[str, Any]], seeds: Sequence[int], **options: Unpack[SamplingOptions]
    ) -> SampleResult:
        """Generate one brain per (covariates, seed) pair, e.g. rows of a table.

        Parameters
        ----------
        covariates : sequence of mapping
            Covariates in real units for each brain.
        seeds : sequence of int
            Seed of each brain's initial noise (same length).
        {options}

        Returns
        -------
        SampleResult
            One item per pair, in order; item ``i`` equals ``sample(covariates[i], seed=seeds[i])``.
        """
        split_options(options, covariates_allowed=False)
        extrapolate, callback, batch_size = run_options(options)
        if len(covariates) != len(seeds) or not seeds:
            raise InvalidParameterError(
                f"covariates and seeds must be non-empty and of equal length (got {len(covariates)} and {len(seeds)})"
            )
        resolved = [self._resolve(dict(values), extrapolate) for values in covariates]
        checked = [check_seed(seed, f"seeds[{i}]") for i, seed in enumerate(seeds)]
        settings = self.settings(batch_size, **options)
        return pipeline.run(self, settings, NoisePlan.from_seeds(checked, self.config.latent_shape), resolved, callback)

    @_with_options
    def traverse(self, covariate: str, values: Sequence[float | str], *, seed: int = 0, **fixed: Any) -> SampleResult:
        """Sweep one covariate with everything else fixed, the initial noise included.

        Parameters
        ----------
        covariate : str
            Name of the covariate to sweep.
        values : sequence
            Its values, in real units; one brain per value.
        seed : int
            Seed of the shared initial noise.
        **fixed
            The other covariates (defaults otherwise), and the options below.
        {options}

        Returns
        -------
        SampleResult
            One item per value, in order.

        Examples
        --------
        >>> model.traverse("age", [50, 60, 70, 80], seed=3)  # doctest: +SKIP
        """
        options, covariate_values = split_options(fixed)
        extrapolate, callback, batch_size = run_options(options)
        spec = self.config.covariate(covariate)
        if covariate in covariate_values:
            raise InvalidParameterError(f"{covariate} is swept by values; do not also give it as a fixed covariate")
        if isinstance(values, str) or len(values) < 1:
            raise InvalidParameterError(f"values must be a non-empty sequence of {spec.name} values (got {values!r})")
        resolved = [self._resolve({**covariate_values, covariate: v}, extrapolate) for v in values]
        settings = self.settings(batch_size, **options)
        plan = NoisePlan.shared(check_seed(seed), len(values), self.config.latent_shape)
        return pipeline.run(self, settings, plan, resolved, callback)

    @_with_options
    def interpolate(
        self,
        seed_a: int,
        seed_b: int,
        frames: int,
        *,
        covariates_a: Mapping[str, Any] | None = None,
        covariates_b: Mapping[str, Any] | None = None,
        **options: Unpack[SamplingOptions],
    ) -> SampleResult:
        """Interpolate between two seeds' initial noise (spherically), and optionally two covariate sets.

        Parameters
        ----------
        seed_a, seed_b : int
            Seeds of the two end points.
        frames : int
            Number of brains, at least 2; the first is ``seed_a``'s and the last ``seed_b``'s.
        covariates_a, covariates_b : mapping, optional
            Covariates at each end, interpolated linearly in normalised units (categorical ones are
            taken from ``a`` for the first half and ``b`` for the second). ``covariates_b`` defaults
            to ``covariates_a``.
        {options}

        Returns
        -------
        SampleResult
            One item per frame.
        """
        split_options(options, covariates_allowed=False)
        extrapolate, callback, batch_size = run_options(options)
        seed_a, seed_b = check_seed(seed_a, "seed_a"), check_seed(seed_b, "seed_b")
        if isinstance(frames, bool) or not isinstance(frames, int) or frames < 2:
            raise InvalidParameterError(f"frames must be an integer of at least 2 (got {frames!r})")
        end_a = self._resolve(dict(covariates_a or {}), extrapolate)
        end_b = self._resolve(dict(covariates_b if covariates_b is not None else covariates_a or {}), extrapolate)
        settings = self.settings(batch_size, **options)
        positions = [float(t) for t in np.linspace(0.0, 1.0, frames)]
        resolved = [blend_covariates(self.config.covariates, end_a, end_b, t) for t in positions]
        plan = NoisePlan.spherical(seed_a, seed_b, positions, self.config.latent_shape)
        return pipeline.run(self, settings, plan, resolved, callback)

    def decode(self, latents: torch.Tensor, *, precision: str = "float32") -> np.ndarray:
        """Decode latents ``x_0`` (on the model's device, scaled by ``scale_factor``, shape (B, C, X', Y', Z'))
        into float32 volumes (B, X, Y, Z); ``precision`` as in :meth:`sample`.

        Raises
        ------
        InvalidParameterError
            For another precision, or latents of another shape than the model's.
        """
        if precision not in SAMPLING_PRECISIONS:
            raise InvalidParameterError(f"precision must be one of {SAMPLING_PRECISIONS_TEXT} (got {precision!r})")
        if (
            not isinstance(latents, torch.Tensor)
            or latents.ndim != 5
            or tuple(latents.shape[1:]) != tuple(self.config.latent_shape)
        ):
            got = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
            wanted = ", ".join(map(str, self.config.latent_shape))
            raise InvalidParameterError(f"latents must be a tensor of shape (B, {wanted}) (got {got})")
        precision = resolve_precision(precision, latents.device)
        return pipeline.decode_latents(self.autoencoder, latents, self.config, precision, self.decoding).volumes

    def _resolve(self, values: Mapping[str, Any], extrapolate: bool) -> ResolvedCovariates:
        return resolve_covariates(self.config.covariates, values, extrapolate=extrapolate)


def _weight_layers(network: torch.nn.Module) -> list[torch.nn.Module]:
    """The convolution and linear layers of a network, which hold nearly all of its weights."""
    kinds = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Linear)
    return [m for m in network.modules() if isinstance(m, kinds)]
