"""Loading a MONAI bundle directory such as ``brain_image_synthesis_latent_diffusion_model``.

Network and scheduler settings are read from ``configs/inference.json`` as plain data: the bundle's
``$`` expressions are never evaluated, so loading a bundle runs none of its code. Weight files are
checked against the md5 in ``large_files.yml`` when it is present, and weights saved by MONAI
GenerativeModels are converted to current MONAI networks.
"""

from __future__ import annotations

import json
import re
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


def _plain_settings(config: dict[str, Any], key: str) -> dict[str, Any]:
    section = _resolve_reference(config, config.get(key), key)
    if not isinstance(section, dict):
        raise ModelLoadError(f"bundle config {INFERENCE_CONFIG} has no {key!r} section of network settings")
    settings = {}
    for name, value in section.items():
        if name in _IGNORED_KEYS:
            continue
        value = _resolve_reference(config, value, f"{key}.{name}")
        if isinstance(value, str) and value.startswith("$"):
            raise ModelLoadError(
                f"bundle setting {key}.{name} is an expression ({value[:60]!r}); brainsynth reads plain values only"
            )
        settings[name] = value
    return settings


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
        return {e["path"]: e["hash_val"] for e in entries if str(e.get("hash_type", "")).lower() == "md5"}
    except (yaml.YAMLError, AttributeError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"{path} is not a readable large_files.yml: {exc}") from exc


def _weight_path(config: dict[str, Any], key: str, default: str) -> str:
    text = config.get(key)
    match = re.search(r"'(/[^']+\.(?:pt|pth|safetensors))'", text) if isinstance(text, str) else None
    return ("models" + match.group(1)) if match else default


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
    factor = 2 ** (len(autoencoder.get("channels", [])) - 1)
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
        extra={"bundle_config": str(path)},
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
    return {"description": exported.description, "covariates": exported.covariates, "affine": exported.affine,
            "scale_factor": exported.scale_factor, "default_scheduler": exported.default_scheduler}


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
    networks = {"autoencoder": build_autoencoder(config.autoencoder), "unet": build_unet(config.unet)}
    hashes: dict[str, dict[str, str]] = {}
    for net_name, network in networks.items():
        _, path_key, default = _NETWORK_KEYS[net_name]
        relative = _weight_path(raw, path_key, default)
        path = directory / relative
        if not path.is_file():
            raise ModelNotFoundError(f"bundle {directory} is missing its {net_name} weight file {relative}")
        if relative in expected:
            hashes[net_name] = {"file": relative, "md5": verify_hash(path, expected[relative], "md5")}
        else:
            hashes[net_name] = {"file": relative, "sha256": hash_file(path)}
        load_weights(network, read_state_dict(path), what=net_name)
    return LatentDiffusionModel(
        config, networks["autoencoder"], networks["unet"], source=str(directory.resolve()), weight_hashes=hashes
    )
