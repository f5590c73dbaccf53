"""DPM-Solver++ 2M (Lu et al. 2022), diffusers' implementation."""

from __future__ import annotations

from brainsynth.config import NoiseSchedule
from brainsynth.sampling.solvers.base import SolverSpec
from brainsynth.sampling.solvers.multistep import DiffusersSolver, diffusers_settings


def create(schedule: NoiseSchedule, spacing: str = "") -> DiffusersSolver:
    """A fresh DPM-Solver++ 2M on ``schedule`` (it lists its own timesteps)."""
    from diffusers import DPMSolverMultistepScheduler

    settings = diffusers_settings(schedule)
    return DiffusersSolver(DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2, **settings))


SPEC = SolverSpec(
    "dpm-solver++", "DPM-Solver++ 2M (Lu et al. 2022, diffusers); deterministic, good in 15-25 steps", create
)
