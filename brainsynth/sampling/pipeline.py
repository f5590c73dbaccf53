"""The sampling pipeline, read top to bottom: one function that only composes the parts.

:func:`run` takes checked settings (:class:`~brainsynth.sampling.settings.SamplingSettings`), a noise
plan (:class:`~brainsynth.sampling.noise.NoisePlan`) and one resolved covariate set per item, and

1. places the networks on the device;
2. denoises the items in chunks of the batch size (:func:`brainsynth.sampling.loop.denoise`);
3. unscales and decodes each chunk (``z = x_0 / scale_factor``; :func:`decode_latents`);
4. checks the volumes are finite (a warning here; saving refuses them);
5. records the settings, the noise and the provenance in a :class:`~brainsynth.result.SampleResult`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import monai
import numpy as np
import torch

from brainsynth._version import __version__
from brainsynth.config import SAMPLING_PRECISIONS, SAMPLING_PRECISIONS_TEXT, ModelConfig
from brainsynth.covariates import ResolvedCovariates
from brainsynth.devices import resolve_precision
from brainsynth.errors import InvalidParameterError
from brainsynth.result import SampleResult
from brainsynth.sampling.decoding import SplitDecoder, choose_decoding, prefers_channels_last
from brainsynth.sampling.loop import ProgressCallback, autocast, denoise, renumbered
from brainsynth.sampling.noise import NoisePlan
from brainsynth.sampling.settings import SamplingSettings

if TYPE_CHECKING:
    from brainsynth.model import LatentDiffusionModel


@dataclass(frozen=True)
class Decoded:
    """Decoded volumes, float32 (B, X, Y, Z), and the decoding mode used (``"full"`` or ``"split"``)."""

    volumes: np.ndarray
    mode: str


@torch.no_grad()
def decode_latents(
    autoencoder: torch.nn.Module, latents: torch.Tensor, config: ModelConfig, precision: str, decoding: str
) -> Decoded:
    """Unscale latents ``x_0`` (checked, on the autoencoder's device) and decode them one at a time.

    ``decoding`` is ``"auto"``, ``"full"`` or ``"split"``; ``precision`` a resolved network precision.
    """
    mode, slab_bytes = choose_decoding(autoencoder, tuple(latents.shape[1:]), latents.device, decoding)
    decode = SplitDecoder(autoencoder, slab_bytes) if mode == "split" else autoencoder.decode
    channels_last = mode == "full" and prefers_channels_last(latents.device)
    if channels_last:  # the weights once, in place (values unchanged), then each latent
        autoencoder.to(memory_format=torch.channels_last_3d)
    volumes = []
    for latent in latents:
        latent = latent[None] / config.scale_factor
        if channels_last:
            latent = latent.contiguous(memory_format=torch.channels_last_3d)
        with autocast(latent.device, precision):
            image = decode(latent)
        volumes.append(image[0, 0].float().cpu().numpy())
        del image
    return Decoded(np.stack(volumes).astype(np.float32, copy=False), mode)


def decode(model: LatentDiffusionModel, latents: torch.Tensor, precision: str = "float32") -> np.ndarray:
    """Check and decode latents as :meth:`~brainsynth.model.LatentDiffusionModel.decode` documents."""
    if precision not in SAMPLING_PRECISIONS:
        raise InvalidParameterError(f"precision must be one of {SAMPLING_PRECISIONS_TEXT} (got {precision!r})")
    latent_shape = tuple(model.config.latent_shape)
    if not isinstance(latents, torch.Tensor) or latents.ndim != 5 or tuple(latents.shape[1:]) != latent_shape:
        got = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
        raise InvalidParameterError(
            f"latents must be a tensor of shape (B, {', '.join(map(str, latent_shape))}) (got {got})"
        )
    precision = resolve_precision(precision, latents.device)
    return decode_latents(model.autoencoder, latents, model.config, precision, model.decoding).volumes


def run(
    model: LatentDiffusionModel,
    settings: SamplingSettings,
    noise: NoisePlan,
    conditions: Sequence[ResolvedCovariates],
    callback: ProgressCallback | None = None,
) -> SampleResult:
    """Sample one brain per noise item, conditioned on the matching covariates (see the module's steps)."""
    started = time.perf_counter()
    config = model.config
    # 1. Place the networks.
    model.to(settings.device)
    if settings.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest 3D kernels
    # 2. and 3. Denoise each chunk, then unscale and decode it.
    chunk = settings.batch_size or len(noise)
    chunks = -(-len(noise) // chunk)
    steps = len(settings.timesteps)
    latents, volumes, mode = [], [], None
    for index, start in enumerate(range(0, len(noise), chunk)):
        stop = min(start + chunk, len(noise))
        covariates = torch.tensor(
            [c.normalised for c in conditions[start:stop]], dtype=torch.float32, device=settings.device
        )
        latent = denoise(
            model.unet,
            settings.make_scheduler(config),  # a fresh solver: multistep solvers keep a history
            noise.x_T[start:stop].to(settings.device),
            covariates,
            conditioning=config.conditioning,
            prediction_type=config.noise_schedule.prediction_type,
            eta=settings.eta,
            generators=noise.generators(start, stop, config.latent_shape) if settings.stochastic else None,
            callback=callback if chunks == 1 else renumbered(callback, index * steps, chunks * steps),
            precision=settings.precision,
            guidance=settings.guidance,
            null_condition=config.null_condition,
        )
        latents.append(latent.float().cpu().numpy())
        decoded = decode_latents(model.autoencoder, latent, config, settings.precision, model.decoding)
        volumes.append(decoded.volumes)
        mode = decoded.mode
    volumes = np.concatenate(volumes)
    # 4. Check.
    broken = int((~np.isfinite(volumes)).sum())
    if broken:
        warnings.warn(
            f"{broken} voxels of the sampled brains are NaN or infinite; the model's weights or decoder "
            "produce them, and such brains are not written",
            RuntimeWarning,
            stacklevel=4,
        )
    # 5. Record.
    return SampleResult(
        volumes=volumes,
        affine=config.affine_array,
        covariates=tuple(dict(c.real) for c in conditions),
        covariates_normalised=tuple(c.normalised_by_name for c in conditions),
        seeds=noise.seeds,
        noise=noise.records,
        extrapolated=tuple(c.extrapolated for c in conditions),
        settings={**settings.record(len(noise)), "decoding": mode, "compiled": model.compiled},
        provenance=provenance(model, settings.device, time.perf_counter() - started),
        latents=np.concatenate(latents),
    )


def provenance(model: LatentDiffusionModel, device: torch.device, elapsed: float) -> dict[str, Any]:
    """Where a result came from: the model, its weights, the software, the device and the time."""
    return {
        "model": model.name,
        "model_source": model.source,
        "weights": model.weight_hashes,
        "brainsynth_version": __version__,
        "torch_version": torch.__version__,
        "monai_version": monai.__version__,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else device.type,
        "time_taken_s": round(elapsed, 3),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
