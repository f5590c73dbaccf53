"""``load_model``: one entry point for named models, model directories and MONAI bundles (and their configurations)."""

from __future__ import annotations

from pathlib import Path

from brainsynth.config import ModelConfig
from brainsynth.errors import InvalidParameterError, ModelNotFoundError
from brainsynth.loading.bundle import is_bundle_dir, load_bundle, read_bundle_config
from brainsynth.loading.hub import MODEL_NAMES, find_named_model
from brainsynth.loading.model_dir import is_model_dir, load_model_dir, model_dir_config
from brainsynth.model import LatentDiffusionModel


def load_model(name_or_path: str | Path = "demo") -> LatentDiffusionModel:
    """Load a latent diffusion model.

    Parameters
    ----------
    name_or_path : str or Path
        ``"demo"`` (shipped with the package), ``"ukb"`` (the published model, after
        ``brainsynth download ukb``), a brainsynth model directory (``model.json`` + safetensors) or a
        MONAI bundle directory (``configs/inference.json`` + ``models/*.pt``).

    Returns
    -------
    LatentDiffusionModel
        On the CPU; sampling moves it to the requested device.

    Raises
    ------
    ModelNotFoundError
        For an unknown name, a missing path or a missing weight file.
    ModelLoadError
        For a malformed configuration, a wrong checksum, or weights that are truncated, carry code or
        do not fit the networks.

    Examples
    --------
    >>> import brainsynth
    >>> model = brainsynth.load_model("ukb")  # doctest: +SKIP
    >>> model.config.covariate_names  # doctest: +SKIP
    ('sex', 'age', 'ventricular_volume', 'brain_volume')
    """
    path, name = _locate(name_or_path)
    if is_model_dir(path):
        return load_model_dir(path)
    return load_bundle(path, name=name)


def read_model_config(name_or_path: str | Path = "demo") -> ModelConfig:
    """The configuration of a model (its covariates, grids and defaults), without reading its weights.

    Takes what :func:`load_model` takes and raises what it raises for a missing or malformed model;
    the command line builds its covariate options from it before it loads anything.
    """
    path, name = _locate(name_or_path)
    if is_model_dir(path):
        return model_dir_config(path)
    return read_bundle_config(path, name=name or path.name)


def _locate(name_or_path: str | Path) -> tuple[Path, str | None]:
    """The folder of a model name or path, and the name it was asked by (``None`` for a path)."""
    if not isinstance(name_or_path, str | Path):
        raise InvalidParameterError(
            f"name_or_path must be a model name or a folder path (got {type(name_or_path).__name__})"
        )
    text = str(name_or_path)
    if text in MODEL_NAMES:
        path, name = find_named_model(text), text
    else:
        path, name = Path(text).expanduser(), None
        if not path.exists():
            raise ModelNotFoundError(
                f"model must be one of {', '.join(MODEL_NAMES)} or the path of a model or bundle folder "
                f"(got {text!r}, which does not exist)"
            )
    if not is_model_dir(path) and not is_bundle_dir(path):
        raise ModelNotFoundError(
            f"{path} is neither a brainsynth model folder (model.json) nor a MONAI bundle (configs/inference.json)"
        )
    return path, name
