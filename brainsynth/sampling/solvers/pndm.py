"""PNDM (Liu et al. 2022) with PLMS steps: MONAI's solver, on MONAI's uniform "leading" timesteps."""

from __future__ import annotations

import torch
from monai.networks.schedulers import PNDMScheduler

from brainsynth.config import NoiseSchedule
from brainsynth.sampling.solvers.base import Adapter, SolverSpec, schedule_settings


class PNDM(Adapter):
    """MONAI's ``PNDMScheduler`` in the solver shape (it keeps a history: one instance per run)."""

    def __init__(self, schedule: NoiseSchedule, spacing: str = "leading") -> None:
        super().__init__(PNDMScheduler(skip_prk_steps=True, **schedule_settings(schedule)))

    def advance(self, model_output: torch.Tensor, timestep: int, sample: torch.Tensor) -> torch.Tensor:
        return self.scheduler.step(model_output, timestep, sample)[0]


SPEC = SolverSpec(
    "pndm", "PNDM pseudo-numerical (Liu et al. 2022), PLMS steps; deterministic", PNDM, spacings=("leading",)
)
