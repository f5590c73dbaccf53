"""Named models: where ``demo`` and ``ukb`` live, and downloading the published bundle.

``ukb`` is looked up in brainsynth's cache (``$BRAINSYNTH_HOME/bundles``, by default
``~/.cache/brainsynth/bundles``) and then in MONAI's own bundle folder (``$TORCH_HOME/hub/bundle``), so
a bundle already fetched with ``python -m monai.bundle download`` is found too.
"""

from __future__ import annotations

import os
from pathlib import Path

from brainsynth.errors import BrainsynthError, ModelNotFoundError
from brainsynth.presets import UKB_BUNDLE_NAME

#: Model names known to brainsynth and what each is.
MODEL_NAMES = {
    "demo": "small model shipped inside the package, trained on a synthetic cohort (CPU-friendly)",
    "ukb": "the published UK Biobank model of Pinaya et al. 2022 (MONAI bundle; `brainsynth download ukb`)",
}

PACKAGED_MODELS = Path(__file__).parent / "models"


def cache_dir() -> Path:
    """brainsynth's cache folder: ``$BRAINSYNTH_HOME`` or ``~/.cache/brainsynth``."""
    return Path(os.environ.get("BRAINSYNTH_HOME", Path.home() / ".cache" / "brainsynth")).expanduser()


def bundle_search_path() -> list[Path]:
    """Folders searched for downloaded MONAI bundles, in order."""
    torch_home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")).expanduser()
    return [cache_dir() / "bundles", torch_home / "hub" / "bundle"]


def find_named_model(name: str) -> Path:
    """Return the directory of a named model.

    Raises
    ------
    ModelNotFoundError
        If the name is unknown or the model is not installed, saying how to get it.
    """
    if name == "demo":
        path = PACKAGED_MODELS / "demo"
        if not path.is_dir():
            raise ModelNotFoundError(
                "the demo model is not included in this installation of brainsynth; use --model ukb or a model folder"
            )
        return path
    if name == "ukb":
        for folder in bundle_search_path():
            if (folder / UKB_BUNDLE_NAME).is_dir():
                return folder / UKB_BUNDLE_NAME
        searched = ", ".join(str(f) for f in bundle_search_path())
        raise ModelNotFoundError(
            f"the published ukb model is not downloaded (searched {searched}); run 'brainsynth download ukb' "
            "or pass the bundle folder as the model path"
        )
    raise ModelNotFoundError(
        f"model must be one of {', '.join(MODEL_NAMES)} or the path of a model or bundle folder (got {name!r})"
    )


def download_ukb(destination: str | Path | None = None) -> Path:
    """Download the published bundle with MONAI's bundle downloader.

    Parameters
    ----------
    destination : str or Path, optional
        Parent folder for the bundle (default: ``cache_dir() / "bundles"``).

    Returns
    -------
    Path
        The bundle directory.

    Raises
    ------
    BrainsynthError
        If the download fails (no network, moved files); the message gives MONAI's reason.
    """
    from monai.bundle import download

    folder = Path(destination).expanduser() if destination else cache_dir() / "bundles"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        download(name=UKB_BUNDLE_NAME, bundle_dir=str(folder))
    except Exception as exc:  # network and hosting errors come in many types
        raise BrainsynthError(f"downloading {UKB_BUNDLE_NAME} failed: {type(exc).__name__}: {exc}") from exc
    return folder / UKB_BUNDLE_NAME
