"""DDIM (Song et al. 2021) over brainsynth's listed timesteps."""

from __future__ import annotations

import torch

from brainsynth.sampling.solvers.base import SolverSpec, TimestepSolver


class DDIM(TimestepSolver):
    """DDIM: deterministic at ``eta = 0``, DDPM-like noise at ``eta = 1``."""

    def advance(
        self, output: torch.Tensor, timestep: int, x_t: torch.Tensor, eta: float, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Go from ``x_t`` at ``timestep`` to the latent at the next listed timestep."""
        previous_t = self.previous_timestep(timestep)
        alpha_prod_t = self.alphas_cumprod[timestep]
        alpha_prod_prev = self.alpha_bar(previous_t)
        clean, epsilon = self.clean_and_noise(output, timestep, x_t)
        variance = ((1 - alpha_prod_prev) / (1 - alpha_prod_t)) * (1 - alpha_prod_t / alpha_prod_prev)
        std_dev = eta * variance**0.5
        direction = (1 - alpha_prod_prev - std_dev**2) ** 0.5 * epsilon
        previous = alpha_prod_prev**0.5 * clean + direction
        if eta > 0:
            noise = torch.randn(output.shape, dtype=output.dtype, generator=generator, device=output.device)
            previous = previous + variance**0.5 * eta * noise
        return previous

    def invert(self, output: torch.Tensor, timestep: int, x_s: torch.Tensor) -> torch.Tensor:
        """One step of deterministic DDIM inversion: from ``x_s`` at the level a sampling step from
        ``timestep`` lands on (the clean level after the last listed timestep) up to ``timestep``'s level.

        ``output`` is the U-Net's at ``(x_s, timestep)``, standing in for its output at the unknown
        ``x_t`` (the usual approximation of DDIM inversion; Song et al. 2021, Mokady et al. 2023). The
        clean latent and the noise are read off ``x_s`` at its own level, as diffusers'
        ``DDIMInverseScheduler`` does, for every prediction type.
        """
        alpha_s = self.alpha_bar(self.previous_timestep(timestep))
        alpha_t = self.alphas_cumprod[int(timestep)]
        clean, epsilon = self.split(output, alpha_s, x_s)
        return alpha_t**0.5 * clean + (1 - alpha_t) ** 0.5 * epsilon


SPEC = SolverSpec(
    "ddim",
    "DDIM (Song et al. 2021); deterministic at eta=0, the published model's sampler",
    DDIM,
    spacings=None,
    takes_eta=True,
)
