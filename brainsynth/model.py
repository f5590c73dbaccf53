"""A latent diffusion model that samples brains conditioned on covariates in real units.

The class holds the networks and their configuration and offers the entry points. Each entry point
turns its arguments into a request (:mod:`brainsynth.sampling.requests`: covariates resolved, noise
planned as a :class:`~brainsynth.sampling.noise.NoisePlan`), checks the options as
:class:`~brainsynth.sampling.settings.SamplingSettings`, and hands both to the pipeline
(:func:`brainsynth.sampling.pipeline.run`: denoise -> unscale -> decode -> record).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from brainsynth.config import ModelConfig
from brainsynth.devices import resolve_device, store_weights, stored_weight_dtype
from brainsynth.errors import InvalidParameterError
from brainsynth.result import SampleResult
from brainsynth.sampling import pipeline, requests
from brainsynth.sampling.decoding import check_decoding
from brainsynth.sampling.settings import OPTIONS_DOC, SamplingOptions, SamplingSettings

if TYPE_CHECKING:
    from brainsynth.scans.results import EditResult, Inversion, Reconstruction
    from brainsynth.scans.scan import Scan

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
        """How latents are decoded: ``"auto"`` (the default: ``"full"`` when it fits in free memory),
        ``"full"`` or ``"split"`` (slab by slab, bounded memory; see :mod:`brainsynth.sampling.decoding`)."""
        return self._decoding

    @decoding.setter
    def decoding(self, mode: str) -> None:
        self._decoding = check_decoding(mode, self.autoencoder)

    @property
    def weight_dtype(self) -> str:
        """Data type the U-Net's weights are stored in: ``"float32"`` unless :meth:`set_weight_dtype` changed it."""
        return stored_weight_dtype(self.unet)

    def set_weight_dtype(self, dtype: str) -> LatentDiffusionModel:
        """Store the U-Net's convolution and linear weights in ``dtype`` (``"float32"``, ``"bfloat16"`` or
        ``"float16"``); normalisation layers stay float32. bfloat16 halves the U-Net's memory; the model
        then samples with the matching ``precision`` only. Reload the model for exact float32 again."""
        store_weights(self.unet, dtype)
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
        return self._run(requests.sample(self.config, covariates, seed, noise, values))

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
        return self._run(requests.batch(self.config, covariates, seeds, options))

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
        return self._run(requests.traversal(self.config, covariate, values, seed, fixed))

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
        return self._run(
            requests.interpolation(self.config, (seed_a, seed_b), frames, (covariates_a, covariates_b), options)
        )

    def decode(self, latents: torch.Tensor, *, precision: str = "float32") -> np.ndarray:
        """Decode latents ``x_0`` (on the model's device, scaled by ``scale_factor``, shape (B, C, X', Y', Z'))
        into float32 volumes (B, X, Y, Z); ``precision`` as in :meth:`sample`.

        Raises
        ------
        InvalidParameterError
            For another precision, or latents of another shape than the model's.
        """
        return pipeline.decode(self, latents, precision)

    # ------------------------------------------------------------------------- a subject's own scan

    def reconstruct(self, scan: Scan, *, device: str = "auto") -> Reconstruction:
        """The autoencoder's view of a scan from :func:`brainsynth.load_scan`, with PSNR, SSIM and the error map."""
        from brainsynth.scans import editing

        return editing.reconstruct(self, scan, device=device)

    def invert(self, scan: Scan, covariates: Mapping[str, Any] | None = None, **options: Any) -> Inversion:
        """Invert a scan with deterministic DDIM under its own ``covariates`` (given, or measured where
        the model can) and regenerate it (see :func:`brainsynth.scans.editing.invert_scan`)."""
        from brainsynth.scans import editing

        return editing.invert_scan(self, scan, source=covariates, **options)

    def edit(self, scan: Scan, targets: Sequence[Mapping[str, Any]] | None = None, **values: Any) -> EditResult:
        """Edit a scan's covariates: ``model.edit(scan, age=80, source={"sex": "female", "age": 63})``.

        Covariates given as keywords make one edit; ``targets`` (a list of covariate sets) make one
        each, sharing one inversion (a traversal). Options: ``source`` (the scan's own covariates),
        ``strength`` (0 to 1, the share of the steps inverted; default 0.5), ``steps``, ``device``,
        ``precision``, ``extrapolate``, ``callback`` (see :func:`brainsynth.scans.editing.edit`).
        """
        from brainsynth.scans import editing

        options = {k: values.pop(k) for k in list(values) if k in editing.EDIT_OPTIONS}
        if targets is not None and values:
            raise InvalidParameterError(f"give targets or covariates as keywords, not both (got {', '.join(values)})")
        return editing.edit(self, scan, targets if targets is not None else [values], **options)

    def _run(self, request: requests.Request) -> SampleResult:
        settings = self.settings(request.batch_size, **request.options)
        return pipeline.run(self, settings, request.noise, request.conditions, request.callback)
