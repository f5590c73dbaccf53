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

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from brainsynth.config import ModelConfig, NoiseSchedule
from brainsynth.covariates import generic_covariates
from brainsynth.errors import ModelLoadError, ModelNotFoundError
from brainsynth.model import LatentDiffusionModel
from brainsynth.networks import build_autoencoder, build_unet, load_weights
from brainsynth.presets import UKB_AFFINE, UKB_COVARIATES, ukb_config
from brainsynth.weights import hash_file, read_state_dict, verify_hash

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
    if isinstance(latent_shape, list) and len(latent_shape) == 4:
        return tuple(int(v) for v in latent_shape)
    return None


def _inference_steps(config: dict[str, Any]) -> int:
    text = config.get("set_timesteps")
    match = re.search(r"num_inference_steps\s*=\s*(\d+)", text) if isinstance(text, str) else None
    return int(match.group(1)) if match else 50


def _expected_md5(directory: Path) -> dict[str, str]:
    path = directory / "large_files.yml"
    if not path.is_file():
        return {}
    try:
        entries = (yaml.safe_load(path.read_text()) or {}).get("large_files", [])
        return {
            e["path"]: e["hash_val"]
            for e in entries
            if str(e.get("hash_type", "")).lower() == "md5" and e.get("hash_val")
        }
    except (yaml.YAMLError, AttributeError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"{path} is not a readable large_files.yml: {exc}") from exc


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
    path = directory / INFERENCE_CONFIG
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path} is not a readable JSON bundle config: {exc}") from exc


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
    n_cov = int(unet.get("cross_attention_dim") or unet.get("in_channels", 0) - latent_shape[0])
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
    scale = config.get("scale_factor")
    if isinstance(scale, int | float) and not isinstance(scale, bool):
        fields["scale_factor"] = float(scale)
    fields.update(_exported_fields(directory))
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


def _exported_fields(directory: Path) -> dict[str, Any]:
    """Covariates, grid and scale factor recorded by ``brainsynth export`` in ``configs/brainsynth.json``."""
    path = directory / "configs" / "brainsynth.json"
    if not path.is_file():
        return {}
    try:
        exported = ModelConfig.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, OSError) as exc:
        raise ModelLoadError(f"{path} is not readable JSON: {exc}") from exc
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
    networks = {"autoencoder": build_autoencoder(config.autoencoder), "unet": build_unet(config.unet)}
    for net_name, network in networks.items():
        load_weights(network, read_state_dict(paths[net_name]), what=net_name)
    return LatentDiffusionModel(
        config, networks["autoencoder"], networks["unet"], source=str(directory.resolve()), weight_hashes=hashes
    )
