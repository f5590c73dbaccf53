"""A latent diffusion model that samples brains conditioned on covariates in real units.

The pipeline only chains its parts: initial noise ``x_T`` (drawn on the CPU) -> denoising loop
(:func:`brainsynth.sampling.loop.denoise`) -> unscale (``z = x_0 / scale_factor``) -> decode.
"""

from __future__ import annotations

import secrets
import time
import warnings
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import monai
import numpy as np
import torch

from brainsynth._version import __version__
from brainsynth.config import MAX_GUIDANCE, SAMPLING_PRECISIONS, SAMPLING_PRECISIONS_TEXT, ModelConfig
from brainsynth.covariates import ResolvedCovariates, resolve_covariates
from brainsynth.devices import low_precision_issues, resolve_device, resolve_precision
from brainsynth.errors import InvalidParameterError
from brainsynth.result import SampleResult
from brainsynth.sampling.decoding import (
    DECODING_MODES,
    SplitDecoder,
    UnsupportedDecoderError,
    check_split_supported,
    choose_decoding,
)
from brainsynth.sampling.loop import PRECISIONS, ProgressCallback, StepProgress, autocast, denoise
from brainsynth.sampling.noise import check_seed, draw_noise, slerp
from brainsynth.sampling.schedulers import (
    SPACED_SCHEDULERS,
    STOCHASTIC_SCHEDULERS,
    check_scheduler_settings,
    make_scheduler,
)
from brainsynth.sampling.timesteps import DEFAULT_TIMESTEP_SPACING


class LatentDiffusionModel:
    """An autoencoder, a conditioned diffusion U-Net and their configuration.

    Load one with :func:`brainsynth.load_model`; sample with :meth:`sample`, :meth:`traverse` and
    :meth:`interpolate`.

    Parameters
    ----------
    config : ModelConfig
        Networks, noise schedule, grids and covariates.
    autoencoder : torch.nn.Module
        MONAI ``AutoencoderKL`` with weights loaded.
    unet : torch.nn.Module
        MONAI ``DiffusionModelUNet`` with weights loaded.
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
        self.last_decoding: str | None = None
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
        """Store the U-Net's weights in ``dtype`` (``"float32"``, ``"bfloat16"`` or ``"float16"``).

        Convolution and linear weights (nearly all of them) change type; normalisation layers stay
        float32. bfloat16 halves the U-Net's memory (1.1 GB instead of 2.2 GB for the published model);
        the model then samples with the matching ``precision`` only. Going back to float32 does not
        restore the discarded bits: reload the model for exact float32 sampling.
        """
        if dtype not in PRECISIONS:
            raise InvalidParameterError(f"weight dtype must be one of {', '.join(PRECISIONS)} (got {dtype!r})")
        for layer in _weight_layers(self.unet):
            layer.to(PRECISIONS[dtype] or torch.float32)
        return self

    def compile(self, **options: Any) -> LatentDiffusionModel:
        """Compile the U-Net with :func:`torch.compile` (in place; its weights and their names are kept).

        Parameters
        ----------
        **options
            Passed to :func:`torch.compile`, e.g. ``mode="max-autotune"`` or ``backend="aot_eager"``.
            The first sampling call pays the compilation; later calls with the same shapes are faster.
        """
        self.unet.compile(**options)
        self.compiled = dict(options) or {"mode": "default"}
        return self

    # ----------------------------------------------------------------------------------- public API

    def sample(
        self,
        covariates: Mapping[str, Any] | None = None,
        *,
        seed: int | None = None,
        noise: torch.Tensor | None = None,
        steps: int | None = None,
        scheduler: str | None = None,
        eta: float = 0.0,
        batch_size: int = 1,
        device: str | torch.device = "auto",
        extrapolate: bool = False,
        callback: ProgressCallback | None = None,
        precision: str | None = None,
        guidance: float | None = None,
        timestep_spacing: str | None = None,
        **covariate_values: Any,
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
        steps : int, optional
            Number of denoising steps (default: the model's, 50 for the published model).
        scheduler : {"ddim", "ddpm", "pndm"}, optional
            Solver of the reverse process (default: the model's, ``"ddim"``).
        eta : float
            DDIM stochasticity, 0 (deterministic, the default) to 1.
        batch_size : int
            Number of brains generated together.
        device : str
            ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
        extrapolate : bool
            Allow covariates beyond the training range (recorded in the result).
        callback : callable, optional
            Called once per step with a :class:`~brainsynth.sampling.loop.StepProgress`; raise
            :class:`~brainsynth.errors.SamplingCancelled` in it to cancel.
        precision : {"float32", "bfloat16", "float16", "auto"}, optional
            Network precision: float32 (exact) or autocast to bfloat16 (CPU or GPU) or float16 (GPU);
            ``auto`` is bfloat16 on CPUs with native bfloat16 arithmetic and float32 elsewhere. Solver
            steps always run in float32. Default: the model's (float32 for the published model, auto
            for the demo model); the result's settings record the precision used.
        guidance : float, optional
            Classifier-free guidance scale, at least 1 (default: the model's). Above 1 the brain
            follows the covariates more closely, at the cost of a second U-Net pass per step; only
            for models trained with conditioning dropout (``model.config.null_condition`` set).
        timestep_spacing : {"leading", "linspace", "trailing"}, optional
            Which timesteps a DDIM or DDPM run evaluates the U-Net at (see
            :data:`brainsynth.sampling.timesteps.TIMESTEP_SPACINGS`). Default ``"leading"``, the published
            model's (980, 960, ..., 0 for 50 steps); ``"linspace"`` is MONAI 1.6's. The result's
            settings record the spacing and the timesteps.

        Returns
        -------
        SampleResult
            ``batch_size`` brains (or one per noise tensor).

        Examples
        --------
        >>> model = brainsynth.load_model("ukb")  # doctest: +SKIP
        >>> result = model.sample(sex="female", age=70, ventricular_volume=45, brain_volume=1400,
        ...                       seed=1)  # doctest: +SKIP
        >>> result.save("brain.nii.gz")  # doctest: +SKIP
        """
        resolved = self._resolve({**(covariates or {}), **covariate_values}, extrapolate)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidParameterError(f"batch_size must be a positive integer (got {batch_size!r})")
        plan = _SamplingPlan.check(
            self,
            steps,
            scheduler,
            eta,
            device,
            precision=precision,
            guidance=guidance,
            timestep_spacing=timestep_spacing,
        )
        if noise is not None:
            x_T = self._check_noise(noise)  # noqa: N806
            base = check_seed(seed) if seed is not None else secrets.randbelow(2**31)
            seeds: list[int | None] = [None] * x_T.shape[0]
            step_seeds = [base + i for i in range(x_T.shape[0])]
            noise_info = [{"kind": "explicit", "index": i, "step_seed": s} for i, s in enumerate(step_seeds)]
        else:
            base = check_seed(seed) if seed is not None else secrets.randbelow(2**31)
            seeds = [base + i for i in range(batch_size)]
            check_seed(seeds[-1], "seed + batch_size - 1")
            x_T = torch.stack([draw_noise(s, self.config.latent_shape) for s in seeds])  # noqa: N806
            noise_info = [{"kind": "seed", "seed": s} for s in seeds]
            step_seeds = list(seeds)
        return self._run(plan, x_T, [resolved] * x_T.shape[0], seeds, noise_info, step_seeds, callback)

    def sample_batch(
        self,
        covariates: Sequence[Mapping[str, Any]],
        seeds: Sequence[int],
        *,
        steps: int | None = None,
        scheduler: str | None = None,
        eta: float = 0.0,
        batch_size: int = 1,
        device: str | torch.device = "auto",
        extrapolate: bool = False,
        callback: ProgressCallback | None = None,
        precision: str | None = None,
        guidance: float | None = None,
        timestep_spacing: str | None = None,
    ) -> SampleResult:
        """Generate one brain per (covariates, seed) pair, e.g. rows of a table.

        Parameters
        ----------
        covariates : sequence of mapping
            Covariates in real units for each brain.
        seeds : sequence of int
            Seed of each brain's initial noise (same length).
        batch_size : int
            Number of brains passed through the networks together.
            See :meth:`sample` for the other parameters.

        Returns
        -------
        SampleResult
            One item per pair, in order; item ``i`` equals ``sample(covariates[i], seed=seeds[i])``.
        """
        if len(covariates) != len(seeds) or not seeds:
            raise InvalidParameterError(
                f"covariates and seeds must be non-empty and of equal length (got {len(covariates)} and {len(seeds)})"
            )
        resolved = [self._resolve(dict(values), extrapolate) for values in covariates]
        checked = [check_seed(seed, f"seeds[{i}]") for i, seed in enumerate(seeds)]
        plan = _SamplingPlan.check(
            self,
            steps,
            scheduler,
            eta,
            device,
            batch_size=batch_size,
            precision=precision,
            guidance=guidance,
            timestep_spacing=timestep_spacing,
        )
        x_T = torch.stack([draw_noise(s, self.config.latent_shape) for s in checked])  # noqa: N806
        noise_info = [{"kind": "seed", "seed": s} for s in checked]
        return self._run(plan, x_T, resolved, checked, noise_info, checked, callback)

    def traverse(
        self,
        covariate: str,
        values: Sequence[float | str],
        *,
        seed: int = 0,
        steps: int | None = None,
        scheduler: str | None = None,
        eta: float = 0.0,
        batch_size: int = 1,
        device: str | torch.device = "auto",
        extrapolate: bool = False,
        callback: ProgressCallback | None = None,
        precision: str | None = None,
        guidance: float | None = None,
        timestep_spacing: str | None = None,
        **covariate_values: Any,
    ) -> SampleResult:
        """Sweep one covariate with everything else fixed, the initial noise included.

        Parameters
        ----------
        covariate : str
            Name of the covariate to sweep.
        values : sequence
            Its values, in real units; one brain per value.
        seed : int
            Seed of the shared initial noise.
        batch_size : int
            Number of values passed through the networks together.
        **covariate_values
            The other covariates (defaults otherwise). See :meth:`sample` for the other parameters.

        Returns
        -------
        SampleResult
            One item per value, in order.

        Examples
        --------
        >>> model.traverse("age", [50, 60, 70, 80], seed=3)  # doctest: +SKIP
        """
        spec = self.config.covariate(covariate)
        if covariate in covariate_values:
            raise InvalidParameterError(f"{covariate} is swept by values; do not also give it as a fixed covariate")
        if isinstance(values, str) or len(values) < 1:
            raise InvalidParameterError(f"values must be a non-empty sequence of {spec.name} values (got {values!r})")
        resolved = [self._resolve({**covariate_values, covariate: v}, extrapolate) for v in values]
        plan = _SamplingPlan.check(
            self,
            steps,
            scheduler,
            eta,
            device,
            batch_size=batch_size,
            precision=precision,
            guidance=guidance,
            timestep_spacing=timestep_spacing,
        )
        seed = check_seed(seed)
        x_T = draw_noise(seed, self.config.latent_shape).expand(len(values), *self.config.latent_shape)  # noqa: N806
        noise_info = [{"kind": "seed", "seed": seed} for _ in values]
        return self._run(plan, x_T, resolved, [seed] * len(values), noise_info, [seed] * len(values), callback)

    def interpolate(
        self,
        seed_a: int,
        seed_b: int,
        frames: int,
        *,
        covariates_a: Mapping[str, Any] | None = None,
        covariates_b: Mapping[str, Any] | None = None,
        steps: int | None = None,
        scheduler: str | None = None,
        eta: float = 0.0,
        batch_size: int = 1,
        device: str | torch.device = "auto",
        extrapolate: bool = False,
        callback: ProgressCallback | None = None,
        precision: str | None = None,
        guidance: float | None = None,
        timestep_spacing: str | None = None,
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
        batch_size : int
            Number of frames passed through the networks together.
            See :meth:`sample` for the other parameters.

        Returns
        -------
        SampleResult
            One item per frame.
        """
        seed_a, seed_b = check_seed(seed_a, "seed_a"), check_seed(seed_b, "seed_b")
        if isinstance(frames, bool) or not isinstance(frames, int) or frames < 2:
            raise InvalidParameterError(f"frames must be an integer of at least 2 (got {frames!r})")
        end_a = self._resolve(dict(covariates_a or {}), extrapolate)
        end_b = self._resolve(dict(covariates_b if covariates_b is not None else covariates_a or {}), extrapolate)
        plan = _SamplingPlan.check(
            self,
            steps,
            scheduler,
            eta,
            device,
            batch_size=batch_size,
            precision=precision,
            guidance=guidance,
            timestep_spacing=timestep_spacing,
        )
        noise_a, noise_b = draw_noise(seed_a, self.config.latent_shape), draw_noise(seed_b, self.config.latent_shape)
        positions = np.linspace(0.0, 1.0, frames)
        x_T = torch.stack([slerp(noise_a, noise_b, float(t)) for t in positions])  # noqa: N806
        resolved = [self._blend(end_a, end_b, float(t)) for t in positions]
        noise_info = [{"kind": "slerp", "seed_a": seed_a, "seed_b": seed_b, "t": float(t)} for t in positions]
        step_seeds = [seed_a if t < 0.5 else seed_b for t in positions]
        return self._run(plan, x_T, resolved, [None] * frames, noise_info, step_seeds, callback)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, *, precision: str = "float32") -> np.ndarray:
        """Decode latents ``x_0`` (already on the model's device) into volumes.

        Parameters
        ----------
        latents : torch.Tensor
            Shape (B, C, X', Y', Z'), as produced by the denoising loop (scaled by ``scale_factor``).
        precision : {"float32", "bfloat16", "float16", "auto"}
            Autocast precision of the decoder (``auto`` as in :meth:`sample`).

        Returns
        -------
        numpy.ndarray
            float32, shape (B, X, Y, Z).

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
        mode, slab_bytes = choose_decoding(self.autoencoder, tuple(latents.shape[1:]), latents.device, self.decoding)
        decode = SplitDecoder(self.autoencoder, slab_bytes) if mode == "split" else self.autoencoder.decode
        self.last_decoding = mode
        volumes = []
        for latent in latents:
            with autocast(latent.device, precision):
                image = decode(latent[None] / self.config.scale_factor)
            volumes.append(image[0, 0].float().cpu().numpy())
            del image
        return np.stack(volumes).astype(np.float32, copy=False)

    # ------------------------------------------------------------------------------------ internals

    def _resolve(self, values: Mapping[str, Any], extrapolate: bool) -> ResolvedCovariates:
        return resolve_covariates(self.config.covariates, values, extrapolate=extrapolate)

    def _blend(self, a: ResolvedCovariates, b: ResolvedCovariates, t: float) -> ResolvedCovariates:
        real: dict[str, Any] = {}
        normalised = []
        for spec, (name, va), vb, na, nb in zip(
            self.config.covariates, a.real.items(), b.real.values(), a.normalised, b.normalised, strict=True
        ):
            if spec.categorical:
                real[name], value = (va, na) if t < 0.5 else (vb, nb)
            else:
                value = (1.0 - t) * na + t * nb
                real[name] = spec.denormalise(value)
            normalised.append(value)
        extrapolated = tuple(dict.fromkeys((*a.extrapolated, *b.extrapolated)))
        return ResolvedCovariates(real=real, normalised=tuple(normalised), extrapolated=extrapolated)

    def _check_noise(self, noise: torch.Tensor) -> torch.Tensor:
        if not isinstance(noise, torch.Tensor):
            raise InvalidParameterError(f"noise must be a torch.Tensor (got {type(noise).__name__})")
        shape = tuple(self.config.latent_shape)
        batch = noise[None] if tuple(noise.shape) == shape else noise
        if tuple(batch.shape[1:]) != shape or batch.ndim != 5 or batch.shape[0] < 1:
            raise InvalidParameterError(
                f"noise must have shape {shape} or (B, {', '.join(map(str, shape))}) (got {tuple(noise.shape)})"
            )
        if not torch.isfinite(batch).all():
            raise InvalidParameterError("noise must be finite (it holds NaN or infinite values)")
        return batch.detach().to("cpu", torch.float32)

    def _run(
        self,
        plan: _SamplingPlan,
        x_T: torch.Tensor,  # noqa: N803
        resolved: Sequence[ResolvedCovariates],
        seeds: Sequence[int | None],
        noise_info: Sequence[dict[str, Any]],
        step_seeds: Sequence[int],
        callback: ProgressCallback | None,
    ) -> SampleResult:
        started = time.perf_counter()
        self.to(plan.device)
        if plan.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest 3D kernels
        chunk = plan.batch_size or x_T.shape[0]
        latents, volumes = [], []
        for start in range(0, x_T.shape[0], chunk):
            stop = min(start + chunk, x_T.shape[0])
            latent = self._denoise_chunk(
                plan,
                x_T[start:stop],
                resolved[start:stop],
                step_seeds[start:stop],
                _offset_callback(callback, start // chunk, -(-x_T.shape[0] // chunk)),
            )
            latents.append(latent.float().cpu().numpy())
            volumes.append(self.decode(latent, precision=plan.precision))
        volumes = np.concatenate(volumes)
        broken = int((~np.isfinite(volumes)).sum())
        if broken:
            warnings.warn(
                f"{broken} voxels of the sampled brains are NaN or infinite; the model's weights or decoder "
                "produce them, and such brains are not written",
                RuntimeWarning,
                stacklevel=3,
            )
        return SampleResult(
            volumes=volumes,
            affine=self.config.affine_array,
            covariates=tuple(dict(r.real) for r in resolved),
            covariates_normalised=tuple(r.normalised_by_name for r in resolved),
            seeds=tuple(seeds),
            noise=tuple(noise_info),
            extrapolated=tuple(r.extrapolated for r in resolved),
            settings={**plan.settings(x_T.shape[0]), "decoding": self.last_decoding, "compiled": self.compiled},
            provenance=self._provenance(plan.device, time.perf_counter() - started),
            latents=np.concatenate(latents),
        )

    def _denoise_chunk(
        self,
        plan: _SamplingPlan,
        x_T: torch.Tensor,  # noqa: N803
        resolved: Sequence[ResolvedCovariates],
        step_seeds: Sequence[int],
        callback: ProgressCallback | None,
    ) -> torch.Tensor:
        covariates = torch.tensor([r.normalised for r in resolved], dtype=torch.float32, device=plan.device)
        generators = None
        if plan.stochastic:
            generators = [torch.Generator(device="cpu").manual_seed(s) for s in step_seeds]
            for generator in generators:  # advance past the draw of x_T, as if one stream served both
                torch.randn(tuple(self.config.latent_shape), generator=generator)
        return denoise(
            self.unet,
            plan.make_scheduler(self.config),
            x_T.to(plan.device),
            covariates,
            conditioning=self.config.conditioning,
            prediction_type=self.config.noise_schedule.prediction_type,
            eta=plan.eta,
            generators=generators,
            callback=callback,
            precision=plan.precision,
            guidance=plan.guidance,
            null_condition=self.config.null_condition,
        )

    def _provenance(self, device: torch.device, elapsed: float) -> dict[str, Any]:
        return {
            "model": self.name,
            "model_source": self.source,
            "weights": self.weight_hashes,
            "brainsynth_version": __version__,
            "torch_version": torch.__version__,
            "monai_version": monai.__version__,
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else device.type,
            "time_taken_s": round(elapsed, 3),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }


class _SamplingPlan:
    """Validated sampling settings (every check happens here, before any compute)."""

    def __init__(
        self,
        steps: int,
        scheduler: str,
        eta: float,
        device: torch.device,
        batch_size: int | None,
        precision: str = "float32",
        guidance: float = 1.0,
        timestep_spacing: str | None = None,
    ):
        self.steps, self.scheduler, self.eta, self.device, self.batch_size = steps, scheduler, eta, device, batch_size
        self.precision, self.guidance = precision, guidance
        if timestep_spacing is None and scheduler in SPACED_SCHEDULERS | {"pndm"}:
            timestep_spacing = DEFAULT_TIMESTEP_SPACING
        self.timestep_spacing = timestep_spacing
        self.timesteps: list[int] = []
        self.weight_dtype = "float32"
        self.stochastic = scheduler in STOCHASTIC_SCHEDULERS or eta > 0

    @classmethod
    def check(
        cls,
        model: LatentDiffusionModel,
        steps: int | None,
        scheduler: str | None,
        eta: float,
        device: str | torch.device,
        *,
        batch_size: int | None = None,
        precision: str | None = None,
        guidance: float | None = None,
        timestep_spacing: str | None = None,
    ) -> _SamplingPlan:
        steps = model.config.default_steps if steps is None else steps
        guidance = check_guidance(model.config, guidance)
        if precision is None:
            precision = model.weight_dtype if model.weight_dtype != "float32" else model.config.default_precision
        if precision not in SAMPLING_PRECISIONS:
            raise InvalidParameterError(f"precision must be one of {SAMPLING_PRECISIONS_TEXT} (got {precision!r})")
        name = check_scheduler_settings(
            scheduler or model.config.default_scheduler, steps, eta, model.config.noise_schedule, timestep_spacing
        )
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise InvalidParameterError(f"batch_size must be a positive integer (got {batch_size!r})")
        target = resolve_device(device)
        precision = resolve_precision(precision, target)
        if model.weight_dtype != "float32" and precision != model.weight_dtype:
            raise InvalidParameterError(
                f"the U-Net's weights are stored in {model.weight_dtype}: sample with precision "
                f"{model.weight_dtype!r} (got {precision!r})"
            )
        if precision == "float16" and target.type == "cpu":
            raise InvalidParameterError("precision float16 needs a GPU; use bfloat16 on the CPU (got float16 on cpu)")
        if target.type == "cuda":
            for issue in low_precision_issues(precision):
                warnings.warn(issue, RuntimeWarning, stacklevel=4)
        plan = cls(steps, name, float(eta), target, batch_size, precision, guidance, timestep_spacing)
        plan.weight_dtype = model.weight_dtype
        plan.timesteps = [int(t) for t in plan.make_scheduler(model.config).timesteps]
        return plan

    def make_scheduler(self, config: ModelConfig):
        """A fresh scheduler for one run (multistep solvers keep a history)."""
        spacing = self.timestep_spacing if self.scheduler in SPACED_SCHEDULERS else None
        return make_scheduler(self.scheduler, config.noise_schedule, self.steps, spacing)

    def settings(self, count: int) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "scheduler": self.scheduler,
            "eta": self.eta,
            "device": str(self.device),
            "batch_size": self.batch_size or count,
            "precision": self.precision,
            "weight_dtype": self.weight_dtype,
            "guidance": self.guidance,
            "timestep_spacing": self.timestep_spacing,
            "timesteps": list(self.timesteps),
        }


def check_guidance(config: ModelConfig, guidance: float | None) -> float:
    """The guidance scale to use: ``guidance`` checked against the model, or the model's default."""
    if guidance is None:
        return float(config.default_guidance)
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not 1.0 <= guidance <= MAX_GUIDANCE:
        raise InvalidParameterError(f"guidance must be a number from 1 to {MAX_GUIDANCE:g} (got {guidance!r})")
    if guidance != 1.0 and config.null_condition is None:
        raise InvalidParameterError(
            f"guidance must be 1 for model '{config.name}': it was trained without conditioning dropout, so it "
            f"cannot predict without covariates (got {guidance!r})"
        )
    return float(guidance)


def _weight_layers(network: torch.nn.Module) -> list[torch.nn.Module]:
    """The convolution and linear layers of a network, which hold nearly all of its weights."""
    kinds = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Linear)
    return [m for m in network.modules() if isinstance(m, kinds)]


def _offset_callback(callback: ProgressCallback | None, chunk: int, chunks: int) -> ProgressCallback | None:
    """Number the steps of chunk ``chunk`` of ``chunks`` as part of one run."""
    if callback is None or chunks == 1:
        return callback

    def numbered(progress: StepProgress) -> None:
        callback(
            StepProgress(
                step=chunk * progress.total + progress.step,
                total=chunks * progress.total,
                timestep=progress.timestep,
                latent=progress.latent,
                predicted_clean=progress.predicted_clean,
            )
        )

    return numbered
