"""Sampling schedulers (solvers of the reverse diffusion process), separate from the networks.

Every scheduler works on the model's training noise schedule. DDIM and DDPM are brainsynth's own
(:mod:`brainsynth.sampling.solvers`) on timesteps brainsynth lists itself (:mod:`brainsynth.sampling.timesteps`), so
that results do not depend on the installed MONAI; PNDM is MONAI's (uniform steps, consistent);
DPM-Solver++ and UniPC are diffusers' (they step between the noise levels of their own timesteps).
A scheduler's ``step`` maps the U-Net output at timestep ``t`` and the current latent ``x_t`` to the
latent at the next listed timestep.
"""

from __future__ import annotations

from collections.abc import Callable

from monai.networks.schedulers import DDPMScheduler, PNDMScheduler, Scheduler

from brainsynth.config import NoiseSchedule
from brainsynth.errors import InvalidParameterError
from brainsynth.sampling.solvers import DDIM, DDPM
from brainsynth.sampling.timesteps import DEFAULT_TIMESTEP_SPACING, check_timestep_spacing, inference_timesteps


def _schedule_settings(schedule: NoiseSchedule) -> dict[str, object]:
    return {
        "num_train_timesteps": schedule.num_train_timesteps,
        "schedule": schedule.schedule,
        "beta_start": schedule.beta_start,
        "beta_end": schedule.beta_end,
        "prediction_type": schedule.prediction_type,
    }


def training_noise(schedule: NoiseSchedule) -> DDPMScheduler:
    """The forward (noising) process of ``schedule``: ``add_noise``, ``get_velocity`` and ``alphas_cumprod``."""
    return DDPMScheduler(**_schedule_settings(schedule))


def _ddim(schedule: NoiseSchedule, steps: int, spacing: str) -> DDIM:
    timesteps = inference_timesteps(schedule.num_train_timesteps, steps, spacing)
    return DDIM(training_noise(schedule), timesteps, schedule.prediction_type)


def _ddpm(schedule: NoiseSchedule, steps: int, spacing: str) -> DDPM:
    timesteps = inference_timesteps(schedule.num_train_timesteps, steps, spacing)
    return DDPM(training_noise(schedule), timesteps, schedule.prediction_type)


def _pndm(schedule: NoiseSchedule, steps: int, spacing: str) -> Scheduler:
    scheduler = PNDMScheduler(skip_prk_steps=True, **_schedule_settings(schedule))
    scheduler.set_timesteps(num_inference_steps=steps)
    return scheduler


class DiffusersSolver:
    """A diffusers multistep solver driven like a MONAI scheduler.

    diffusers' ``scaled_linear`` betas with the same start and end equal MONAI's ``scaled_linear_beta``
    exactly, so the solver works on the model's own noise schedule. It keeps the history of model
    outputs, so each sampling run needs a fresh instance.
    """

    def __init__(self, solver, steps: int) -> None:
        self.solver = solver
        self.solver.set_timesteps(steps)

    @property
    def timesteps(self):
        return self.solver.timesteps

    @property
    def alphas_cumprod(self):
        return self.solver.alphas_cumprod

    def step(self, model_output, timestep, sample, **_: object):
        return self.solver.step(model_output, timestep, sample, return_dict=True).prev_sample, None


#: Anything :func:`make_scheduler` returns.
Solver = DDIM | DDPM | Scheduler | DiffusersSolver


def _diffusers_settings(schedule: NoiseSchedule) -> dict[str, object]:
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


def _dpm_solver(schedule: NoiseSchedule, steps: int, spacing: str) -> DiffusersSolver:
    from diffusers import DPMSolverMultistepScheduler

    return DiffusersSolver(
        DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2, **_diffusers_settings(schedule)),
        steps,
    )


def _unipc(schedule: NoiseSchedule, steps: int, spacing: str) -> DiffusersSolver:
    from diffusers import UniPCMultistepScheduler

    return DiffusersSolver(UniPCMultistepScheduler(solver_order=2, **_diffusers_settings(schedule)), steps)


#: Scheduler names and what they do, for help texts.
SCHEDULERS: dict[str, tuple[Callable[[NoiseSchedule, int, str], Solver], str]] = {
    "ddim": (_ddim, "DDIM (Song et al. 2021); deterministic at eta=0, the published model's sampler"),
    "ddpm": (_ddpm, "DDPM ancestral sampling (Ho et al. 2020); stochastic, best with many steps"),
    "pndm": (_pndm, "PNDM pseudo-numerical (Liu et al. 2022), PLMS steps; deterministic"),
    "dpm-solver++": (_dpm_solver, "DPM-Solver++ 2M (Lu et al. 2022, diffusers); deterministic, good in 15-25 steps"),
    "unipc": (_unipc, "UniPC 2M (Zhao et al. 2023, diffusers); deterministic, good in 10-20 steps"),
}

#: Schedulers whose steps draw fresh noise (for any eta).
STOCHASTIC_SCHEDULERS = frozenset({"ddpm"})

#: Schedulers that take brainsynth's timestep spacing; the others list their own timesteps (PNDM:
#: MONAI's uniform "leading" steps; DPM-Solver++ and UniPC: diffusers' default spacing).
SPACED_SCHEDULERS = frozenset({"ddim", "ddpm"})


def check_scheduler_settings(
    name: str, steps: int, eta: float, schedule: NoiseSchedule, timestep_spacing: str | None = None
) -> str:
    """Validate scheduler name, step count, eta and timestep spacing; return the normalised name.

    Raises
    ------
    InvalidParameterError
        Naming the parameter, what is allowed and what was received.
    """
    key = str(name).lower()
    if key not in SCHEDULERS:
        raise InvalidParameterError(f"scheduler must be one of {', '.join(SCHEDULERS)} (got {name!r})")
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise InvalidParameterError(f"steps must be an integer (got {steps!r})")
    if not 1 <= steps <= schedule.num_train_timesteps:
        raise InvalidParameterError(f"steps must be between 1 and {schedule.num_train_timesteps} (got {steps})")
    if isinstance(eta, bool) or not isinstance(eta, int | float) or not 0.0 <= eta <= 1.0:
        raise InvalidParameterError(f"eta must be a number between 0 and 1 (got {eta!r})")
    if eta and key != "ddim":
        raise InvalidParameterError(f"eta applies to the ddim scheduler only (got eta={eta} with {key})")
    if timestep_spacing is not None:
        check_timestep_spacing(timestep_spacing)
        if key not in SPACED_SCHEDULERS and not (key == "pndm" and timestep_spacing == "leading"):
            raise InvalidParameterError(
                f"timestep_spacing applies to the {' and '.join(sorted(SPACED_SCHEDULERS))} schedulers only; "
                f"{key} lists its own timesteps (got timestep_spacing={timestep_spacing!r} with {key})"
            )
    return key


def make_scheduler(name: str, schedule: NoiseSchedule, steps: int, timestep_spacing: str | None = None) -> Solver:
    """Build a scheduler with its inference timesteps set.

    Parameters
    ----------
    name : str
        One of :data:`SCHEDULERS`.
    schedule : NoiseSchedule
        The model's training noise schedule.
    steps : int
        Number of inference steps, 1 to ``schedule.num_train_timesteps``.
    timestep_spacing : str, optional
        One of :data:`~brainsynth.sampling.timesteps.TIMESTEP_SPACINGS`, for the schedulers in
        :data:`SPACED_SCHEDULERS` (default ``"leading"``, the published model's).
    """
    key = check_scheduler_settings(name, steps, 0.0, schedule, timestep_spacing)
    return SCHEDULERS[key][0](schedule, steps, timestep_spacing or DEFAULT_TIMESTEP_SPACING)
