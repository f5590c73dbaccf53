"""Model configuration as data: networks, noise schedule, latent and image grids, covariates.

A :class:`ModelConfig` is everything needed to rebuild a model except its weights. It is saved as
JSON beside the weights and checked for consistency when loaded, so a mismatch between, say, the
U-Net's input channels and the number of covariates is reported before any weight is read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

import numpy as np

from brainsynth.covariates import CovariateSpec
from brainsynth.errors import InvalidParameterError, ModelLoadError
from brainsynth.files.affines import affine_problem
from brainsynth.files.schema import SHOWN, Checks, is_integer, kind_of, shown
from brainsynth.loading.networks import network_setting_problems

#: Network precisions a sampling call or a model's default may name; ``auto`` is resolved per device.
SAMPLING_PRECISIONS = ("float32", "bfloat16", "float16", "auto")
#: The same, as error messages name them.
SAMPLING_PRECISIONS_TEXT = ", ".join(SAMPLING_PRECISIONS[:-1]) + " or " + SAMPLING_PRECISIONS[-1]
#: Largest classifier-free guidance scale accepted.
MAX_GUIDANCE = 20.0

#: Noise schedules MONAI's schedulers know, and what a U-Net may predict.
NOISE_SCHEDULES = ("linear_beta", "scaled_linear_beta", "sigmoid_beta", "cosine")
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")

#: How covariates reach the U-Net: concatenated to its input as constant channels, given as
#: cross-attention context, or both (the published model uses both).
CONDITIONING_MODES = ("concat", "crossattn", "concat+crossattn")


@dataclass(frozen=True)
class NoiseSchedule:
    """The forward diffusion process the U-Net was trained with.

    Parameters
    ----------
    num_train_timesteps : int
        Number of training timesteps ``T``.
    schedule : str
        MONAI noise schedule name (``"scaled_linear_beta"``, ``"linear_beta"``, ``"cosine"``).
    beta_start, beta_end : float
        First and last ``beta_t`` of the schedule.
    prediction_type : str
        What the U-Net predicts: ``"epsilon"`` (the noise) or ``"v_prediction"``.
    """

    num_train_timesteps: int = 1000
    schedule: str = "scaled_linear_beta"
    beta_start: float = 0.0015
    beta_end: float = 0.0205
    prediction_type: str = "epsilon"


@dataclass(frozen=True)
class ModelConfig:
    """Everything about a latent diffusion model except its weights.

    Parameters
    ----------
    name : str
        Short model name recorded in provenance.
    autoencoder : dict
        Keyword arguments of :class:`monai.networks.nets.AutoencoderKL`.
    unet : dict
        Keyword arguments of :class:`monai.networks.nets.DiffusionModelUNet`.
    noise_schedule : NoiseSchedule
        The training noise schedule.
    latent_shape : tuple of int
        Shape of one latent, (C, X, Y, Z).
    image_shape : tuple of int
        Shape of one decoded volume, (X, Y, Z).
    affine : tuple of tuple of float
        4 x 4 voxel-to-world (RAS, mm) matrix of the decoded volume.
    covariates : tuple of CovariateSpec
        The conditioning covariates, in conditioning order.
    conditioning : str
        One of :data:`CONDITIONING_MODES`.
    scale_factor : float
        Latents are divided by this before decoding (the U-Net works on ``z * scale_factor``).
    default_steps : int
        Number of sampling steps used when the caller gives none.
    default_scheduler : str
        Scheduler used when the caller gives none.
    null_condition : float or None
        The value every normalised covariate took when training dropped the conditioning (conditioning
        dropout), so that the U-Net also predicts without covariates; ``None`` for a model trained
        without it, which then cannot sample with classifier-free guidance.
    default_guidance : float
        Classifier-free guidance scale used when the caller gives none (1: plain conditional sampling).
    default_precision : str
        Network precision used when the caller gives none: ``float32``, ``bfloat16``, ``float16`` or
        ``auto`` (bfloat16 on CPUs with native bfloat16 arithmetic, float32 elsewhere).
    description : str
        One paragraph for model cards and ``brainsynth info``.
    """

    name: str
    autoencoder: dict[str, Any]
    unet: dict[str, Any]
    noise_schedule: NoiseSchedule
    latent_shape: tuple[int, ...]
    image_shape: tuple[int, int, int]
    affine: tuple[tuple[float, ...], ...]
    covariates: tuple[CovariateSpec, ...]
    conditioning: str = "concat+crossattn"
    scale_factor: float = 1.0
    default_steps: int = 50
    default_scheduler: str = "ddim"
    null_condition: float | None = None
    default_guidance: float = 1.0
    default_precision: str = "float32"
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_config(self)

    @property
    def covariate_names(self) -> tuple[str, ...]:
        """Covariate names in conditioning order."""
        return tuple(c.name for c in self.covariates)

    @property
    def affine_array(self) -> np.ndarray:
        """The affine as a float64 (4, 4) array."""
        return np.asarray(self.affine, dtype=np.float64)

    @property
    def voxel_size(self) -> tuple[float, float, float]:
        """Voxel size in mm along each array axis."""
        sizes = np.linalg.norm(self.affine_array[:3, :3], axis=0)
        return (float(sizes[0]), float(sizes[1]), float(sizes[2]))

    def covariate(self, name: str) -> CovariateSpec:
        """Return the spec of the covariate called ``name``."""
        for spec in self.covariates:
            if spec.name == name:
                return spec
        raise InvalidParameterError(f"covariate must be one of {', '.join(self.covariate_names)} (got {name!r})")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dictionary."""
        return {
            "name": self.name,
            "description": self.description,
            "autoencoder": dict(self.autoencoder),
            "unet": dict(self.unet),
            "noise_schedule": vars(self.noise_schedule).copy(),
            "latent_shape": list(self.latent_shape),
            "image_shape": list(self.image_shape),
            "affine": [list(row) for row in self.affine],
            "covariates": [c.to_dict() for c in self.covariates],
            "conditioning": self.conditioning,
            "scale_factor": self.scale_factor,
            "default_steps": self.default_steps,
            "default_scheduler": self.default_scheduler,
            "null_condition": self.null_condition,
            "default_guidance": self.default_guidance,
            "default_precision": self.default_precision,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Build a config from :meth:`to_dict` output, checking every field's type and range first.

        Raises
        ------
        ModelLoadError
            Naming every field that is missing, unknown or of the wrong kind or range.
        """
        checks = Checks()
        if not checks.mapping(data, "model configuration"):
            checks.raise_if_any("model configuration is malformed")
        missing = [name for name in REQUIRED_FIELDS if name not in data]
        if missing:
            checks.add(f"it lacks {', '.join(missing)}")
        checks.known_keys(data, "it", CONFIG_FIELDS)
        for name in ("autoencoder", "unet", "noise_schedule"):
            if name in data:
                checks.mapping(data[name], name)
        if checks.mapping(data.get("noise_schedule", {}), "noise_schedule"):
            checks.known_keys(data.get("noise_schedule", {}), "noise_schedule", NOISE_SCHEDULE_FIELDS)
        covariates = data.get("covariates", [])
        if not isinstance(covariates, list):
            checks.add(f"covariates must be a list of objects (got {kind_of(covariates)})")
        else:
            for i, item in enumerate(covariates):
                if checks.mapping(item, f"covariates[{i}]"):
                    checks.known_keys(item, f"covariates[{i}]", COVARIATE_FIELDS)
        if "extra" in data:
            checks.mapping(data["extra"], "extra")
        for name in ("latent_shape", "image_shape", "affine"):
            if name in data and not isinstance(data[name], list):
                checks.add(f"{name} must be a list (got {kind_of(data[name])})")
        checks.raise_if_any("model configuration is malformed")
        values = {k: v for k, v in data.items() if k in CONFIG_FIELDS}
        affine = data["affine"]
        values.update(
            autoencoder=dict(data["autoencoder"]),
            unet=dict(data["unet"]),
            noise_schedule=NoiseSchedule(**data["noise_schedule"]),
            latent_shape=tuple(data["latent_shape"]),
            image_shape=tuple(data["image_shape"]),
            affine=tuple(tuple(row) if isinstance(row, list) else row for row in affine),
            covariates=tuple(CovariateSpec.from_dict(c) for c in covariates),
            extra=dict(data.get("extra", {})),
        )
        return cls(**values)


#: The fields of a model configuration, those it must have, and those of its parts.
CONFIG_FIELDS = tuple(f.name for f in fields(ModelConfig))
REQUIRED_FIELDS = tuple(f.name for f in fields(ModelConfig) if f.default is MISSING and f.default_factory is MISSING)
NOISE_SCHEDULE_FIELDS = tuple(f.name for f in fields(NoiseSchedule))
COVARIATE_FIELDS = tuple(f.name for f in fields(CovariateSpec))
#: Largest number of training timesteps, voxels along one axis, and voxels in one image accepted.
MAX_TRAIN_TIMESTEPS = 100_000
MAX_AXIS = 2048
MAX_VOXELS = 2**30


def _type_problems(config: ModelConfig, checks: Checks) -> None:
    """Types and ranges of each field alone (what :func:`check_config` checks before their agreement)."""
    checks.text(config.name, "name")
    checks.text(config.description, "description")
    for section in ("autoencoder", "unet"):
        if checks.mapping(getattr(config, section), section):
            checks.problems += network_setting_problems(getattr(config, section), section)
    schedule = config.noise_schedule
    if not isinstance(schedule, NoiseSchedule):
        checks.add(f"noise_schedule must be a NoiseSchedule (got {kind_of(schedule)})")
    else:
        checks.integer(schedule.num_train_timesteps, "noise_schedule.num_train_timesteps", 1, MAX_TRAIN_TIMESTEPS)
        checks.text(schedule.schedule, "noise_schedule.schedule", NOISE_SCHEDULES)
        checks.text(schedule.prediction_type, "noise_schedule.prediction_type", PREDICTION_TYPES)
        if (
            checks.number(schedule.beta_start, "noise_schedule.beta_start", 0.0, 1.0)
            & checks.number(schedule.beta_end, "noise_schedule.beta_end", 0.0, 1.0)
            and not schedule.beta_start <= schedule.beta_end < 1.0
        ):
            checks.add(
                f"noise_schedule needs beta_start <= beta_end < 1 (got {schedule.beta_start} and {schedule.beta_end})"
            )
    if (
        checks.integers(config.latent_shape, "latent_shape", 4, 1, MAX_AXIS)
        and math.prod(config.latent_shape) > MAX_VOXELS
    ):
        checks.add(f"latent_shape {tuple(config.latent_shape)} has more than {MAX_VOXELS} values")
    if (
        checks.integers(config.image_shape, "image_shape", 3, 1, MAX_AXIS)
        and math.prod(config.image_shape) > MAX_VOXELS
    ):
        checks.add(f"image_shape {tuple(config.image_shape)} has more than {MAX_VOXELS} voxels")
    _affine_problems(config.affine, checks)
    checks.text(config.conditioning, "conditioning", CONDITIONING_MODES)
    checks.number(config.scale_factor, "scale_factor", 0.0, above=True)
    checks.text(config.default_precision, "default_precision", SAMPLING_PRECISIONS)
    checks.number(config.default_guidance, "default_guidance", 1.0, MAX_GUIDANCE)
    if config.null_condition is not None:
        checks.number(config.null_condition, "null_condition")
    timesteps = schedule.num_train_timesteps if isinstance(schedule, NoiseSchedule) else None
    checks.integer(
        config.default_steps, "default_steps", 1, timesteps if is_integer(timesteps) and timesteps > 0 else None
    )
    from brainsynth.sampling.schedulers import SCHEDULERS  # here: the schedulers module reads this one's NoiseSchedule

    checks.text(config.default_scheduler, "default_scheduler", tuple(SCHEDULERS))
    checks.mapping(config.extra, "extra")
    if not isinstance(config.covariates, tuple | list):
        checks.add(f"covariates must be a list (got {kind_of(config.covariates)})")
        return
    for i, spec in enumerate(config.covariates):
        covariate_problems(spec, f"covariates[{i}]", checks)


def _affine_problems(affine: Any, checks: Checks) -> None:
    problem = affine_problem(affine)
    if problem is not None:
        checks.add(f"affine must be a finite, invertible 4 x 4 matrix with last row 0 0 0 1 ({problem})")


def covariate_problems(spec: Any, where: str, checks: Checks) -> None:
    if not isinstance(spec, CovariateSpec):
        checks.add(f"{where} must be a CovariateSpec (got {kind_of(spec)})")
        return
    if checks.text(spec.name, f"{where}.name") and not spec.name.isidentifier():
        checks.add(f"{where}.name must be an identifier such as age or brain_volume (got {shown(spec.name)})")
    checks.text(spec.label, f"{where}.label")
    checks.text(spec.unit, f"{where}.unit")
    bounds = checks.number(spec.low, f"{where}.low") & checks.number(spec.high, f"{where}.high")
    if bounds and not spec.low < spec.high:
        checks.add(f"{where} ({spec.name}) needs low < high, its training range (got {spec.low:g} and {spec.high:g})")
    if not isinstance(spec.choices, tuple | list) or not all(isinstance(c, str) for c in spec.choices):
        checks.add(f"{where}.choices must be a list of strings (got {shown(spec.choices)})")


def check_config(config: ModelConfig) -> None:
    """Check each field's type and range, then that the parts of a configuration agree with each other.

    Raises
    ------
    ModelLoadError
        Naming the fields that are malformed or disagree, and their values.
    """
    checks = Checks()
    _type_problems(config, checks)
    name = config.name if isinstance(config.name, str) else "?"
    checks.raise_if_any(f"model configuration '{name[:SHOWN]}' is malformed")
    problems: list[str] = []
    n_cov = len(config.covariates)
    latent_channels = config.latent_shape[0]
    ae_latent = config.autoencoder.get("latent_channels")
    if ae_latent is not None and ae_latent != latent_channels:
        problems.append(f"autoencoder latent_channels is {ae_latent} but latent_shape has {latent_channels} channels")
    expected_in = latent_channels + (n_cov if "concat" in config.conditioning else 0)
    if config.unet.get("in_channels") != expected_in:
        problems.append(
            f"unet in_channels is {config.unet.get('in_channels')} but {config.conditioning} conditioning with "
            f"{latent_channels} latent channels and {n_cov} covariates needs {expected_in}"
        )
    if config.unet.get("out_channels") != latent_channels:
        problems.append(f"unet out_channels is {config.unet.get('out_channels')}, latent channels {latent_channels}")
    if "crossattn" in config.conditioning and config.unet.get("cross_attention_dim") != n_cov:
        problems.append(
            f"unet cross_attention_dim is {config.unet.get('cross_attention_dim')} but there are {n_cov} covariates"
        )
    levels = config.autoencoder.get("channels")
    if isinstance(levels, list | tuple) and levels:
        factor = 2 ** (len(levels) - 1)  # the autoencoder halves the grid between levels
        decoded = tuple(int(v) * factor for v in config.latent_shape[1:])
        if tuple(config.image_shape) != decoded:
            problems.append(
                f"image_shape is {tuple(config.image_shape)} but the autoencoder decodes latents of "
                f"{tuple(config.latent_shape[1:])} to {decoded}"
            )
    if config.default_guidance != 1.0 and config.null_condition is None:
        problems.append(
            "default_guidance other than 1 needs a null_condition (a model trained with conditioning dropout)"
        )
    names = [c.name for c in config.covariates]
    if len(set(names)) != len(names):
        problems.append(f"covariate names must be unique (got {names})")
    if problems:
        raise ModelLoadError(f"model configuration '{name[:SHOWN]}' is inconsistent: " + "; ".join(problems))
