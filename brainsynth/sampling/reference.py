"""The MONAI bundle's own sampling loop, kept as the reference our pipeline is measured against.

It follows the bundle ``brain_image_synthesis_latent_diffusion_model`` step by step: the U-Net gets
the latent concatenated with the covariates broadcast over the latent grid and the covariates as
context (B x 1 x N); the scheduler steps; the final latent is decoded as it is, with no scale factor,
under CUDA fp16 autocast (a no-op on the CPU). It takes no seed and no callback.
"""

from __future__ import annotations

import warnings

import torch

from brainsynth.sampling.solvers.base import Adapter, Solver


class MonaiShaped(Adapter):
    """A brainsynth solver with the MONAI scheduler's ``step`` (it returns ``(previous, None)``), as the
    bundle's loop calls it; the benchmark gives the loop brainsynth's DDIM on the bundle's timesteps."""

    def __init__(self, solver: Solver) -> None:
        super().__init__(solver)

    def step(self, model_output: torch.Tensor, timestep: int, sample: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.scheduler.step(model_output, int(timestep), sample), None


@torch.no_grad()
def reference_sample(
    noise: torch.Tensor,
    autoencoder: torch.nn.Module,
    unet: torch.nn.Module,
    scheduler,
    conditioning: torch.Tensor,
    scale_factor: float = 1.0,
) -> torch.Tensor:
    """Sample as the bundle does.

    Parameters
    ----------
    noise : torch.Tensor
        Initial latent, shape (B, C, X, Y, Z).
    autoencoder, unet : torch.nn.Module
        The bundle's networks (current MONAI or GenerativeModels classes).
    scheduler
        A MONAI scheduler with its timesteps set (the bundle: DDIM, 50 steps), or a brainsynth solver
        in :class:`MonaiShaped`.
    conditioning : torch.Tensor
        Normalised covariates, shape (B, 1, N).
    scale_factor : float
        Latent scale of models trained with one (the published model has none: 1.0, the bundle's way).

    Returns
    -------
    torch.Tensor
        Decoded images, shape (B, 1, X', Y', Z').
    """
    image = noise
    cond_concat = conditioning.squeeze(1)[..., None, None, None]
    cond_concat = cond_concat.expand(*cond_concat.shape[:2], *noise.shape[2:])
    for t in scheduler.timesteps:
        model_output = unet(
            torch.cat((image, cond_concat), dim=1),
            timesteps=torch.Tensor((t,)).to(noise.device).long(),
            context=conditioning,
        )
        image, _ = scheduler.step(model_output, t, image)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CUDA autocast warns when no GPU is present
        with torch.autocast("cuda", enabled=noise.is_cuda):
            return autoencoder.decode_stage_2_outputs(image / scale_factor)
