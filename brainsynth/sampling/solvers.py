"""DDIM and DDPM steps over an explicit list of timesteps, each step ending where the next one starts.

MONAI's and diffusers' DDIM find the previous timestep as ``t - T // n``, which is right only for the
"leading" spacing; with any other list the sample is stepped to one noise level and the U-Net then
evaluated at another. MONAI's DDPM steps to ``t - 1`` whatever the list. Here every step goes from
the level of timestep ``t`` to the level of the next listed timestep (the clean level after the last
one), so any spacing of :mod:`brainsynth.sampling.timesteps` is sampled consistently. On the "leading" spacing
the arithmetic is that of MONAI GenerativeModels' DDIM and, for ``n = T``, of MONAI's DDPM.

Notation (Ho et al. 2020; Song et al. 2021): ``alpha_bar_t`` is the cumulative product of
``1 - beta``; ``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch


class TimestepSolver:
    """Shared parts of the solvers: the listed timesteps, their noise levels, the clean estimate.

    Parameters
    ----------
    noise : monai.networks.schedulers.DDPMScheduler
        The training noise process (:func:`brainsynth.sampling.schedulers.training_noise`): its ``betas``,
        ``alphas`` and ``alphas_cumprod``.
    timesteps : sequence of int
        Timesteps to evaluate the U-Net at, decreasing (:func:`brainsynth.sampling.timesteps.inference_timesteps`).
    prediction_type : str
        ``"epsilon"``, ``"v_prediction"`` or ``"sample"``.
    """

    def __init__(self, noise, timesteps: Sequence[int], prediction_type: str = "epsilon") -> None:
        listed = [int(t) for t in timesteps]
        if not listed or any(b >= a for a, b in itertools.pairwise(listed)):
            raise ValueError(f"timesteps must be a non-empty decreasing sequence (got {listed})")
        self.betas, self.alphas, self.alphas_cumprod = noise.betas, noise.alphas, noise.alphas_cumprod
        self.timesteps = torch.tensor(listed, dtype=torch.long)
        self.prediction_type = prediction_type
        self._next = dict(zip(listed, [*listed[1:], -1], strict=True))
        self.final_alpha_cumprod = torch.tensor(1.0)

    def previous_timestep(self, timestep: int) -> int:
        """The timestep a step from ``timestep`` goes to: the next listed one, or -1 (clean) after the last."""
        try:
            return self._next[int(timestep)]
        except KeyError:
            raise ValueError(f"timestep {timestep} is not one of this run's timesteps") from None

    def _alpha_bar(self, timestep: int) -> torch.Tensor:
        return self.alphas_cumprod[timestep] if timestep >= 0 else self.final_alpha_cumprod

    def _clean_and_noise(self, model_output: torch.Tensor, timestep: int, sample: torch.Tensor):
        alpha_prod_t = self.alphas_cumprod[timestep]
        beta_prod_t = 1 - alpha_prod_t
        if self.prediction_type == "epsilon":
            clean = (sample - (beta_prod_t**0.5) * model_output) / (alpha_prod_t**0.5)
            return clean, model_output
        if self.prediction_type == "sample":
            return model_output, (sample - (alpha_prod_t**0.5) * model_output) / (beta_prod_t**0.5)
        if self.prediction_type == "v_prediction":
            clean = (alpha_prod_t**0.5) * sample - (beta_prod_t**0.5) * model_output
            return clean, (alpha_prod_t**0.5) * model_output + (beta_prod_t**0.5) * sample
        raise ValueError(f"prediction type must be epsilon, v_prediction or sample (got {self.prediction_type!r})")


class DDIM(TimestepSolver):
    """DDIM (Song et al. 2021): deterministic at ``eta = 0``, DDPM-like noise at ``eta = 1``."""

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int,
        sample: torch.Tensor,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Go from ``x_t`` at ``timestep`` to the next listed timestep.

        Returns
        -------
        previous : torch.Tensor
            The latent at the next listed timestep.
        clean : torch.Tensor
            The predicted clean latent ``x_0``.
        """
        previous_t = self.previous_timestep(timestep)
        alpha_prod_t = self.alphas_cumprod[timestep]
        alpha_prod_prev = self._alpha_bar(previous_t)
        clean, epsilon = self._clean_and_noise(model_output, timestep, sample)
        variance = ((1 - alpha_prod_prev) / (1 - alpha_prod_t)) * (1 - alpha_prod_t / alpha_prod_prev)
        std_dev = eta * variance**0.5
        direction = (1 - alpha_prod_prev - std_dev**2) ** 0.5 * epsilon
        previous = alpha_prod_prev**0.5 * clean + direction
        if eta > 0:
            noise = torch.randn(
                model_output.shape, dtype=model_output.dtype, generator=generator, device=model_output.device
            )
            previous = previous + variance**0.5 * eta * noise
        return previous, clean


class DDPM(TimestepSolver):
    """DDPM ancestral sampling (Ho et al. 2020) with the "fixed small" variance, on any list of timesteps.

    A step from ``t`` to ``s`` uses ``beta = 1 - alpha_bar_t / alpha_bar_s`` (respaced sampling, Nichol
    and Dhariwal 2021); for consecutive timesteps that is the training ``beta_t`` itself.
    """

    def step(
        self, model_output: torch.Tensor, timestep: int, sample: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw the latent at the next listed timestep given ``x_t`` (see :meth:`DDIM.step`)."""
        previous_t = self.previous_timestep(timestep)
        alpha_prod_t = self.alphas_cumprod[timestep]
        alpha_prod_prev = self._alpha_bar(previous_t)
        if previous_t == timestep - 1:
            alpha_t, beta_t = self.alphas[timestep], self.betas[timestep]
        else:
            alpha_t = alpha_prod_t / alpha_prod_prev
            beta_t = 1 - alpha_t
        beta_prod_t, beta_prod_prev = 1 - alpha_prod_t, 1 - alpha_prod_prev
        clean, _ = self._clean_and_noise(model_output, timestep, sample)
        clean_coefficient = (alpha_prod_prev**0.5 * beta_t) / beta_prod_t
        sample_coefficient = alpha_t**0.5 * beta_prod_prev / beta_prod_t
        previous = clean_coefficient * clean + sample_coefficient * sample
        if previous_t >= 0:
            variance = torch.clamp(beta_prod_prev / beta_prod_t * beta_t, min=1e-20)
            noise = torch.randn(
                model_output.size(),
                dtype=model_output.dtype,
                layout=model_output.layout,
                generator=generator,
                device=model_output.device,
            )
            previous = previous + variance**0.5 * noise
        return previous, clean
