"""The brainsynth model directory: ``model.json`` + safetensors weights + ``README.md`` model card.

``model.json`` holds the :class:`~brainsynth.config.ModelConfig` and, for each network, its weight
file and that file's SHA-256, which is checked on every load.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from brainsynth.config import ModelConfig
from brainsynth.errors import ModelLoadError
from brainsynth.files.atomic import atomic_write_files, json_bytes, staged_directory
from brainsynth.files.replace import check_replaceable
from brainsynth.files.schema import Checks, kind_of, read_json, shown
from brainsynth.loading.assemble import NETWORKS, assemble_model
from brainsynth.loading.weights import safetensors_bytes, verify_hash
from brainsynth.model import LatentDiffusionModel

MANIFEST = "model.json"
FORMAT = "brainsynth.model"
FORMAT_VERSION = 1


def is_model_dir(path: str | Path) -> bool:
    """Whether ``path`` is a brainsynth model directory."""
    return (Path(path) / MANIFEST).is_file()


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """Read and check ``model.json`` of a model directory.

    Raises
    ------
    ModelLoadError
        If it is not valid JSON or not a brainsynth model manifest.
    """
    path = Path(directory) / MANIFEST
    manifest = read_json(path, "JSON model manifest")
    if manifest.get("format") != FORMAT:
        raise ModelLoadError(f"{path} is not a brainsynth model manifest (format must be {FORMAT!r})")
    checks = Checks()
    version = manifest.get("format_version", FORMAT_VERSION)
    if checks.integer(version, "format_version", 1) and version > FORMAT_VERSION:
        raise ModelLoadError(
            f"{path} has format version {version}; this brainsynth reads up to {FORMAT_VERSION}: upgrade brainsynth"
        )
    checks.mapping(manifest.get("config"), "config")
    weights = manifest.get("weights")
    if checks.mapping(weights, "weights"):
        for name in NETWORKS:
            entry = weights.get(name)
            if not isinstance(entry, dict):
                checks.add(f"weights.{name} must name the {name} weight file and its sha256 (got {kind_of(entry)})")
                continue
            checks.text(entry.get("file"), f"weights.{name}.file")
            sha = entry.get("sha256")
            if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdefABCDEF" for c in sha)):
                checks.add(f"weights.{name}.sha256 must be 64 hexadecimal digits (got {shown(sha)})")
    checks.raise_if_any(f"{path} is malformed")
    return manifest


def load_model_dir(directory: str | Path) -> LatentDiffusionModel:
    """Load a brainsynth model directory, checking each weight file's SHA-256 first.

    Raises
    ------
    ModelLoadError
        For a malformed manifest, inconsistent configuration, wrong checksum or unfit weights.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    config = _config_of(manifest, directory)
    weights = manifest["weights"]
    hashes: dict[str, dict[str, str]] = {}
    paths: dict[str, Path] = {}
    for name in NETWORKS:  # every file checked before any network is built
        entry = weights[name]
        relative = Path(entry["file"])
        if relative.is_absolute() or ".." in relative.parts:
            raise ModelLoadError(
                f"{directory / MANIFEST} names the {name} weight file {entry['file']!r}, which is "
                "not inside the model folder; weight files must be given relative to it"
            )
        paths[name] = directory / relative
        hashes[name] = {"file": entry["file"], "sha256": verify_hash(paths[name], entry["sha256"], "sha256")}
    return assemble_model(config, paths, hashes, source=str(directory.resolve()))


def model_dir_config(directory: str | Path) -> ModelConfig:
    """The checked configuration of a model directory, without reading its weights."""
    directory = Path(directory)
    return _config_of(read_manifest(directory), directory)


def _config_of(manifest: dict[str, Any], directory: Path) -> ModelConfig:
    try:
        return ModelConfig.from_dict(manifest["config"])
    except ModelLoadError as exc:
        raise ModelLoadError(f"{directory / MANIFEST}: {exc}") from exc


def default_model_card(model: LatentDiffusionModel) -> str:
    """A minimal model card: what the model is, its covariates and where it came from."""
    config = model.config
    rows = "\n".join(f"| {c.name} | {c.label} | {c.describe_range()} | {c.default} |" for c in config.covariates)
    return (
        f"# {config.name}\n\n{config.description}\n\n"
        f"- Image grid: {' x '.join(map(str, config.image_shape))} voxels of "
        f"{' x '.join(f'{v:g}' for v in config.voxel_size)} mm\n"
        f"- Latent: {' x '.join(map(str, config.latent_shape))}, scale factor {config.scale_factor:g}\n"
        f"- Conditioning: {config.conditioning}\n"
        f"- Converted from: {model.source or 'trained with brainsynth'}\n\n"
        f"| covariate | meaning | training range | default |\n|---|---|---|---|\n{rows}\n"
    )


def write_model_files(model: LatentDiffusionModel, directory: Path, *, card: str | None = None) -> Path:
    """Write ``model.json``, the safetensors weights and the model card into an existing folder."""
    weights, files = {}, []
    for name in NETWORKS:
        data = safetensors_bytes(getattr(model, name).state_dict(), {"format": "pt", "network": name})
        weights[name] = {"file": f"{name}.safetensors", "sha256": hashlib.sha256(data).hexdigest()}
        files.append((directory / weights[name]["file"], data))
    files.append((directory / "README.md", (card if card is not None else default_model_card(model)).encode()))
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "weights": weights,
    }
    files.append((directory / MANIFEST, json_bytes(manifest)))  # last: a folder with model.json is complete
    atomic_write_files(files)  # all written in full before any replaces a file of the run (a resumed run's too)
    return directory


def save_model_dir(
    model: LatentDiffusionModel,
    directory: str | Path,
    *,
    card: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a model as a brainsynth model directory.

    The directory is assembled beside its target and renamed into place, so a reader never sees a
    half-written model.

    Parameters
    ----------
    model : LatentDiffusionModel
        The model to save.
    directory : str or Path
        Target directory; its parent must exist.
    card : str, optional
        Markdown model card (default: :func:`default_model_card`).
    overwrite : bool
        Replace an existing directory.

    Returns
    -------
    Path
        The model directory.
    """
    directory = check_replaceable(
        directory, "model folder", overwrite=overwrite, inputs={"the model's own folder": model.source or None}
    )
    with staged_directory(directory, overwrite=True) as staging:
        write_model_files(model, staging, card=card)
    return directory
