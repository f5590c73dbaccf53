"""UniPC 2M (Zhao et al. 2023), diffusers' implementation."""

from __future__ import annotations

from brainsynth.config import NoiseSchedule
from brainsynth.sampling.solvers.base import SolverSpec
from brainsynth.sampling.solvers.multistep import DiffusersSolver, diffusers_settings


def create(schedule: NoiseSchedule, spacing: str = "") -> DiffusersSolver:
    """A fresh UniPC 2M on ``schedule`` (it lists its own timesteps)."""
    from diffusers import UniPCMultistepScheduler

    return DiffusersSolver(UniPCMultistepScheduler(solver_order=2, **diffusers_settings(schedule)))


SPEC = SolverSpec("unipc", "UniPC 2M (Zhao et al. 2023, diffusers); deterministic, good in 10-20 steps", create)
