"""Deterministic DDIM inversion: a clean latent run up the noise levels to the noise that regenerates it.

The inverse of the sampling loop of :mod:`brainsynth.sampling.loop`: the same timesteps in increasing
order, one U-Net evaluation per step under the given covariates, each step
:meth:`brainsynth.sampling.solvers.ddim.DDIM.invert`. Stopping after ``k`` of the ``n`` steps gives the
latent at the ``k``-th noisiest level from the bottom, from which the last ``k`` sampling steps regenerate
(or, under other covariates, edit) the image.
"""

from __future__ import annotations

import torch

from brainsynth.sampling.loop import ProgressCallback, StepProgress, autocast, conditioning_inputs
from brainsynth.sampling.solvers.ddim import DDIM


@torch.no_grad()
def invert(
    unet: torch.nn.Module,
    solver: DDIM,
    x_0: torch.Tensor,
    covariates: torch.Tensor,
    *,
    conditioning: str,
    steps: int | None = None,
    precision: str = "float32",
    callback: ProgressCallback | None = None,
) -> torch.Tensor:
    """Run ``x_0`` (B, C, X, Y, Z), scaled, up through the last ``steps`` of ``solver``'s timesteps.

    Parameters
    ----------
    unet : torch.nn.Module
        The model's U-Net.
    solver : DDIM
        brainsynth's DDIM with its timesteps set.
    x_0 : torch.Tensor
        Clean latents (the autoencoder's, times the scale factor).
    covariates : torch.Tensor
        Normalised covariates, (B, N).
    conditioning : str
        How covariates reach the U-Net.
    steps : int, optional
        How many of the timesteps to climb (default all: up to the noise the sampler starts from).
    precision : str
        Network precision.
    callback : callable, optional
        Called after each step with a :class:`~brainsynth.sampling.loop.StepProgress`.

    Returns
    -------
    torch.Tensor
        The latent at the level of timestep ``solver.timesteps[-steps]``.
    """
    listed = [int(t) for t in solver.timesteps]
    climb = listed[::-1][: steps or len(listed)]
    concat, context = conditioning_inputs(covariates, x_0.shape[1:], conditioning)
    x = x_0
    for step, t in enumerate(climb, start=1):
        net_input = x if concat is None else torch.cat((x, concat), dim=1)
        t_batch = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
        with autocast(x.device, precision):
            output = unet(net_input, timesteps=t_batch, context=context).float()
        x = solver.invert(output, t, x)
        if callback is not None:
            callback(StepProgress(step=step, total=len(climb), timestep=t, latent=x, predicted_clean=x_0))
    return x
