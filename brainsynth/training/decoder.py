"""Sharpening a trained autoencoder by fine-tuning its decoder alone (``autoencoder.fine_tune: "decoder"``).

The encoder is frozen, so every training image keeps its latent: a diffusion model trained on the
old autoencoder's latents samples the same latents afterwards and needs no retraining; only the
decoding of them improves. The training images are encoded once (whole images, posterior means,
cached in the run folder as ``latents.pt``); each step decodes a random crop of one latent with a
margin of :data:`MARGIN` latent voxels and compares the crop's inside with the same region of the image,
so the loss never sees the crop's edges. Loss: L1 + ``mse_weight`` x MSE (+ the patch-adversarial term
after ``adversarial_warmup`` steps, when its weight is above 0). The learning rate follows
``lr_schedule`` (``"cosine"`` falls to 0 at the last step).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

import torch

from brainsynth.bids import TrainingImages
from brainsynth.errors import InvalidParameterError
from brainsynth.training.autoencoder import AutoencoderTask, _unwrap
from brainsynth.training.diffusion import cached_latents
from brainsynth.training.distributed import Distributed
from brainsynth.training.growth import grow_autoencoder, growth_problem
from brainsynth.training.loop import lr_factor, step_generator
from brainsynth.training.settings import TrainingConfig

#: Latent voxels decoded around each crop and left out of the loss (the decoder's reach at the crop's edge).
MARGIN = 2
#: Parameters that are trained (the rest, the encoder and the posterior's convolutions, stay frozen).
TRAINED_PREFIXES = ("decoder.", "post_quant_conv.")


def downsampling(network: dict[str, Any]) -> int:
    """How many image voxels one latent voxel spans along each axis."""
    return 2 ** (len(network["channels"]) - 1)


class DecoderTask(AutoencoderTask):
    """Fine-tuning of a trained autoencoder's decoder on its own, frozen latents."""

    def __init__(
        self,
        config: TrainingConfig,
        data: TrainingImages,
        context: Distributed,
        output: Path,
        start: torch.nn.Module,
        start_hash: str,
    ) -> None:
        if context.enabled:
            raise InvalidParameterError(
                "autoencoder.fine_tune 'decoder' runs on one process (start it without torchrun); "
                "it trains the decoder only, which is quick next to the other stages"
            )
        super().__init__(config, data, context, output, start=start)
        autoencoder = _unwrap(self.autoencoder)
        self.lr_schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            functools.partial(lr_factor, warmup=0, total=self.settings.steps, schedule=self.settings.lr_schedule),
        )
        latents = cached_latents(output, autoencoder, {"weights": {"sha256": start_hash}}, data, context)
        self.mu = latents["mu"]
        self.factor = downsampling(self.settings.network)
        patch = self.settings.patch_size or tuple(config.data.shape)
        self.crop = tuple(p // self.factor for p in patch)

    def trained_parameters(self, autoencoder: torch.nn.Module) -> list[torch.nn.Parameter]:
        """The decoder's parameters; the encoder's are frozen (``requires_grad`` off)."""
        for name, parameter in autoencoder.named_parameters():
            parameter.requires_grad_(name.startswith(TRAINED_PREFIXES))
        return [p for p in autoencoder.parameters() if p.requires_grad]

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "lr_schedule": self.lr_schedule.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.lr_schedule.load_state_dict(state["lr_schedule"])

    def _pairs(self, step: int) -> tuple[torch.Tensor, torch.Tensor, tuple[slice, ...]]:
        """Latent crops with their margins, the images' matching regions, and where those lie in the decoding."""
        settings, context = self.settings, self.context
        shared, own = step_generator(settings.seed, step), step_generator(settings.seed, step, context.rank)
        indices = torch.randint(len(self.data), (settings.batch_size * context.world_size,), generator=shared)
        mine = indices[context.rank * settings.batch_size : (context.rank + 1) * settings.batch_size]
        grid = self.mu.shape[2:]
        corner = [int(torch.randint(0, s - c + 1, (1,), generator=own)) for s, c in zip(grid, self.crop, strict=True)]
        low = [max(0, c - MARGIN) for c in corner]
        high = [min(s, c + k + MARGIN) for s, c, k in zip(grid, corner, self.crop, strict=True)]
        latents = self.mu[mine][:, :, low[0] : high[0], low[1] : high[1], low[2] : high[2]]
        f = self.factor
        inside = tuple(slice(f * (c - lo), f * (c - lo + k)) for c, lo, k in zip(corner, low, self.crop, strict=True))
        region = tuple(slice(f * c, f * (c + k)) for c, k in zip(corner, self.crop, strict=True))
        images = self.data.images(mine)[(slice(None), slice(None), *region)]
        return latents.to(context.device), images.to(context.device), inside

    def train_step(self, step: int) -> dict[str, float]:
        settings = self.settings
        latents, images, inside = self._pairs(step)
        autoencoder = _unwrap(self.autoencoder)
        reconstruction = autoencoder.decode(latents)[(slice(None), slice(None), *inside)]
        loss_l1 = (reconstruction - images).abs().mean()
        loss_mse = (reconstruction - images).pow(2).mean()
        loss = loss_l1 + settings.mse_weight * loss_mse
        values = {"loss_l1": loss_l1.item(), "loss_mse": loss_mse.item()}
        adversarial_on = settings.adversarial_weight > 0 and step >= settings.adversarial_warmup
        if adversarial_on:
            loss = loss + settings.adversarial_weight * self.generator_adversarial(reconstruction, values)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.lr_schedule.step()
        values["loss"] = loss.item()
        values["lr"] = self.lr_schedule.get_last_lr()[0]
        if adversarial_on:
            self.discriminator_step(reconstruction, images, values)
        return values

    @torch.no_grad()
    def log_images(self, step: int, logger: Any) -> None:
        self._last_batch = self.data.images(torch.tensor([0])).to(self.context.device)
        super().log_images(step, logger)


def load_start_autoencoder(init_from: str | Path, config: TrainingConfig) -> tuple[torch.nn.Module, str]:
    """The autoencoder a decoder fine-tuning starts from, and its weights' SHA-256.

    ``init_from`` is a trained autoencoder's folder (``autoencoder.json``) or a model (name or folder);
    its grid must be the configuration's, and its network settings too, except that the configuration may
    give more residual blocks per level: the autoencoder is then grown into it, computing what it computed
    (:mod:`brainsynth.training.growth`). The hash is the one recorded with the
    weights (the autoencoder's manifest, the model's ``model.json``); only a model without one, such
    as a MONAI bundle, has its weights hashed here.

    Raises
    ------
    InvalidParameterError
        If it cannot be loaded or does not match the configuration.
    """
    from brainsynth.errors import BrainsynthError
    from brainsynth.loading.names import load_model
    from brainsynth.loading.weights import safetensors_bytes
    from brainsynth.training.autoencoder import AUTOENCODER_MANIFEST, load_trained_autoencoder

    folder = Path(init_from).expanduser()
    try:
        if (folder / AUTOENCODER_MANIFEST).is_file():
            autoencoder, manifest = load_trained_autoencoder(folder)
            network, shape = manifest["network"], tuple(manifest["data"]["shape"])
            weights_hash = str(manifest["weights"]["sha256"])
        else:
            model = load_model(init_from)
            autoencoder, network, shape = model.autoencoder.float(), model.config.autoencoder, model.config.image_shape
            recorded = model.weight_hashes.get("autoencoder", {}).get("sha256")  # a model folder's, checked on load
            weights_hash = recorded or hashlib.sha256(safetensors_bytes(autoencoder.state_dict())).hexdigest()
    except BrainsynthError as exc:
        raise InvalidParameterError(
            f"init_from must be a trained autoencoder's folder or a model (got {str(init_from)!r}: {exc})"
        ) from exc
    problems = []
    growth = growth_problem(network, config.autoencoder.network)
    if growth is not None:
        problems.append(growth)
    if tuple(shape) != tuple(config.data.shape):
        grid, wanted = "x".join(map(str, shape)), "x".join(map(str, config.data.shape))
        problems.append(f"its grid is {grid}, data.shape is {wanted}")
    if problems:
        raise InvalidParameterError(f"init_from {str(init_from)!r} cannot start this run: " + "; ".join(problems))
    if dict(network) != dict(config.autoencoder.network):
        autoencoder = grow_autoencoder(autoencoder, config.autoencoder.network)
    return autoencoder.float().eval(), weights_hash
