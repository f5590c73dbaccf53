"""diffusers' multistep solvers in the solver shape, on the model's own noise schedule.

diffusers' ``scaled_linear`` betas with the same start and end equal MONAI's ``scaled_linear_beta``
exactly. The solvers step between the noise levels of their own timesteps (diffusers' default spacing)
and keep a history of model outputs, so each run needs a fresh instance.
"""

from __future__ import annotations

import torch

from brainsynth.config import NoiseSchedule
from brainsynth.errors import InvalidParameterError
from brainsynth.sampling.solvers.base import Adapter


def diffusers_settings(schedule: NoiseSchedule) -> dict[str, object]:
    """A noise schedule as diffusers' schedulers take it."""
    if schedule.schedule not in ("scaled_linear_beta", "linear_beta"):
        raise InvalidParameterError(
            f"the dpm-solver++ and unipc schedulers need a linear or scaled-linear noise schedule "
            f"(this model uses {schedule.schedule}); use ddim"
        )
    return {
        "num_train_timesteps": schedule.num_train_timesteps,
        "beta_start": schedule.beta_start,
        "beta_end": schedule.beta_end,
        "beta_schedule": "scaled_linear" if schedule.schedule == "scaled_linear_beta" else "linear",
        "prediction_type": schedule.prediction_type,
    }


class DiffusersSolver(Adapter):
    """A diffusers scheduler (``set_timesteps``, ``step(...).prev_sample``) in the solver shape."""

    def advance(self, model_output: torch.Tensor, timestep: int, sample: torch.Tensor) -> torch.Tensor:
        return self.scheduler.step(model_output, timestep, sample, return_dict=True).prev_sample
