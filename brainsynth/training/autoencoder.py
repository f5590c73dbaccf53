"""Autoencoder training: MONAI ``AutoencoderKL`` with L1, KL, patch-adversarial and perceptual losses.

Loss of the generator (Rombach et al. 2022; Pinaya et al. 2022)::

    L = |x - x_hat|_1 + w_kl * KL(q(z|x) || N(0, I)) + w_adv * L_adv(D(x_hat)) + w_p * L_perceptual

The adversarial terms start after ``adversarial_warmup`` steps. The perceptual loss needs pretrained
network weights; when they are not available locally, training goes on without it and says so once.
The result is ``OUTPUT/autoencoder.json`` + ``OUTPUT/autoencoder.safetensors``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.losses import PatchAdversarialLoss
from monai.networks.nets import PatchDiscriminator
from torch.nn.parallel import DistributedDataParallel

from brainsynth.bids import TrainingImages
from brainsynth.config import MAX_AXIS
from brainsynth.errors import InvalidParameterError, ModelLoadError
from brainsynth.files.atomic import atomic_write_bytes, atomic_write_json
from brainsynth.files.schema import Checks, read_json, shown
from brainsynth.loading.networks import build_autoencoder, load_weights, network_setting_problems
from brainsynth.loading.weights import hash_file, read_state_dict, safetensors_bytes, verify_hash
from brainsynth.training.distributed import Distributed
from brainsynth.training.logs import RunLogger, middle_slices
from brainsynth.training.loop import TrainingTask, step_generator
from brainsynth.training.settings import TrainingConfig

AUTOENCODER_MANIFEST = "autoencoder.json"


def _unwrap(module: torch.nn.Module) -> torch.nn.Module:
    return module.module if isinstance(module, DistributedDataParallel) else module


def _perceptual_loss(weight: float) -> tuple[torch.nn.Module | None, str]:
    """MONAI's perceptual loss, if its pretrained weights can be had without a download."""
    if weight <= 0:
        return None, "perceptual weight is 0"
    import importlib.util

    missing = [name for name in ("lpips", "torchvision") if importlib.util.find_spec(name) is None]
    if missing:
        return None, f"package(s) {', '.join(missing)} not installed"
    cached = list((Path(torch.hub.get_dir()) / "checkpoints").glob("squeezenet1_1-*.pth"))
    if not cached:
        return None, f"no SqueezeNet weights in {torch.hub.get_dir()}/checkpoints, and nothing is downloaded"
    try:
        from monai.losses import PerceptualLoss

        return PerceptualLoss(spatial_dims=3, network_type="squeeze", is_fake_3d=True, fake_3d_ratio=0.2), ""
    except Exception as exc:  # damaged cache, incompatible versions
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"


def random_patches(images: torch.Tensor, size: tuple[int, int, int] | None, generator: torch.Generator) -> torch.Tensor:
    """Crop one random patch of ``size`` from each image (the whole image when ``size`` is None)."""
    if size is None:
        return images
    patches = []
    for image in images:
        corner = [
            int(torch.randint(0, s - p + 1, (1,), generator=generator))
            for s, p in zip(image.shape[1:], size, strict=True)
        ]
        patches.append(
            image[:, corner[0] : corner[0] + size[0], corner[1] : corner[1] + size[1], corner[2] : corner[2] + size[2]]
        )
    return torch.stack(patches)


def kl_divergence(z_mu: torch.Tensor, z_sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) summed over latent voxels, averaged over the batch."""
    terms = z_mu.pow(2) + z_sigma.pow(2) - torch.log(z_sigma.pow(2) + 1e-12) - 1.0
    return 0.5 * terms.flatten(1).sum(1).mean()


class AutoencoderTask(TrainingTask):
    """One autoencoder training run."""

    task = "autoencoder"

    def __init__(
        self,
        config: TrainingConfig,
        data: TrainingImages,
        context: Distributed,
        output: Path,
        start: torch.nn.Module | None = None,
    ) -> None:
        settings = config.autoencoder
        if settings.patch_size is not None and any(
            p > s for p, s in zip(settings.patch_size, config.data.shape, strict=True)
        ):
            raise InvalidParameterError(
                f"autoencoder.patch_size {settings.patch_size} is larger than data.shape {config.data.shape}"
            )
        self.config, self.settings, self.data, self.context, self.output = config, settings, data, context, output
        self.notes: list[dict[str, Any]] = []
        torch.manual_seed(settings.seed)
        device = context.device
        self.autoencoder = build_autoencoder(settings.network).to(device)
        if start is not None:
            self.autoencoder.load_state_dict(start.state_dict())
        trained = self.trained_parameters(self.autoencoder)
        self.discriminator = PatchDiscriminator(
            spatial_dims=3, in_channels=1, out_channels=1, **settings.discriminator
        ).to(device)
        if context.enabled:
            self.autoencoder = DistributedDataParallel(self.autoencoder)
            self.discriminator = DistributedDataParallel(self.discriminator)
        self.optimizer = torch.optim.Adam(trained, lr=settings.lr)
        self.optimizer_d = torch.optim.Adam(self.discriminator.parameters(), lr=settings.lr_discriminator)
        self.adversarial = PatchAdversarialLoss(criterion="least_squares")
        self.perceptual, reason = _perceptual_loss(settings.perceptual_weight)
        if self.perceptual is None and settings.perceptual_weight > 0:
            self.notes.append(
                {"event": "perceptual_loss_unavailable", "message": f"training without perceptual loss ({reason})"}
            )
        elif self.perceptual is not None:
            self.perceptual.to(device)
        self._last_batch: torch.Tensor | None = None

    def trained_parameters(self, autoencoder: torch.nn.Module) -> list[torch.nn.Parameter]:
        """The autoencoder's parameters the optimiser updates: all of them (a fine-tuning may freeze some)."""
        return list(autoencoder.parameters())

    def state_dict(self) -> dict[str, Any]:
        return {
            "autoencoder": _unwrap(self.autoencoder).state_dict(),
            "discriminator": _unwrap(self.discriminator).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "optimizer_d": self.optimizer_d.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _unwrap(self.autoencoder).load_state_dict(state["autoencoder"])
        _unwrap(self.discriminator).load_state_dict(state["discriminator"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.optimizer_d.load_state_dict(state["optimizer_d"])

    def train_step(self, step: int) -> dict[str, float]:
        settings, context = self.settings, self.context
        shared, own = step_generator(settings.seed, step), step_generator(settings.seed, step, context.rank)
        indices = torch.randint(len(self.data), (settings.batch_size * context.world_size,), generator=shared)
        mine = indices[context.rank * settings.batch_size : (context.rank + 1) * settings.batch_size]
        images = random_patches(self.data.images(mine), settings.patch_size, own).to(context.device)
        self._last_batch = images[:1].detach()
        adversarial_on = step >= settings.adversarial_warmup

        # Posterior sampling uses the global generator; seed it from the step for exact resumption.
        torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=own)))
        reconstruction, z_mu, z_sigma = self.autoencoder(images)
        loss_l1 = (reconstruction - images).abs().mean()
        loss_kl = kl_divergence(z_mu, z_sigma)
        loss = loss_l1 + settings.kl_weight * loss_kl
        values = {"loss_l1": loss_l1.item(), "loss_kl": loss_kl.item()}
        if self.perceptual is not None:
            loss_p = self.perceptual(reconstruction, images)
            loss = loss + settings.perceptual_weight * loss_p
            values["loss_perceptual"] = loss_p.item()
        if adversarial_on:
            loss = loss + settings.adversarial_weight * self.generator_adversarial(reconstruction, values)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        values["loss"] = loss.item()
        if adversarial_on:
            self.discriminator_step(reconstruction, images, values)
        return values

    def generator_adversarial(self, reconstruction: torch.Tensor, values: dict[str, float]) -> torch.Tensor:
        """The adversarial loss of the reconstruction, as the generator's (recorded in ``values``)."""
        fake = self.discriminator(reconstruction.contiguous().float())[-1]
        loss_g = self.adversarial(fake, target_is_real=True, for_discriminator=False)
        values["loss_generator"] = loss_g.item()
        return loss_g

    def discriminator_step(self, reconstruction: torch.Tensor, images: torch.Tensor, values: dict[str, float]) -> None:
        """One optimiser step of the patch discriminator on the reconstruction and the images."""
        fake = self.discriminator(reconstruction.contiguous().detach())[-1]
        real = self.discriminator(images.contiguous().detach())[-1]
        loss_d = 0.5 * (
            self.adversarial(fake, target_is_real=False, for_discriminator=True)
            + self.adversarial(real, target_is_real=True, for_discriminator=True)
        )
        self.optimizer_d.zero_grad(set_to_none=True)
        (self.settings.adversarial_weight * loss_d).backward()
        self.optimizer_d.step()
        values["loss_discriminator"] = loss_d.item()

    @torch.no_grad()
    def log_images(self, step: int, logger: RunLogger) -> None:
        if self._last_batch is None:
            return
        autoencoder = _unwrap(self.autoencoder).eval()
        reconstruction = autoencoder.reconstruct(self._last_batch)
        autoencoder.train()
        pair = np.concatenate(
            [middle_slices(self._last_batch[0, 0].cpu().numpy()), middle_slices(reconstruction[0, 0].cpu().numpy())],
            axis=0,
        )
        logger.image("autoencoder/input_and_reconstruction", pair, step)

    def checked_module(self) -> torch.nn.Module:
        return _unwrap(self.autoencoder)

    def finish(self, logger: RunLogger) -> Path:
        return save_autoencoder(_unwrap(self.autoencoder), self.output, self.config, self.data)


def save_autoencoder(autoencoder: torch.nn.Module, output: Path, config: TrainingConfig, data: TrainingImages) -> Path:
    """Write the trained autoencoder's settings, grid and weights into the run folder."""
    weights = output / "autoencoder.safetensors"
    atomic_write_bytes(weights, safetensors_bytes(autoencoder.state_dict()))
    manifest = {
        "format": "brainsynth.autoencoder",
        "network": config.autoencoder.network,
        "data": {
            "spacing": config.data.spacing,
            "shape": list(config.data.shape),
            "covariates": config.data.covariates,
        },
        "affine": data.grid_affine(config.data).tolist(),
        "weights": {"file": weights.name, "sha256": hash_file(weights)},
        "training": {"config": config.name, "steps": config.autoencoder.steps, "subjects": len(data)},
    }
    atomic_write_json(output / AUTOENCODER_MANIFEST, manifest)
    return output / AUTOENCODER_MANIFEST


def read_autoencoder_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of an autoencoder run: network settings, grid, covariates, weight file and hash.

    Raises
    ------
    ModelLoadError
        If the folder holds no finished autoencoder run.
    """
    folder = Path(folder).expanduser()
    path = folder / AUTOENCODER_MANIFEST
    if not path.is_file():
        raise ModelLoadError(f"{folder} holds no trained autoencoder ({AUTOENCODER_MANIFEST} is missing)")
    manifest = read_json(path, "autoencoder manifest")
    checks = Checks()
    if manifest.get("format") != "brainsynth.autoencoder":
        checks.add(f"format must be 'brainsynth.autoencoder' (got {shown(manifest.get('format'))})")
    if checks.mapping(manifest.get("network"), "network"):
        checks.problems += network_setting_problems(manifest["network"], "network")
    data = manifest.get("data")
    if checks.mapping(data, "data"):
        checks.number(data.get("spacing"), "data.spacing", 0.0, above=True)
        checks.integers(data.get("shape"), "data.shape", 3, 1, MAX_AXIS)
        if not isinstance(data.get("covariates"), list):
            checks.text(data.get("covariates"), "data.covariates")
    weights = manifest.get("weights")
    if checks.mapping(weights, "weights"):
        file = weights.get("file")
        if checks.text(file, "weights.file") and (Path(file).is_absolute() or ".." in Path(file).parts):
            checks.add(f"weights.file must name a file inside the run folder (got {shown(file)})")
        checks.text(weights.get("sha256"), "weights.sha256")
    affine = manifest.get("affine")
    if not (isinstance(affine, list) and len(affine) == 4 and all(isinstance(r, list) and len(r) == 4 for r in affine)):
        checks.add(f"affine must be a 4 x 4 matrix (got {shown(affine)})")
    checks.raise_if_any(f"{path} is malformed")
    return manifest


def load_trained_autoencoder(folder: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Load an autoencoder written by ``brainsynth train autoencoder`` (weights checked by SHA-256).

    Raises
    ------
    ModelLoadError
        If the folder holds no finished autoencoder run.
    """
    folder = Path(folder).expanduser()
    manifest = read_autoencoder_manifest(folder)
    autoencoder = build_autoencoder(manifest["network"])
    weights = folder / manifest["weights"]["file"]
    verify_hash(weights, manifest["weights"]["sha256"])
    load_weights(autoencoder, read_state_dict(weights), what="autoencoder")
    return autoencoder.eval(), manifest
