"""The solvers of the reverse diffusion process by name, and the checks of a request for one.

Every solver works on the model's training noise schedule. DDIM and DDPM are brainsynth's own, on
timesteps brainsynth lists itself (:mod:`brainsynth.sampling.timesteps`), so that results do not
depend on the installed MONAI; PNDM is MONAI's (uniform steps, consistent); DPM-Solver++ and UniPC are
diffusers' (they step between the noise levels of their own timesteps). Each lives in one module of
:mod:`brainsynth.sampling.solvers` with a :class:`~brainsynth.sampling.solvers.base.SolverSpec`;
adding one is a new module there and its name in :data:`SOLVER_MODULES`.
"""

from __future__ import annotations

import importlib

from brainsynth.config import NoiseSchedule
from brainsynth.errors import InvalidParameterError
from brainsynth.sampling.solvers.base import Solver, SolverSpec, training_noise
from brainsynth.sampling.timesteps import DEFAULT_TIMESTEP_SPACING, check_timestep_spacing

#: Modules of :mod:`brainsynth.sampling.solvers` that hold a solver, in the order the faces list them.
SOLVER_MODULES = ("ddim", "ddpm", "pndm", "dpm_solver", "unipc")


def _load_specs() -> dict[str, SolverSpec]:
    specs = [importlib.import_module(f"brainsynth.sampling.solvers.{name}").SPEC for name in SOLVER_MODULES]
    return {spec.name: spec for spec in specs}


#: Solver names and their specs (``SCHEDULERS[name].summary`` for help texts).
SCHEDULERS: dict[str, SolverSpec] = _load_specs()


def _free_spacing() -> str:
    return " and ".join(sorted(name for name, spec in SCHEDULERS.items() if spec.spacings is None))


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
    spec = SCHEDULERS[key]
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise InvalidParameterError(f"steps must be an integer (got {steps!r})")
    if not 1 <= steps <= schedule.num_train_timesteps:
        raise InvalidParameterError(f"steps must be between 1 and {schedule.num_train_timesteps} (got {steps})")
    if isinstance(eta, bool) or not isinstance(eta, int | float) or not 0.0 <= eta <= 1.0:
        raise InvalidParameterError(f"eta must be a number between 0 and 1 (got {eta!r})")
    if eta and not spec.takes_eta:
        takers = ", ".join(n for n, s in SCHEDULERS.items() if s.takes_eta)
        raise InvalidParameterError(f"eta applies to the {takers} scheduler only (got eta={eta} with {key})")
    if timestep_spacing is not None:
        check_timestep_spacing(timestep_spacing)
        if spec.spacings is not None and timestep_spacing not in spec.spacings:
            raise InvalidParameterError(
                f"timestep_spacing applies to the {_free_spacing()} schedulers only; "
                f"{key} lists its own timesteps (got timestep_spacing={timestep_spacing!r} with {key})"
            )
    return key


def default_spacing(name: str) -> str | None:
    """The spacing a run of solver ``name`` records when none is given (``None``: it lists its own)."""
    spacings = SCHEDULERS[name].spacings
    if spacings is None:
        return DEFAULT_TIMESTEP_SPACING
    return spacings[0] if spacings else None


def make_scheduler(name: str, schedule: NoiseSchedule, steps: int, timestep_spacing: str | None = None) -> Solver:
    """Build a solver with its inference timesteps set.

    Parameters
    ----------
    name : str
        One of :data:`SCHEDULERS`.
    schedule : NoiseSchedule
        The model's training noise schedule.
    steps : int
        Number of inference steps, 1 to ``schedule.num_train_timesteps``.
    timestep_spacing : str, optional
        One of :data:`~brainsynth.sampling.timesteps.TIMESTEP_SPACINGS`, for the solvers that take one
        (default ``"leading"``, the published model's).
    """
    key = check_scheduler_settings(name, steps, 0.0, schedule, timestep_spacing)
    solver = SCHEDULERS[key].create(schedule, timestep_spacing or DEFAULT_TIMESTEP_SPACING)
    solver.set_timesteps(steps)
    return solver


__all__ = ["SCHEDULERS", "Solver", "SolverSpec", "check_scheduler_settings", "make_scheduler", "training_noise"]
