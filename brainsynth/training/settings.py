"""Training configurations as files: presets ``tiny`` (tests), ``demo`` (the demo model) and ``paper``.

A configuration file is JSON with three sections: ``data`` (grid and covariates), ``autoencoder`` and
``diffusion`` (network settings and optimisation). ``--config`` takes a preset name or a file path.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from brainsynth.bids import DataSettings, own_covariate_spec
from brainsynth.config import (
    COVARIATE_FIELDS,
    MAX_AXIS,
    MAX_GUIDANCE,
    SAMPLING_PRECISIONS,
    SAMPLING_PRECISIONS_TEXT,
    NoiseSchedule,
    covariate_problems,
)
from brainsynth.errors import InvalidParameterError
from brainsynth.files.schema import Checks, read_json
from brainsynth.loading.networks import network_setting_problems
from brainsynth.loading.presets import COVARIATE_SETS

PRESETS_DIR = Path(__file__).parent / "presets"

#: Settings that say how long a run is, how often it reports, in which arithmetic it runs, how its
#: learning rate ends and how its model samples by default, not what it learns: a checkpoint may be
#: resumed with other values of these (to train a run longer, or to anneal a long run).
UNCHECKED_ON_RESUME = (
    "steps",
    "checkpoint_every",
    "log_every",
    "image_every",
    "precision",
    "lr_schedule",
    "sampling_guidance",
    "sampling_precision",
    "init_autoencoder",
)
#: Arithmetic of the diffusion U-Net's forward pass in training (weights and optimiser stay float32).
TRAINING_PRECISIONS = ("float32", "bfloat16")
#: Learning-rate schedules after the warm-up: constant, or a cosine from ``lr`` to 0 at the last step.
LR_SCHEDULES = ("constant", "cosine")
#: What a diffusion run started with ``init_from`` may assume of the start model's autoencoder: the run's
#: own (the same latents and scale factor), or one the run's autoencoder was fine-tuned from (its latents
#: moved, so the scale factor may differ; the run uses its own, which keeps the U-Net's input at unit variance).
INIT_AUTOENCODER = ("same", "fine-tuned")


@dataclass(frozen=True)
class AutoencoderTraining:
    """Settings of autoencoder training (L1 + KL + patch adversarial [+ perceptual] losses)."""

    network: dict[str, Any]
    discriminator: dict[str, Any] = field(default_factory=lambda: {"channels": 32, "num_layers_d": 3})
    steps: int = 1000
    batch_size: int = 1
    lr: float = 1e-4
    lr_discriminator: float = 5e-4
    kl_weight: float = 1e-6
    adversarial_weight: float = 0.01
    adversarial_warmup: int = 0
    perceptual_weight: float = 0.0
    patch_size: tuple[int, int, int] | None = None
    checkpoint_every: int = 100
    log_every: int = 10
    image_every: int = 500
    seed: int = 0
    fine_tune: str = "all"
    mse_weight: float = 0.0
    lr_schedule: str = "constant"


#: What an autoencoder run trains: everything, or (starting from a trained autoencoder) the decoder alone.
FINE_TUNE = ("all", "decoder")


@dataclass(frozen=True)
class DiffusionTraining:
    """Settings of latent diffusion training (epsilon prediction, EMA weights)."""

    network: dict[str, Any]
    noise_schedule: NoiseSchedule = field(default_factory=NoiseSchedule)
    steps: int = 1000
    batch_size: int = 4
    lr: float = 1e-4
    ema_decay: float = 0.999
    warmup_steps: int = 100
    lr_schedule: str = "constant"
    conditioning_dropout: float = 0.0
    checkpoint_every: int = 100
    log_every: int = 10
    image_every: int = 1000
    seed: int = 0
    sampling_steps: int = 50
    sampling_scheduler: str = "ddim"
    sampling_guidance: float = 1.0
    sampling_precision: str = "float32"
    latents: str = "sample"
    precision: str = "float32"
    init_autoencoder: str = "same"


@dataclass(frozen=True)
class TrainingConfig:
    """A whole training configuration (see the module docstring)."""

    name: str
    data: DataSettings
    autoencoder: AutoencoderTraining
    diffusion: DiffusionTraining
    description: str = ""
    source: str = ""

    def section(self, task: str) -> dict[str, Any]:
        """The settings one task depends on (data + its own section), as JSON-ready data."""
        return json.loads(json.dumps({"data": asdict(self.data), task: asdict(getattr(self, task))}))

    def section_hash(self, task: str) -> str:
        """SHA-256 of the settings that shape training (:meth:`section` without the step count, the
        checkpoint, log and image intervals and the precision), to tell whether a checkpoint belongs to
        this configuration. A run may so be resumed with more steps to train longer, or in another precision."""
        section = self.section(task)
        for key in UNCHECKED_ON_RESUME:
            section[task].pop(key, None)
        return hashlib.sha256(json.dumps(section, sort_keys=True).encode()).hexdigest()

    def with_steps(self, task: str, steps: int) -> TrainingConfig:
        """A copy whose ``task`` section trains for ``steps`` steps."""
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise InvalidParameterError(f"steps must be a positive integer (got {steps!r})")
        return replace(self, **{task: replace(getattr(self, task), steps=steps)})


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    if not isinstance(data, dict):
        raise InvalidParameterError(f"config section {where} must be an object (got {type(data).__name__})")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise InvalidParameterError(f"config section {where} has unknown keys {unknown}; allowed: {sorted(names)}")
    values = dict(data)
    checks = Checks()
    for spec in fields(cls):
        if spec.name not in values:
            continue
        value, place, kind = values[spec.name], f"{where}.{spec.name}", str(spec.type)
        if value is None and kind.endswith("| None"):
            continue
        if kind == "int":
            checks.integer(value, place, 0)
        elif kind == "float":
            checks.number(value, place)
        elif spec.name == "covariates" and cls is DataSettings:
            if isinstance(value, list):
                values[spec.name] = _own_covariates(value, place, checks)
            else:
                checks.text(value, place)
        elif kind == "str":
            checks.text(value, place)
        elif kind.startswith("dict") and checks.mapping(value, place) and spec.name == "network":
            checks.problems += network_setting_problems(value, place)
        elif kind.startswith("tuple[int, int, int]") and checks.integers(value, place, 3, 1, MAX_AXIS):
            values[spec.name] = tuple(value)
    checks.raise_if_any("config is malformed", InvalidParameterError)
    if "noise_schedule" in values:
        values["noise_schedule"] = _build(NoiseSchedule, values["noise_schedule"], f"{where}.noise_schedule")
    try:
        return cls(**values)
    except TypeError as exc:
        raise InvalidParameterError(f"config section {where} is incomplete: {exc}") from exc


def _own_covariates(items: list[Any], where: str, checks: Checks) -> tuple[dict[str, Any], ...]:
    """A configuration's own covariate list, each entry checked as a covariate spec with a column."""
    own = []
    if not items:
        checks.add(f"{where} must name a covariate set ({', '.join(COVARIATE_SETS)}) or list at least one covariate")
    for i, item in enumerate(items):
        place = f"{where}[{i}]"
        if not checks.mapping(item, place):
            continue
        checks.known_keys(item, place, (*COVARIATE_FIELDS, "column"))
        if "column" in item:
            checks.text(item["column"], f"{place}.column")
        try:
            spec = own_covariate_spec(item)
        except (TypeError, ValueError) as exc:
            checks.add(f"{place} is not a covariate ({exc})")
            continue
        covariate_problems(spec, place, checks)
        own.append({**item, "choices": list(item.get("choices", []))})
    names = [item.get("name") for item in own]
    if len(set(names)) != len(names):
        checks.add(f"{where} names a covariate twice (got {', '.join(map(str, names))})")
    return tuple(own)


def _check(config: TrainingConfig) -> None:
    if isinstance(config.data.covariates, str) and config.data.covariates not in COVARIATE_SETS:
        raise InvalidParameterError(
            f"data.covariates must be one of {', '.join(COVARIATE_SETS)} (got {config.data.covariates!r})"
        )
    levels = len(config.autoencoder.network.get("channels", []))
    factor = 2 ** max(levels - 1, 0)
    for name, shape in (("data.shape", config.data.shape), ("autoencoder.patch_size", config.autoencoder.patch_size)):
        if shape is not None and any(s % factor for s in shape):
            raise InvalidParameterError(
                f"{name} must be divisible by {factor} (the autoencoder downsamples {levels - 1} times; got {shape})"
            )
    if config.diffusion.latents not in ("sample", "mean"):
        raise InvalidParameterError(
            f"diffusion.latents must be 'sample' (draws from the autoencoder's posterior) or 'mean' "
            f"(its mean) (got {config.diffusion.latents!r})"
        )
    if config.autoencoder.fine_tune not in FINE_TUNE:
        raise InvalidParameterError(
            f"autoencoder.fine_tune must be 'all' or 'decoder' (the decoder alone, from --init-from's "
            f"autoencoder, the latents unchanged) (got {config.autoencoder.fine_tune!r})"
        )
    if config.autoencoder.lr_schedule not in LR_SCHEDULES:
        raise InvalidParameterError(
            f"autoencoder.lr_schedule must be one of {', '.join(LR_SCHEDULES)} (got {config.autoencoder.lr_schedule!r})"
        )
    if config.autoencoder.mse_weight < 0:
        raise InvalidParameterError(
            f"autoencoder.mse_weight must be at least 0 (got {config.autoencoder.mse_weight!r})"
        )
    if config.diffusion.lr_schedule not in LR_SCHEDULES:
        raise InvalidParameterError(
            f"diffusion.lr_schedule must be one of {', '.join(LR_SCHEDULES)} (got {config.diffusion.lr_schedule!r})"
        )
    if config.diffusion.init_autoencoder not in INIT_AUTOENCODER:
        raise InvalidParameterError(
            f"diffusion.init_autoencoder must be 'same' (init_from was trained on this run's autoencoder) or "
            f"'fine-tuned' (on the one this run's autoencoder was fine-tuned from) "
            f"(got {config.diffusion.init_autoencoder!r})"
        )
    if config.diffusion.precision not in TRAINING_PRECISIONS:
        raise InvalidParameterError(
            f"diffusion.precision must be one of {', '.join(TRAINING_PRECISIONS)} (bfloat16: mixed precision, "
            f"weights stay float32) (got {config.diffusion.precision!r})"
        )
    if not 0.0 <= config.diffusion.conditioning_dropout < 1.0:
        raise InvalidParameterError(
            f"diffusion.conditioning_dropout must be from 0 to below 1 (got {config.diffusion.conditioning_dropout!r})"
        )
    if config.diffusion.sampling_precision not in SAMPLING_PRECISIONS:
        raise InvalidParameterError(
            f"diffusion.sampling_precision must be {SAMPLING_PRECISIONS_TEXT} "
            f"(got {config.diffusion.sampling_precision!r})"
        )
    if not 1.0 <= config.diffusion.sampling_guidance <= MAX_GUIDANCE:
        raise InvalidParameterError(
            f"diffusion.sampling_guidance must be from 1 to {MAX_GUIDANCE:g} "
            f"(got {config.diffusion.sampling_guidance!r})"
        )
    if config.diffusion.sampling_guidance != 1.0 and config.diffusion.conditioning_dropout == 0.0:
        raise InvalidParameterError(
            "diffusion.sampling_guidance other than 1 needs diffusion.conditioning_dropout above 0 (classifier-free "
            f"guidance uses the U-Net's prediction without covariates) (got {config.diffusion.sampling_guidance!r})"
        )
    for section in ("autoencoder", "diffusion"):
        settings = getattr(config, section)
        for key in ("steps", "batch_size", "checkpoint_every", "log_every", "image_every"):
            if getattr(settings, key) < 1:
                raise InvalidParameterError(f"{section}.{key} must be at least 1 (got {getattr(settings, key)})")


def checked_config(config: TrainingConfig) -> TrainingConfig:
    """A :class:`TrainingConfig` built in Python, given the checks a configuration file gets.

    Raises
    ------
    InvalidParameterError
        For a setting of the wrong kind or range, or settings that disagree.
    """
    for section, kind in (
        ("data", DataSettings),
        ("autoencoder", AutoencoderTraining),
        ("diffusion", DiffusionTraining),
    ):
        value = getattr(config, section)
        if not isinstance(value, kind):
            raise InvalidParameterError(f"config.{section} must be a {kind.__name__} (got {type(value).__name__})")
        _build(kind, asdict(value), section)  # the types and ranges a file's section is checked for
    _check(config)
    return config


def load_training_config(name_or_path: str | Path) -> TrainingConfig:
    """Read a training configuration: a preset name (``tiny``, ``demo``, ``paper``) or a JSON file.

    Raises
    ------
    InvalidParameterError
        For an unknown preset, a missing or malformed file, or unknown or inconsistent settings.
    """
    text = str(name_or_path)
    path = PRESETS_DIR / f"{text}.json" if (PRESETS_DIR / f"{text}.json").is_file() else Path(text).expanduser()
    if not path.is_file():
        presets = sorted(p.stem for p in PRESETS_DIR.glob("*.json"))
        raise InvalidParameterError(f"config must be a preset ({', '.join(presets)}) or a JSON file (got {text!r})")
    data = read_json(path, "training config (JSON)", error=InvalidParameterError)
    unknown = sorted(set(data) - {"name", "description", "data", "autoencoder", "diffusion"})
    if unknown:
        raise InvalidParameterError(f"config file {path} has unknown sections {unknown}")
    config = TrainingConfig(
        name=str(data.get("name", path.stem)),
        description=str(data.get("description", "")),
        data=_build(DataSettings, data.get("data", {}), "data"),
        autoencoder=_build(AutoencoderTraining, data.get("autoencoder", {}), "autoencoder"),
        diffusion=_build(DiffusionTraining, data.get("diffusion", {}), "diffusion"),
        source=str(path),
    )
    _check(config)
    return config
