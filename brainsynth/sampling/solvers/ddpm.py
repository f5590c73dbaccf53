"""DDPM ancestral sampling (Ho et al. 2020) over brainsynth's listed timesteps."""

from __future__ import annotations

import torch

from brainsynth.sampling.solvers.base import SolverSpec, TimestepSolver


class DDPM(TimestepSolver):
    """DDPM with the "fixed small" variance, on any list of timesteps.

    A step from ``t`` to ``s`` uses ``beta = 1 - alpha_bar_t / alpha_bar_s`` (respaced sampling, Nichol
    and Dhariwal 2021); for consecutive timesteps that is the training ``beta_t`` itself.
    """

    def advance(
        self, output: torch.Tensor, timestep: int, x_t: torch.Tensor, eta: float, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Draw the latent at the next listed timestep given ``x_t`` (``eta`` does not apply)."""
        previous_t = self.previous_timestep(timestep)
        alpha_prod_t = self.alphas_cumprod[timestep]
        alpha_prod_prev = self.alpha_bar(previous_t)
        if previous_t == timestep - 1:
            alpha_t, beta_t = self.alphas[timestep], self.betas[timestep]
        else:
            alpha_t = alpha_prod_t / alpha_prod_prev
            beta_t = 1 - alpha_t
        beta_prod_t, beta_prod_prev = 1 - alpha_prod_t, 1 - alpha_prod_prev
        clean, _ = self.clean_and_noise(output, timestep, x_t)
        clean_coefficient = (alpha_prod_prev**0.5 * beta_t) / beta_prod_t
        sample_coefficient = alpha_t**0.5 * beta_prod_prev / beta_prod_t
        previous = clean_coefficient * clean + sample_coefficient * x_t
        if previous_t >= 0:
            variance = torch.clamp(beta_prod_prev / beta_prod_t * beta_t, min=1e-20)
            noise = torch.randn(
                output.size(),
                dtype=output.dtype,
                layout=output.layout,
                generator=generator,
                device=output.device,
            )
            previous = previous + variance**0.5 * noise
        return previous


SPEC = SolverSpec(
    "ddpm",
    "DDPM ancestral sampling (Ho et al. 2020); stochastic, best with many steps",
    DDPM,
    spacings=None,
    stochastic=True,
)
