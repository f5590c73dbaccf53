"""How well a model's U-Net recovers real latents at each noise level.

A sample's layout (where the brain ends, how large its ventricles are) is decided at high noise
levels, where the U-Net's estimate of the clean latent is all the solver has to go on. This
measurement noises the latents of held-out real images to a few timesteps, asks the U-Net for the
clean latent with the images' own covariates, and compares the estimate with the truth:

- ``relative_error``: root-mean-square error of the estimate over the latents' spread around their
  mean. Predicting the held-out images' mean latent scores about 1, so a value above 1 at some noise
  level means the U-Net does worse there than "the average brain".
- ``constant_region_error``: the same error, in latent units, over the voxels where the real latents
  hardly vary between images (the background around the head). A good model gets these right at
  every noise level; errors there show as grey haze around the brain.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from brainsynth.model import LatentDiffusionModel
from brainsynth.sampling.loop import autocast, conditioning_inputs, predict_clean
from brainsynth.sampling.schedulers import training_noise

#: Timesteps measured, as fractions of the training schedule's length.
NOISE_LEVELS = (0.1, 0.3, 0.5, 0.7, 0.85, 0.95)
#: Voxels whose latent spread across the held-out images is below this fraction of the latents'
#: overall spread count as constant (background).
CONSTANT_SPREAD = 0.05
#: Latents per U-Net call.
BATCH = 4


@dataclass
class DenoisingError:
    """The U-Net's clean-latent estimate against the truth at one timestep."""

    timestep: int
    signal_to_noise: float
    relative_error: float
    constant_region_error: float


def denoising_errors(
    model: LatentDiffusionModel, images: torch.Tensor, covariates: torch.Tensor, *, device: torch.device, seed: int = 0
) -> list[DenoisingError]:
    """Measure the clean-latent estimate at each of :data:`NOISE_LEVELS`.

    Parameters
    ----------
    model : LatentDiffusionModel
        The model; its autoencoder encodes the images (posterior means, scaled as in training).
    images : torch.Tensor
        Real images on the model's grid, shape (B, 1, X, Y, Z), B >= 2.
    covariates : torch.Tensor
        Their normalised covariates, shape (B, N).
    device : torch.device
        Where the networks run (float32, or bfloat16 for a model whose weights are stored in it).
    seed : int
        Seed of the noise.

    Returns
    -------
    list of DenoisingError
        One per noise level, from the least to the most noisy.
    """
    config = model.config
    schedule = config.noise_schedule
    noise_schedule = training_noise(schedule)
    autoencoder, unet = model.autoencoder.to(device).eval(), model.unet.to(device).eval()
    with torch.no_grad(), autocast(device, model.weight_dtype):
        latents = torch.cat([autoencoder.encode(image[None].to(device))[0].float() for image in images])
        latents = latents * config.scale_factor
        spread = (latents - latents.mean(0)).pow(2).mean().sqrt()
        constant = (latents.std(0) < CONSTANT_SPREAD * latents.std()).all(0)
        concat, context = conditioning_inputs(covariates.to(device), latents.shape[1:], config.conditioning)
        generator = torch.Generator().manual_seed(seed)
        results = []
        for level in NOISE_LEVELS:
            t = min(round(level * schedule.num_train_timesteps), schedule.num_train_timesteps - 1)
            timesteps = torch.full((len(latents),), t, dtype=torch.long)
            noise = torch.randn(latents.shape, generator=generator).to(device)
            noisy = noise_schedule.add_noise(original_samples=latents, noise=noise, timesteps=timesteps.to(device))
            net_input = noisy if concat is None else torch.cat((noisy, concat), dim=1)
            output = torch.cat(
                [
                    unet(
                        net_input[i : i + BATCH],
                        timesteps=timesteps[i : i + BATCH].to(device),
                        context=None if context is None else context[i : i + BATCH],
                    ).float()
                    for i in range(0, len(net_input), BATCH)
                ]
            )
            estimate = predict_clean(noise_schedule, output, noisy, t, schedule.prediction_type)
            error = estimate - latents
            alpha_bar = float(noise_schedule.alphas_cumprod[t])
            results.append(
                DenoisingError(
                    timestep=t,
                    signal_to_noise=alpha_bar / (1 - alpha_bar),
                    relative_error=float(error.pow(2).mean().sqrt() / spread),
                    constant_region_error=float(error[:, :, constant].pow(2).mean().sqrt())
                    if constant.any()
                    else float("nan"),
                )
            )
    return results
