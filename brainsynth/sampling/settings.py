"""Sampling settings as one checked, frozen value: steps, solver, eta, device, precision, guidance, spacing.

:meth:`SamplingSettings.check` validates a request against a model's configuration (and the dtype its
U-Net's weights are stored in) before anything is computed; the command line and both faces can build
one to find a bad setting before they load weights or launch work. A result records
:meth:`SamplingSettings.record`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypedDict

import torch

from brainsynth.config import MAX_GUIDANCE, SAMPLING_PRECISIONS, SAMPLING_PRECISIONS_TEXT, ModelConfig
from brainsynth.devices import low_precision_issues, resolve_device, resolve_precision
from brainsynth.errors import InvalidParameterError
from brainsynth.sampling.loop import ProgressCallback
from brainsynth.sampling.schedulers import SCHEDULERS, check_scheduler_settings, default_spacing, make_scheduler


@dataclass(frozen=True)
class SamplingSettings:
    """How one sampling call runs, every value checked.

    Attributes
    ----------
    steps : int
        Denoising steps.
    scheduler : str
        Solver name (see :data:`brainsynth.sampling.schedulers.SCHEDULERS`).
    eta : float
        DDIM stochasticity, 0 to 1.
    device : torch.device
        Where the networks run.
    batch_size : int or None
        Brains per network pass; ``None``: all of a call's brains in one pass.
    precision : str
        The network precision used (``auto`` resolved for the device).
    guidance : float
        Classifier-free guidance scale (1: plain conditional sampling).
    timestep_spacing : str or None
        Spacing of a DDIM, DDPM or PNDM run's timesteps.
    weight_dtype : str
        The dtype the U-Net's weights are stored in.
    timesteps : tuple of int
        The timesteps the U-Net is evaluated at.
    """

    steps: int
    scheduler: str
    eta: float
    device: torch.device
    batch_size: int | None
    precision: str
    guidance: float
    timestep_spacing: str | None
    weight_dtype: str = "float32"
    timesteps: tuple[int, ...] = field(default=())

    @property
    def stochastic(self) -> bool:
        """Whether the steps draw random numbers (DDPM, or DDIM with eta above 0)."""
        return SCHEDULERS[self.scheduler].stochastic or self.eta > 0

    @classmethod
    def check(
        cls,
        config: ModelConfig,
        *,
        steps: int | None = None,
        scheduler: str | None = None,
        eta: float = 0.0,
        device: str | torch.device = "auto",
        batch_size: int | None = None,
        precision: str | None = None,
        guidance: float | None = None,
        timestep_spacing: str | None = None,
        weight_dtype: str = "float32",
    ) -> SamplingSettings:
        """Check a request against a model configuration; unset values take the model's defaults.

        Raises
        ------
        InvalidParameterError
            Naming the setting, what is allowed and what was given.
        DeviceUnavailableError
            For a device this machine lacks.
        """
        steps = config.default_steps if steps is None else steps
        guidance = check_guidance(config, guidance)
        if precision is None:
            precision = weight_dtype if weight_dtype != "float32" else config.default_precision
        if precision not in SAMPLING_PRECISIONS:
            raise InvalidParameterError(f"precision must be one of {SAMPLING_PRECISIONS_TEXT} (got {precision!r})")
        name = check_scheduler_settings(
            scheduler or config.default_scheduler, steps, eta, config.noise_schedule, timestep_spacing
        )
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise InvalidParameterError(f"batch_size must be a positive integer (got {batch_size!r})")
        target = resolve_device(device)
        precision = resolve_precision(precision, target)
        if weight_dtype != "float32" and precision != weight_dtype:
            raise InvalidParameterError(
                f"the U-Net's weights are stored in {weight_dtype}: sample with precision "
                f"{weight_dtype!r} (got {precision!r})"
            )
        if precision == "float16" and target.type == "cpu":
            raise InvalidParameterError("precision float16 needs a GPU; use bfloat16 on the CPU (got float16 on cpu)")
        if target.type == "cuda":
            for issue in low_precision_issues(precision):
                warnings.warn(issue, RuntimeWarning, stacklevel=4)
        if timestep_spacing is None:
            timestep_spacing = default_spacing(name)
        settings = cls(steps, name, float(eta), target, batch_size, precision, guidance, timestep_spacing, weight_dtype)
        return replace(settings, timesteps=tuple(int(t) for t in settings.make_scheduler(config).timesteps))

    def make_scheduler(self, config: ModelConfig):
        """A fresh solver for one run (multistep solvers keep a history)."""
        return make_scheduler(self.scheduler, config.noise_schedule, self.steps, self.timestep_spacing)

    def record(self, count: int) -> dict[str, Any]:
        """The settings as a result records them, for a call of ``count`` brains."""
        return {
            "steps": self.steps,
            "scheduler": self.scheduler,
            "eta": self.eta,
            "device": str(self.device),
            "batch_size": self.batch_size or count,
            "precision": self.precision,
            "weight_dtype": self.weight_dtype,
            "guidance": self.guidance,
            "timestep_spacing": self.timestep_spacing,
            "timesteps": list(self.timesteps),
        }


def check_guidance(config: ModelConfig, guidance: float | None) -> float:
    """The guidance scale to use: ``guidance`` checked against the model, or the model's default."""
    if guidance is None:
        return float(config.default_guidance)
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not 1.0 <= guidance <= MAX_GUIDANCE:
        raise InvalidParameterError(f"guidance must be a number from 1 to {MAX_GUIDANCE:g} (got {guidance!r})")
    if guidance != 1.0 and config.null_condition is None:
        raise InvalidParameterError(
            f"guidance must be 1 for model '{config.name}': it was trained without conditioning dropout, so it "
            f"cannot predict without covariates (got {guidance!r})"
        )
    return float(guidance)


class SamplingOptions(TypedDict, total=False):
    """The options every entry point takes (documented once, in :data:`OPTIONS_DOC`)."""

    steps: int | None
    scheduler: str | None
    eta: float
    batch_size: int
    device: str | torch.device
    extrapolate: bool
    callback: ProgressCallback | None
    precision: str | None
    guidance: float | None
    timestep_spacing: str | None


OPTION_NAMES = frozenset(SamplingOptions.__annotations__)

#: The options' documentation, shared by every entry point's docstring.
OPTIONS_DOC = """steps : int, optional
            Number of denoising steps (default: the model's, 50 for the published model).
        scheduler : {"ddim", "ddpm", "pndm", "dpm-solver++", "unipc"}, optional
            Solver of the reverse process (default: the model's; ``"ddim"`` unless its configuration names another).
        eta : float
            DDIM stochasticity, 0 (deterministic, the default) to 1.
        batch_size : int
            Number of brains passed through the networks together (for :meth:`sample`: generated).
        device : str
            ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
        extrapolate : bool
            Allow covariates beyond the training range (recorded in the result).
        callback : callable, optional
            Called once per step with a :class:`~brainsynth.sampling.loop.StepProgress`; raise
            :class:`~brainsynth.errors.SamplingCancelled` in it to cancel.
        precision : {"float32", "bfloat16", "float16", "auto"}, optional
            Network precision: float32 (exact) or autocast to bfloat16 (CPU or GPU) or float16 (GPU);
            ``auto`` is bfloat16 on CPUs with native bfloat16 arithmetic and float32 elsewhere. Solver
            steps always run in float32. Default: the model's; the result records the precision used.
        guidance : float, optional
            Classifier-free guidance scale, at least 1 (default: the model's). Above 1 the brain
            follows the covariates more closely, at the cost of a second U-Net pass per step; only
            for models trained with conditioning dropout (``model.config.null_condition`` set).
        timestep_spacing : {"leading", "linspace", "trailing"}, optional
            Which timesteps a DDIM or DDPM run evaluates the U-Net at (see
            :data:`brainsynth.sampling.timesteps.TIMESTEP_SPACINGS`); default ``"leading"``, the
            published model's. The result records the spacing and the timesteps."""


def split_options(values: Mapping[str, Any], *, covariates_allowed: bool = True) -> tuple[dict, dict]:
    """Keyword arguments split into sampling options and covariates."""
    options = {k: v for k, v in values.items() if k in OPTION_NAMES}
    covariates = {k: v for k, v in values.items() if k not in OPTION_NAMES}
    if covariates and not covariates_allowed:
        raise TypeError(f"unexpected keyword arguments {', '.join(covariates)}; the options are {sorted(OPTION_NAMES)}")
    return options, covariates


def run_options(options: dict[str, Any]) -> tuple[bool, ProgressCallback | None, int]:
    """Take out of ``options`` what is not a setting: extrapolation, the callback and the batch size."""
    return options.pop("extrapolate", False), options.pop("callback", None), options.pop("batch_size", 1)
