"""``load_model``: one entry point for named models, model directories and MONAI bundles."""

from __future__ import annotations

from pathlib import Path

from brainsynth.errors import InvalidParameterError, ModelNotFoundError
from brainsynth.loading.bundle import is_bundle_dir, load_bundle
from brainsynth.loading.hub import MODEL_NAMES, find_named_model
from brainsynth.loading.model_dir import is_model_dir, load_model_dir
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
    if not isinstance(name_or_path, str | Path):
        raise InvalidParameterError(
            f"name_or_path must be a model name or a folder path (got {type(name_or_path).__name__})"
        )
    text = str(name_or_path)
    if text in MODEL_NAMES:
        path = find_named_model(text)
        name = text
    else:
        path = Path(text).expanduser()
        name = None
        if not path.exists():
            raise ModelNotFoundError(
                f"model must be one of {', '.join(MODEL_NAMES)} or the path of a model or bundle folder "
                f"(got {text!r}, which does not exist)"
            )
    if is_model_dir(path):
        return load_model_dir(path)
    if is_bundle_dir(path):
        return load_bundle(path, name=name)
    raise ModelNotFoundError(
        f"{path} is neither a brainsynth model folder (model.json) nor a MONAI bundle (configs/inference.json)"
    )
