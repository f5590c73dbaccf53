"""Latent diffusion training: a conditioned MONAI ``DiffusionModelUNet`` on cached autoencoder latents.

Notation: ``z = scale_factor * (mu + sigma * e)`` is a latent drawn from the autoencoder's posterior;
``x_t = sqrt(alpha_bar_t) z + sqrt(1 - alpha_bar_t) eps`` its noised version at timestep ``t``; the
U-Net predicts ``eps`` from ``x_t``, ``t`` and the covariates ``c`` (concatenated and as
cross-attention context). ``scale_factor = 1 / std(mu)`` over the training latents, so the U-Net sees
latents of unit variance. Weights are averaged with an exponential moving average (EMA); the EMA
weights are the result. The result is a brainsynth model folder written into the run folder.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from brainsynth.bids import TrainingImages
from brainsynth.config import ModelConfig
from brainsynth.errors import InvalidParameterError, ModelLoadError
from brainsynth.loading.model_dir import default_model_card, write_model_files
from brainsynth.loading.networks import build_unet
from brainsynth.model import LatentDiffusionModel
from brainsynth.sampling.loop import conditioning_inputs
from brainsynth.sampling.schedulers import training_noise
from brainsynth.training.autoencoder import _unwrap, load_trained_autoencoder, read_autoencoder_manifest
from brainsynth.training.distributed import Distributed, barrier
from brainsynth.training.logs import RunLogger, middle_slices
from brainsynth.training.loop import TrainingTask, lr_factor, step_generator
from brainsynth.training.settings import TrainingConfig

LATENT_CACHE = "latents.pt"
#: Covariate value that stands for "no conditioning" under conditioning dropout.
NULL_CONDITION = -1.0


def check_autoencoder_folder(folder: str | Path, config: TrainingConfig) -> str:
    """Check a trained autoencoder's manifest for a diffusion run before any work; return its weights' SHA-256.

    The weights themselves are checked against that hash when the run loads them.

    Raises
    ------
    ModelLoadError
        If the folder holds no finished autoencoder run.
    InvalidParameterError
        If its grid differs from the diffusion configuration's (an autoencoder knows no covariates).
    """
    manifest = read_autoencoder_manifest(folder)  # the weights are checked and loaded once, by the task
    _check_autoencoder(manifest, config, Path(folder).expanduser())
    return str(manifest["weights"]["sha256"])


def _check_autoencoder(manifest: dict[str, Any], config: TrainingConfig, folder: Path) -> None:
    data = manifest["data"]
    problems = []
    if tuple(data["shape"]) != tuple(config.data.shape) or float(data["spacing"]) != float(config.data.spacing):
        problems.append(
            f"it was trained on a {'x'.join(map(str, data['shape']))} grid of {data['spacing']:g} mm, "
            f"the diffusion config asks for {'x'.join(map(str, config.data.shape))} of "
            f"{config.data.spacing:g} mm"
        )
    if problems:
        raise InvalidParameterError(f"autoencoder {folder} does not match the diffusion config: " + "; ".join(problems))


def _model_config(
    config: TrainingConfig, manifest: dict[str, Any], latent_shape: tuple[int, ...], scale_factor: float
) -> ModelConfig:
    unet = config.diffusion.network
    specs = config.data.covariate_specs
    concat = unet.get("in_channels") == latent_shape[0] + len(specs)
    mode = "concat+crossattn" if concat and unet.get("with_conditioning") else ("concat" if concat else "crossattn")
    try:
        return ModelConfig(
            name=config.name,
            description=config.description,
            autoencoder=manifest["network"],
            unet=unet,
            noise_schedule=config.diffusion.noise_schedule,
            latent_shape=latent_shape,
            image_shape=tuple(config.data.shape),
            affine=tuple(tuple(row) for row in manifest["affine"]),
            covariates=specs,
            conditioning=mode,
            scale_factor=scale_factor,
            default_steps=config.diffusion.sampling_steps,
            default_scheduler=config.diffusion.sampling_scheduler,
            null_condition=NULL_CONDITION if config.diffusion.conditioning_dropout > 0 else None,
            default_guidance=config.diffusion.sampling_guidance,
            default_precision=config.diffusion.sampling_precision,
            extra={
                "training": {
                    "config": config.name,
                    "diffusion_steps": config.diffusion.steps,
                    "null_condition": NULL_CONDITION,
                }
            },
        )
    except ModelLoadError as exc:
        raise InvalidParameterError(f"the diffusion config does not fit the autoencoder: {exc}") from exc


@torch.no_grad()
def encode_latents(autoencoder: torch.nn.Module, data: TrainingImages, device: torch.device) -> dict[str, torch.Tensor]:
    """Encode every training image once: posterior means and standard deviations, (N, C, X', Y', Z')."""
    means, sigmas = [], []
    autoencoder = autoencoder.to(device).eval()
    for index in range(len(data)):
        mu, sigma = autoencoder.encode(data.images(torch.tensor([index])).to(device))
        means.append(mu.cpu())
        sigmas.append(sigma.cpu())
    return {"mu": torch.cat(means), "sigma": torch.cat(sigmas)}


def cached_latents(
    folder: Path, autoencoder: torch.nn.Module, manifest: dict[str, Any], data: TrainingImages, context: Distributed
) -> dict[str, torch.Tensor]:
    """Latents from ``folder/latents.pt``, encoding them first if the cache is missing or stale."""
    path = folder / LATENT_CACHE
    key = manifest["weights"]["sha256"] + ":" + ",".join(s.participant_id for s in data.subjects)
    if context.is_main:
        current = _read_latents(path)
        if current is None or current.get("key") != key:
            latents = encode_latents(autoencoder, data, context.device)
            temp = path.with_suffix(".part")
            torch.save({**latents, "key": key}, temp)
            os.replace(temp, path)
    barrier(context)
    cache = torch.load(path, weights_only=True)
    return {"mu": cache["mu"], "sigma": cache["sigma"]}


def _read_latents(path: Path) -> dict[str, Any] | None:
    """The latent cache, or ``None`` where it is missing, unreadable or not a cache (it is then made anew)."""
    if not path.is_file():
        return None
    try:
        cache = torch.load(path, weights_only=True)
    except Exception as exc:  # a truncated or foreign file: torch raises many types; the cache is derived data
        warnings.warn(
            f"{path} is not a readable latent cache ({type(exc).__name__}); encoding the latents anew", stacklevel=3
        )
        return None
    if not isinstance(cache, dict) or not all(isinstance(cache.get(k), torch.Tensor) for k in ("mu", "sigma")):
        return None
    return cache


def initialise_from_model(
    unet: torch.nn.Module, model: LatentDiffusionModel, config: ModelConfig, *, same_autoencoder: bool = True
) -> None:
    """Copy the U-Net weights of ``model`` into ``unet`` (fine-tuning starts from them).

    The model must have the same U-Net settings, latent shape and covariates as the run, and, with
    ``same_autoencoder``, the same scale factor, which is the case for a model trained with the same
    autoencoder on the same data. Without it (``diffusion.init_autoencoder: "fine-tuned"``) the run's
    autoencoder was fine-tuned from the model's, and the run's own scale factor is used.
    """
    problems = []
    if dict(model.config.unet) != dict(config.unet):
        problems.append("its U-Net settings differ from the configuration's")
    if tuple(model.config.latent_shape) != tuple(config.latent_shape):
        problems.append(
            f"its latent shape is {tuple(model.config.latent_shape)}, the run's {tuple(config.latent_shape)}"
        )
    if [c.name for c in model.config.covariates] != [c.name for c in config.covariates]:
        problems.append("its covariates differ from the run's")
    if same_autoencoder and not math.isclose(model.config.scale_factor, config.scale_factor, rel_tol=1e-4):
        problems.append(
            f"its latent scale factor is {model.config.scale_factor:.6g}, the run's "
            f"{config.scale_factor:.6g} (another autoencoder or other data; if this run's autoencoder was "
            f"fine-tuned from the model's, set diffusion.init_autoencoder to 'fine-tuned')"
        )
    if problems:
        raise InvalidParameterError(f"init_from {model.source!r} cannot start this run: " + "; ".join(problems))
    unet.load_state_dict(model.unet.state_dict())


class DiffusionTask(TrainingTask):
    """One latent diffusion training run."""

    task = "diffusion"

    def __init__(
        self,
        config: TrainingConfig,
        data: TrainingImages,
        autoencoder_folder: str | Path,
        context: Distributed,
        output: Path,
        init_from: LatentDiffusionModel | None = None,
    ) -> None:
        settings = config.diffusion
        self.config, self.settings, self.data, self.context, self.output = config, settings, data, context, output
        autoencoder, self.manifest = load_trained_autoencoder(autoencoder_folder)
        _check_autoencoder(self.manifest, config, Path(autoencoder_folder))
        latents = cached_latents(output, autoencoder, self.manifest, data, context)
        self.mu, self.sigma = latents["mu"], latents["sigma"]
        self.scale_factor = float(1.0 / self.mu.std())
        self.model_config = _model_config(config, self.manifest, tuple(self.mu.shape[1:]), self.scale_factor)
        self.autoencoder = autoencoder.to(context.device)
        torch.manual_seed(settings.seed)
        self.unet = build_unet(settings.network).to(context.device)
        if init_from is not None:
            initialise_from_model(
                self.unet, init_from, self.model_config, same_autoencoder=settings.init_autoencoder == "same"
            )
        self.ema = {k: v.detach().clone() for k, v in self.unet.state_dict().items()}
        if context.enabled:
            self.unet = DistributedDataParallel(self.unet)
        self.optimizer = torch.optim.AdamW(self.unet.parameters(), lr=settings.lr)
        self.lr_schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            functools.partial(
                lr_factor, warmup=settings.warmup_steps, total=settings.steps, schedule=settings.lr_schedule
            ),
        )
        self.noise = training_noise(settings.noise_schedule)

    def state_dict(self) -> dict[str, Any]:
        return {
            "unet": _unwrap(self.unet).state_dict(),
            "ema": self.ema,
            "optimizer": self.optimizer.state_dict(),
            "lr_schedule": self.lr_schedule.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _unwrap(self.unet).load_state_dict(state["unet"])
        self.ema = {k: v.to(self.context.device) for k, v in state["ema"].items()}
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_schedule.load_state_dict(state["lr_schedule"])

    def _batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
        settings, context = self.settings, self.context
        shared, own = step_generator(settings.seed, step), step_generator(settings.seed, step, context.rank)
        indices = torch.randint(len(self.data), (settings.batch_size * context.world_size,), generator=shared)
        mine = indices[context.rank * settings.batch_size : (context.rank + 1) * settings.batch_size]
        z = self.mu[mine] + self.sigma[mine] * torch.randn(self.mu[mine].shape, generator=own)
        if settings.latents == "mean":  # the posterior's mean: the draw above only keeps the random streams equal
            z = self.mu[mine]
        covariates = self.data.covariates[mine].clone()
        if settings.conditioning_dropout > 0:
            dropped = torch.rand(len(mine), generator=own) < settings.conditioning_dropout
            covariates[dropped] = NULL_CONDITION
        return z * self.scale_factor, covariates, own

    def train_step(self, step: int) -> dict[str, float]:
        device = self.context.device
        z, covariates, own = self._batch(step)
        eps = torch.randn(z.shape, generator=own)
        t = torch.randint(0, self.settings.noise_schedule.num_train_timesteps, (z.shape[0],), generator=own)
        x_t = self.noise.add_noise(original_samples=z, noise=eps, timesteps=t).to(device)
        concat, context = conditioning_inputs(covariates.to(device), z.shape[1:], self.model_config.conditioning)
        net_input = x_t if concat is None else torch.cat((x_t, concat), dim=1)
        mixed = self.settings.precision == "bfloat16"
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=mixed):
            prediction = self.unet(net_input, timesteps=t.to(device), context=context)
        epsilon = self.settings.noise_schedule.prediction_type == "epsilon"
        target = eps if epsilon else self.noise.get_velocity(z, eps, t)
        loss = torch.nn.functional.mse_loss(prediction.float(), target.to(device))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.lr_schedule.step()
        self._update_ema()
        return {"loss": loss.item(), "lr": self.lr_schedule.get_last_lr()[0]}

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = self.settings.ema_decay
        for name, value in _unwrap(self.unet).state_dict().items():
            if value.dtype.is_floating_point:
                self.ema[name].mul_(decay).add_(value.detach(), alpha=1.0 - decay)
            else:
                self.ema[name].copy_(value)

    def ema_model(self) -> LatentDiffusionModel:
        """The model with the EMA U-Net weights (a copy; training goes on unchanged)."""
        unet = build_unet(self.settings.network)
        unet.load_state_dict({k: v.cpu() for k, v in self.ema.items()})
        autoencoder = self.autoencoder.cpu()
        return LatentDiffusionModel(
            self.model_config,
            autoencoder,
            unet,
            source=str(self.output),
            weight_hashes={"autoencoder": {"sha256": self.manifest["weights"]["sha256"]}},
        )

    def log_images(self, step: int, logger: RunLogger) -> None:
        result = self.ema_model().sample(seed=0, device="cpu")
        self.autoencoder.to(self.context.device)
        logger.image("diffusion/sample_seed0", middle_slices(result.volume), step)

    def checked_module(self) -> torch.nn.Module:
        return _unwrap(self.unet)

    def finish(self, logger: RunLogger) -> Path:
        model = self.ema_model()
        card = default_model_card(model) + _training_card(self.config, len(self.data), self.scale_factor)
        return write_model_files(model, self.output, card=card)


def _training_card(config: TrainingConfig, subjects: int, scale_factor: float) -> str:
    settings = config.diffusion
    return (
        f"\n## Training\n\n- Configuration: {config.name} ({config.source})\n- Subjects: {subjects}\n"
        f"- Autoencoder steps: {config.autoencoder.steps}; diffusion steps: {settings.steps}, batch "
        f"{settings.batch_size}, learning rate {settings.lr:g}, EMA decay {settings.ema_decay:g}\n"
        f"- Latent scale factor: {scale_factor:.6g}\n"
    )
