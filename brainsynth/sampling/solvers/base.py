"""What the denoising loop needs of a solver, and what the registry needs to know about one.

A solver is anything with the :class:`Solver` shape: its timesteps (decreasing, set by
``set_timesteps``), the training schedule's cumulative alphas (for the clean estimate of a preview),
and ``step(model_output, timestep, sample, eta=..., generator=...)`` returning the latent at the next
listed timestep. brainsynth's own DDIM and DDPM have that shape; MONAI's and diffusers' solvers get it
from a thin adapter in their own module. Each module of this package describes its solver with a
:class:`SolverSpec`; :mod:`brainsynth.sampling.schedulers` lists them.

Notation (Ho et al. 2020; Song et al. 2021): ``alpha_bar_t`` is the cumulative product of
``1 - beta``; ``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from monai.networks.schedulers import DDPMScheduler

from brainsynth.config import NoiseSchedule
from brainsynth.sampling.timesteps import inference_timesteps


class Solver(Protocol):
    """A solver of the reverse diffusion process, as the denoising loop drives it."""

    @property
    def timesteps(self) -> torch.Tensor:
        """Timesteps the U-Net is evaluated at, decreasing."""
        ...

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        """The training schedule's ``alpha_bar``, indexed by timestep."""
        ...

    def set_timesteps(self, steps: int) -> None:
        """List the timesteps of a ``steps``-step run."""
        ...

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int,
        sample: torch.Tensor,
        *,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The latent at the next listed timestep, from ``x_t`` and the U-Net's output at ``timestep``."""
        ...


@dataclass(frozen=True)
class SolverSpec:
    """A solver as the registry, the settings checks and the help texts know it.

    Attributes
    ----------
    name : str
        The name users give (``--scheduler``, ``scheduler=``).
    summary : str
        One line for help texts.
    create : callable
        ``create(schedule, spacing)``: a solver on the model's training noise schedule, timesteps unset.
    spacings : tuple of str or None
        The timestep spacings it accepts: ``None`` for any of
        :data:`~brainsynth.sampling.timesteps.TIMESTEP_SPACINGS`, an empty tuple when it lists its own
        timesteps (nothing is recorded then).
    stochastic : bool
        Whether every step draws noise (then each item steps with its own generator).
    takes_eta : bool
        Whether ``eta`` above 0 means something to it.
    """

    name: str
    summary: str
    create: Callable[[NoiseSchedule, str], Solver]
    spacings: tuple[str, ...] | None = ()
    stochastic: bool = False
    takes_eta: bool = False


class Adapter:
    """Base of the adapters that give another library's scheduler (``self.scheduler``) the solver shape."""

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    @property
    def timesteps(self) -> torch.Tensor:
        return self.scheduler.timesteps

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return self.scheduler.alphas_cumprod

    def set_timesteps(self, steps: int) -> None:
        self.scheduler.set_timesteps(steps)

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int,
        sample: torch.Tensor,
        *,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """One step of the wrapped scheduler (``eta`` and ``generator`` do not apply to it)."""
        return self.advance(model_output, timestep, sample)

    def advance(self, model_output: torch.Tensor, timestep: int, sample: torch.Tensor) -> torch.Tensor:
        """The wrapped scheduler's step, as its library calls it."""
        raise NotImplementedError


def schedule_settings(schedule: NoiseSchedule) -> dict[str, object]:
    """A noise schedule as MONAI schedulers take it."""
    return {
        "num_train_timesteps": schedule.num_train_timesteps,
        "schedule": schedule.schedule,
        "beta_start": schedule.beta_start,
        "beta_end": schedule.beta_end,
        "prediction_type": schedule.prediction_type,
    }


def training_noise(schedule: NoiseSchedule) -> DDPMScheduler:
    """The forward (noising) process of ``schedule``: ``add_noise``, ``get_velocity`` and ``alphas_cumprod``."""
    return DDPMScheduler(**schedule_settings(schedule))


class TimestepSolver:
    """Shared parts of brainsynth's own solvers: listed timesteps, their noise levels, the clean estimate.

    Every step goes from the level of timestep ``t`` to the level of the next listed timestep (the
    clean level after the last one), so any spacing of :mod:`brainsynth.sampling.timesteps` is sampled
    consistently. MONAI's and diffusers' DDIM find the previous timestep as ``t - T // n``, right only
    for the "leading" spacing; MONAI's DDPM steps to ``t - 1`` whatever the list. On the "leading"
    spacing the arithmetic is that of MONAI GenerativeModels' DDIM and, for ``n = T``, of MONAI's DDPM.

    Parameters
    ----------
    schedule : NoiseSchedule
        The model's training noise schedule.
    spacing : str
        How :meth:`set_timesteps` spaces the timesteps (see :mod:`brainsynth.sampling.timesteps`).
    """

    def __init__(self, schedule: NoiseSchedule, spacing: str) -> None:
        noise = training_noise(schedule)
        self.betas, self.alphas, self.alphas_cumprod = noise.betas, noise.alphas, noise.alphas_cumprod
        self.num_train_timesteps = schedule.num_train_timesteps
        self.prediction_type = schedule.prediction_type
        self.spacing = spacing
        self.final_alpha_cumprod = torch.tensor(1.0)
        self.timesteps = torch.tensor([], dtype=torch.long)
        self._next: dict[int, int] = {}

    def set_timesteps(self, steps: int) -> None:
        """List the timesteps of a ``steps``-step run in this solver's spacing."""
        self.use_timesteps(inference_timesteps(self.num_train_timesteps, steps, self.spacing))

    def use_timesteps(self, timesteps: Sequence[int]) -> None:
        """Evaluate the U-Net at exactly ``timesteps`` (decreasing)."""
        listed = [int(t) for t in timesteps]
        if not listed or any(b >= a for a, b in itertools.pairwise(listed)):
            raise ValueError(f"timesteps must be a non-empty decreasing sequence (got {listed})")
        self.timesteps = torch.tensor(listed, dtype=torch.long)
        self._next = dict(zip(listed, [*listed[1:], -1], strict=True))

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int,
        sample: torch.Tensor,
        *,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Go from ``x_t`` at ``timestep`` to the latent at the next listed timestep."""
        return self.advance(model_output, int(timestep), sample, eta, generator)

    def advance(
        self, output: torch.Tensor, timestep: int, x_t: torch.Tensor, eta: float, generator: torch.Generator | None
    ) -> torch.Tensor:
        """The solver's own step (see :meth:`step`)."""
        raise NotImplementedError

    def previous_timestep(self, timestep: int) -> int:
        """The timestep a step from ``timestep`` goes to: the next listed one, or -1 (clean) after the last."""
        try:
            return self._next[int(timestep)]
        except KeyError:
            raise ValueError(f"timestep {timestep} is not one of this run's timesteps") from None

    def alpha_bar(self, timestep: int) -> torch.Tensor:
        """``alpha_bar`` at ``timestep``, 1 at the clean level (-1)."""
        return self.alphas_cumprod[timestep] if timestep >= 0 else self.final_alpha_cumprod

    def clean_and_noise(
        self, model_output: torch.Tensor, timestep: int, sample: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The clean latent ``x_0`` and the noise ``eps`` that the U-Net's output at ``timestep`` implies."""
        return self.split(model_output, self.alphas_cumprod[timestep], sample)

    def split(
        self, model_output: torch.Tensor, alpha_prod: torch.Tensor, sample: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x_0`` and ``eps`` from the U-Net's output for a ``sample`` at the noise level ``alpha_prod``."""
        beta_prod = 1 - alpha_prod
        if self.prediction_type == "epsilon":
            clean = (sample - (beta_prod**0.5) * model_output) / (alpha_prod**0.5)
            return clean, model_output
        if self.prediction_type == "sample":
            return model_output, (sample - (alpha_prod**0.5) * model_output) / (beta_prod**0.5)
        if self.prediction_type == "v_prediction":
            clean = (alpha_prod**0.5) * sample - (beta_prod**0.5) * model_output
            return clean, (alpha_prod**0.5) * model_output + (beta_prod**0.5) * sample
        raise ValueError(f"prediction type must be epsilon, v_prediction or sample (got {self.prediction_type!r})")
