"""Loading a MONAI bundle directory such as ``brain_image_synthesis_latent_diffusion_model``.

Network and scheduler settings are read from ``configs/inference.json`` as plain data: the bundle's
``$`` expressions are never evaluated, so loading a bundle runs none of its code. Both public layouts
of the published bundle load: MONAI's model zoo (``monai.networks.nets`` targets, ``channels``,
``models/autoencoder.pt`` and ``models/model.pt`` with md5 sums; also what the Hugging Face hub
serves) and MONAI GenerativeModels' (``generative.networks.nets`` targets, ``num_channels``,
``models/autoencoder.pth`` and ``models/diffusion_model.pth``, no sums). Settings are read by meaning:
the old spellings of a setting are renamed to MONAI's current ones. Weight files are checked against
the md5 in ``large_files.yml`` where it gives one, before any network is built, and weights saved by
MONAI GenerativeModels are converted to current MONAI networks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from brainsynth.config import MAX_AXIS, ModelConfig, NoiseSchedule
from brainsynth.covariates import generic_covariates
from brainsynth.errors import ModelLoadError, ModelNotFoundError
from brainsynth.files.schema import Checks, kind_of, read_json, read_yaml, shown
from brainsynth.loading.assemble import assemble_model
from brainsynth.loading.networks import MAX_CHANNELS
from brainsynth.loading.presets import UKB_AFFINE, UKB_COVARIATES, ukb_config
from brainsynth.loading.weights import hash_file, verify_hash
from brainsynth.model import LatentDiffusionModel

INFERENCE_CONFIG = Path("configs") / "inference.json"

#: Per network: the bundle key of its settings, the key of its weight path and the default weight file.
_NETWORK_KEYS = {
    "autoencoder": ("autoencoder_def", "load_autoencoder_path", "models/autoencoder.pt"),
    "unet": ("diffusion_def", "load_diffusion_path", "models/model.pt"),
}
_IGNORED_KEYS = ("_target_", "_requires_", "_disabled_", "_desc_", "_mode_", "use_flash_attention")
#: Network settings spelled differently by MONAI GenerativeModels' classes, and MONAI's current names.
SETTING_ALIASES = {"num_channels": "channels", "use_checkpointing": "use_checkpoint"}
#: The two public layouts of the bundle, recognised by the module their networks come from.
BUNDLE_LAYOUTS = {"monai.": "MONAI model zoo", "generative.": "MONAI GenerativeModels"}
_SCHEDULER_FIELDS = ("num_train_timesteps", "schedule", "beta_start", "beta_end", "prediction_type")


def is_bundle_dir(path: str | Path) -> bool:
    """Whether ``path`` looks like a MONAI bundle directory with an inference config."""
    return (Path(path) / INFERENCE_CONFIG).is_file()


def _resolve_reference(config: dict[str, Any], value: Any, key: str) -> Any:
    seen = set()
    while isinstance(value, str) and value.startswith("@"):
        name = value[1:]
        if name in seen or name not in config:
            raise ModelLoadError(f"bundle config key {key!r} refers to {value!r}, which is not defined")
        seen.add(name)
        value = config[name]
    return value


#: Prefixes that make MONAI's ConfigParser evaluate (``$``), look up (``@``) or include (``%``) a string.
PARSED_PREFIXES = ("$", "@", "%")


def parsed_strings(
    data: Any, where: str = "", prefixes: tuple[str, ...] = PARSED_PREFIXES, skip: frozenset[str] = frozenset()
) -> Iterator[tuple[str, str]]:
    """Every string in ``data`` (mappings and lists, nested) that MONAI's ConfigParser would act on.

    Yields ``(where, value)``, ``where`` a dotted path such as ``diffusion_def.attention_levels[1]``;
    paths in ``skip`` are passed over with all they hold.
    """
    if where in skip:
        return
    if isinstance(data, str) and data.startswith(prefixes):
        yield where, data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from parsed_strings(value, f"{where}.{key}" if where else str(key), prefixes, skip)
    elif isinstance(data, list | tuple):
        for i, value in enumerate(data):
            yield from parsed_strings(value, f"{where}[{i}]", prefixes, skip)


def _refuse_expressions(value: Any, where: str) -> None:
    """Refuse ``$`` expressions anywhere in a setting, inside lists and mappings too."""
    for place, text in parsed_strings(value, where, ("$",)):
        raise ModelLoadError(
            f"bundle setting {place} is an expression ({text[:60]!r}); brainsynth reads plain values only"
        )


def _plain_settings(config: dict[str, Any], key: str) -> dict[str, Any]:
    section = _resolve_reference(config, config.get(key), key)
    if not isinstance(section, dict):
        raise ModelLoadError(f"bundle config {INFERENCE_CONFIG} has no {key!r} section of network settings")
    settings: dict[str, Any] = {}
    for name, value in section.items():
        if name in _IGNORED_KEYS:
            continue
        value = _resolve_reference(config, value, f"{key}.{name}")
        _refuse_expressions(value, f"{key}.{name}")
        current = SETTING_ALIASES.get(name, name)
        if current in settings and settings[current] != value:
            raise ModelLoadError(
                f"bundle setting {key} gives {current} twice with different values "
                f"({settings[current]!r} and {name}={value!r})"
            )
        settings[current] = value
    return settings


def bundle_layout(config: dict[str, Any]) -> str:
    """Which public layout a bundle config follows, from its networks' ``_target_``."""
    section = _resolve_reference(config, config.get(_NETWORK_KEYS["unet"][0]), _NETWORK_KEYS["unet"][0])
    target = str(section.get("_target_", "")) if isinstance(section, dict) else ""
    return next((name for prefix, name in BUNDLE_LAYOUTS.items() if target.startswith(prefix)), "other")


def _latent_shape(config: dict[str, Any], autoencoder: dict[str, Any]) -> tuple[int, ...] | None:
    noise = config.get("noise")
    if isinstance(noise, str):
        match = re.search(r"randn\(\s*\(\s*([\d\s,]+)\)", noise)
        if match:
            dims = [int(v) for v in match.group(1).split(",") if v.strip()]
            if len(dims) == 5:
                return tuple(dims[1:])
    latent_shape = config.get("latent_shape")
    if isinstance(latent_shape, list):
        return tuple(latent_shape)  # its values are checked with the whole configuration
    return None


def _inference_steps(config: dict[str, Any]) -> int:
    text = config.get("set_timesteps")
    match = re.search(r"num_inference_steps\s*=\s*(\d+)", text) if isinstance(text, str) else None
    return int(match.group(1)) if match else 50


def _expected_md5(directory: Path) -> dict[str, str]:
    path = directory / "large_files.yml"
    if not path.is_file():
        return {}
    listing = read_yaml(path, "large_files.yml") or {}
    entries = listing.get("large_files", [])
    checks = Checks()
    if not isinstance(entries, list):
        checks.add(f"large_files must be a list of files (got {kind_of(entries)})")
        entries = []
    expected = {}
    for i, entry in enumerate(entries):
        where = f"large_files[{i}]"
        if not checks.mapping(entry, where) or not checks.text(entry.get("path"), f"{where}.path"):
            continue
        value = entry.get("hash_val")
        if str(entry.get("hash_type", "")).lower() != "md5" or value in (None, ""):
            continue  # no sum given (the GenerativeModels layout), or one of a kind not checked
        if isinstance(value, str) and len(value) == 32 and all(c in "0123456789abcdefABCDEF" for c in value):
            expected[entry["path"]] = value
        else:
            checks.add(f"{where}.hash_val must be an md5 sum of 32 hexadecimal digits (got {shown(value)})")
    checks.raise_if_any(f"{path} is malformed")
    return expected


def _weight_path(config: dict[str, Any], key: str, default: str) -> str:
    text = config.get(key)
    match = re.search(r"'(/[^']+\.(?:pt|pth|safetensors))'", text) if isinstance(text, str) else None
    relative = ("models" + match.group(1)) if match else default
    if ".." in Path(relative).parts:
        raise ModelLoadError(
            f"bundle config key {key!r} names the weight file {relative!r}, which lies outside "
            "the bundle's models folder; weight files must be inside the bundle"
        )
    return relative


def weight_files(directory: str | Path, inference: dict[str, Any] | None = None) -> dict[str, str]:
    """Network name to the weight file a bundle's config names, relative to the bundle folder."""
    config = inference if inference is not None else read_inference_config(Path(directory))
    return {
        net_name: _weight_path(config, path_key, default) for net_name, (_, path_key, default) in _NETWORK_KEYS.items()
    }


def read_inference_config(directory: Path) -> dict[str, Any]:
    """The bundle's ``configs/inference.json`` as plain JSON data (nothing in it is evaluated)."""
    return read_json(directory / INFERENCE_CONFIG, "JSON bundle config")


def read_bundle_config(directory: str | Path, *, name: str = "bundle", inference: dict[str, Any] | None = None):
    """Build a :class:`~brainsynth.config.ModelConfig` from a bundle's ``configs/inference.json``.

    The four-covariate layout of the published model gets its real-unit covariates; another number of
    covariates gets generic ones in normalised units (``c0``, ``c1``, ...).
    """
    directory = Path(directory)
    path = directory / INFERENCE_CONFIG
    config = inference if inference is not None else read_inference_config(directory)
    autoencoder = _plain_settings(config, _NETWORK_KEYS["autoencoder"][0])
    unet = _plain_settings(config, _NETWORK_KEYS["unet"][0])
    scheduler = _plain_settings(config, "scheduler")
    schedule = NoiseSchedule(**{k: scheduler[k] for k in _SCHEDULER_FIELDS if k in scheduler})
    latent_shape = _latent_shape(config, autoencoder)
    if latent_shape is None:
        raise ModelLoadError(f"{path} gives no latent shape (neither a 'noise' randn shape nor 'latent_shape')")
    checks = Checks()
    checks.integers(latent_shape, "latent_shape", 4, 1, MAX_AXIS)
    for setting in ("in_channels", "cross_attention_dim"):
        if unet.get(setting) is not None:
            checks.integer(unet[setting], f"{_NETWORK_KEYS['unet'][0]}.{setting}", 1, MAX_CHANNELS)
    scale = config.get("scale_factor")
    if scale is not None:
        checks.number(scale, "scale_factor", 0.0, above=True)
    checks.raise_if_any(f"{path} is malformed")
    n_cov = unet.get("cross_attention_dim") or unet.get("in_channels", 0) - latent_shape[0]
    levels = autoencoder.get("channels")
    if not isinstance(levels, list) or not levels:
        raise ModelLoadError(
            f"{path}: the autoencoder settings give no channels per level "
            f"(channels or num_channels), so the image grid is unknown"
        )
    factor = 2 ** (len(levels) - 1)  # the autoencoder halves the grid between levels
    image_shape = tuple(s * factor for s in latent_shape[1:])
    fields: dict[str, Any] = {
        "description": f"MONAI bundle loaded from {directory}",
        "covariates": UKB_COVARIATES if n_cov == len(UKB_COVARIATES) else generic_covariates(n_cov),
        "affine": UKB_AFFINE if image_shape == (160, 224, 160) else _centred_affine(image_shape),
    }
    if scale is not None:
        fields["scale_factor"] = float(scale)
    fields.update(_exported_fields(directory))
    try:
        return ukb_config(
            name=name,
            autoencoder=autoencoder,
            unet=unet,
            noise_schedule=schedule,
            latent_shape=latent_shape,
            image_shape=image_shape,
            conditioning="concat+crossattn" if unet.get("in_channels", 0) > latent_shape[0] else "crossattn",
            default_steps=_inference_steps(config),
            extra={"bundle_config": str(path), "bundle_layout": bundle_layout(config)},
            **fields,
        )
    except ModelLoadError as exc:
        raise ModelLoadError(f"{path}: {exc}") from exc


def _exported_fields(directory: Path) -> dict[str, Any]:
    """Covariates, grid and scale factor recorded by ``brainsynth export`` in ``configs/brainsynth.json``."""
    path = directory / "configs" / "brainsynth.json"
    if not path.is_file():
        return {}
    exported = ModelConfig.from_dict(read_json(path, "JSON model configuration"))
    return {
        "description": exported.description,
        "covariates": exported.covariates,
        "affine": exported.affine,
        "scale_factor": exported.scale_factor,
        "default_scheduler": exported.default_scheduler,
    }


def _centred_affine(shape: tuple[int, ...]) -> tuple[tuple[float, ...], ...]:
    """A 1 mm RAS affine that puts the volume's centre at the world origin."""
    rows = [[1.0 if i == j else 0.0 for j in range(4)] for i in range(4)]
    for i in range(3):
        rows[i][3] = -(shape[i] - 1) / 2.0
    return tuple(tuple(r) for r in rows)


def load_bundle(directory: str | Path, *, name: str | None = None) -> LatentDiffusionModel:
    """Load a MONAI bundle directory as a :class:`~brainsynth.model.LatentDiffusionModel`.

    Raises
    ------
    ModelNotFoundError
        If a weight file is missing.
    ChecksumError
        If a weight file's md5 differs from ``large_files.yml``.
    ModelLoadError
        For an unreadable config or weights that do not fit the configured networks.
    """
    directory = Path(directory)
    raw = read_inference_config(directory)
    config = read_bundle_config(directory, name=name or directory.name, inference=raw)
    expected = _expected_md5(directory)
    paths: dict[str, Path] = {}
    hashes: dict[str, dict[str, str]] = {}
    for net_name, relative in weight_files(directory, raw).items():  # every file checked before any network
        path = directory / relative
        if not path.is_file():
            raise ModelNotFoundError(f"bundle {directory} is missing its {net_name} weight file {relative}")
        if relative in expected:
            hashes[net_name] = {"file": relative, "md5": verify_hash(path, expected[relative], "md5")}
        else:
            hashes[net_name] = {"file": relative, "sha256": hash_file(path)}
        paths[net_name] = path
    return assemble_model(config, paths, hashes, source=str(directory.resolve()))
