"""Model configuration as data: networks, noise schedule, latent and image grids, covariates.

A :class:`ModelConfig` is everything needed to rebuild a model except its weights. It is saved as
JSON beside the weights and checked for consistency when loaded, so a mismatch between, say, the
U-Net's input channels and the number of covariates is reported before any weight is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from brainsynth.covariates import CovariateSpec
from brainsynth.errors import InvalidParameterError, ModelLoadError

#: Network precisions a sampling call or a model's default may name; ``auto`` is resolved per device.
SAMPLING_PRECISIONS = ("float32", "bfloat16", "float16", "auto")
#: The same, as error messages name them.
SAMPLING_PRECISIONS_TEXT = ", ".join(SAMPLING_PRECISIONS[:-1]) + " or " + SAMPLING_PRECISIONS[-1]
#: Largest classifier-free guidance scale accepted.
MAX_GUIDANCE = 20.0
#: Largest guidance scale the napari and Jupyter sliders offer (beyond it samples degrade quickly).
GUIDANCE_SLIDER_MAX = 7.0

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
        """Build a config from :meth:`to_dict` output.

        Raises
        ------
        ModelLoadError
            If a field is missing or of the wrong kind.
        """
        try:
            return cls(
                name=str(data["name"]),
                description=str(data.get("description", "")),
                autoencoder=dict(data["autoencoder"]),
                unet=dict(data["unet"]),
                noise_schedule=NoiseSchedule(**data["noise_schedule"]),
                latent_shape=tuple(int(v) for v in data["latent_shape"]),
                image_shape=tuple(int(v) for v in data["image_shape"]),
                affine=tuple(tuple(float(v) for v in row) for row in data["affine"]),
                covariates=tuple(CovariateSpec.from_dict(c) for c in data["covariates"]),
                conditioning=str(data.get("conditioning", "concat+crossattn")),
                scale_factor=float(data.get("scale_factor", 1.0)),
                default_steps=int(data.get("default_steps", 50)),
                default_scheduler=str(data.get("default_scheduler", "ddim")),
                null_condition=None if data.get("null_condition") is None else float(data["null_condition"]),
                default_guidance=float(data.get("default_guidance", 1.0)),
                default_precision=str(data.get("default_precision", "float32")),
                extra=dict(data.get("extra", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelLoadError(f"model configuration is incomplete or malformed: {exc!r}") from exc


def check_config(config: ModelConfig) -> None:
    """Check that the parts of a configuration agree with each other.

    Raises
    ------
    ModelLoadError
        Naming the fields that disagree and their values.
    """
    problems: list[str] = []
    n_cov = len(config.covariates)
    latent_channels = config.latent_shape[0] if config.latent_shape else None
    if config.conditioning not in CONDITIONING_MODES:
        problems.append(f"conditioning must be one of {', '.join(CONDITIONING_MODES)} (got {config.conditioning!r})")
    if len(config.latent_shape) != 4:
        problems.append(f"latent_shape must be (C, X, Y, Z) (got {config.latent_shape})")
    if len(config.image_shape) != 3:
        problems.append(f"image_shape must be (X, Y, Z) (got {config.image_shape})")
    if np.asarray(config.affine).shape != (4, 4):
        problems.append("affine must be a 4 x 4 matrix")
    ae_latent = config.autoencoder.get("latent_channels")
    if ae_latent is not None and ae_latent != latent_channels:
        problems.append(f"autoencoder latent_channels is {ae_latent} but latent_shape has {latent_channels} channels")
    expected_in = (latent_channels or 0) + (n_cov if "concat" in config.conditioning else 0)
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
    if not (np.isfinite(config.scale_factor) and config.scale_factor > 0):
        problems.append(f"scale_factor must be a positive number (got {config.scale_factor})")
    levels = config.autoencoder.get("channels")
    if isinstance(levels, list | tuple) and levels and len(config.latent_shape) == 4 and len(config.image_shape) == 3:
        factor = 2 ** (len(levels) - 1)  # the autoencoder halves the grid between levels
        decoded = tuple(int(v) * factor for v in config.latent_shape[1:])
        if tuple(config.image_shape) != decoded:
            problems.append(
                f"image_shape is {tuple(config.image_shape)} but the autoencoder decodes latents of "
                f"{tuple(config.latent_shape[1:])} to {decoded}"
            )
    if config.default_precision not in SAMPLING_PRECISIONS:
        problems.append(f"default_precision must be {SAMPLING_PRECISIONS_TEXT} (got {config.default_precision!r})")
    if not config.default_guidance >= 1.0:
        problems.append(f"default_guidance must be at least 1 (got {config.default_guidance})")
    if config.default_guidance != 1.0 and config.null_condition is None:
        problems.append(
            "default_guidance other than 1 needs a null_condition (a model trained with conditioning dropout)"
        )
    schedule = config.noise_schedule
    if schedule.schedule not in NOISE_SCHEDULES:
        problems.append(
            f"noise_schedule.schedule must be one of {', '.join(NOISE_SCHEDULES)} (got {str(schedule.schedule)[:60]!r})"
        )
    if schedule.prediction_type not in PREDICTION_TYPES:
        problems.append(
            f"noise_schedule.prediction_type must be one of {', '.join(PREDICTION_TYPES)} "
            f"(got {str(schedule.prediction_type)[:60]!r})"
        )
    for section in ("autoencoder", "unet"):
        problems += network_setting_problems(getattr(config, section), section)
    names = [c.name for c in config.covariates]
    if len(set(names)) != len(names):
        problems.append(f"covariate names must be unique (got {names})")
    if problems:
        raise ModelLoadError(f"model configuration '{config.name}' is inconsistent: " + "; ".join(problems))


def network_setting_problems(settings: Mapping[str, Any], section: str) -> list[str]:
    """What is wrong with network settings that should be plain numbers, booleans and lists of them.

    MONAI's network settings are such values; a string there would reach a bundle that MONAI's
    ``ConfigParser`` reads (and evaluates when it starts with ``$``), so none is accepted.
    """
    problems = []

    def check(value: Any, where: str) -> None:
        if isinstance(value, list | tuple):
            for i, item in enumerate(value):
                check(item, f"{where}[{i}]")
        elif not (value is None or isinstance(value, bool | int | float)):
            problems.append(f"{where} must be a number, a boolean or a list of them (got {str(value)[:60]!r})")

    for name, value in settings.items():
        check(value, f"{section}.{name}")
    return problems
