"""Named models: where ``demo`` and ``ukb`` live, and downloading the published bundle.

``ukb`` is looked up in brainsynth's cache (``$BRAINSYNTH_HOME/bundles``, by default
``~/.cache/brainsynth/bundles``) and then in MONAI's own bundle folder (``$TORCH_HOME/hub/bundle``), so
a bundle already fetched with ``python -m monai.bundle download`` is found too.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from brainsynth.errors import BrainsynthError, ModelNotFoundError
from brainsynth.loading.presets import UKB_BUNDLE_NAME

#: Model names known to brainsynth and what each is.
MODEL_NAMES = {
    "demo": "small model shipped inside the package, trained on a synthetic cohort (CPU-friendly)",
    "ukb": "the published UK Biobank model of Pinaya et al. 2022 (MONAI bundle; `brainsynth download ukb`)",
}

PACKAGED_MODELS = Path(__file__).parent.parent / "assets"


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


#: Where the published bundle is hosted, tried in order: MONAI's Hugging Face organisation (bundle
#: 1.0.3 and later), then MONAI's own download source ("monaihosting", which MONAI 1.6 also uses by
#: default). Each entry is a source name and keyword arguments of :func:`monai.bundle.download`.
UKB_SOURCES: tuple[tuple[str, dict[str, str]], ...] = (
    ("huggingface_hub", {"repo": f"MONAI/{UKB_BUNDLE_NAME}"}),
    ("monaihosting", {}),
)


def _monai_download(**kwargs: object) -> None:
    from monai.bundle import download

    download(**kwargs)


def download_ukb(destination: str | Path | None = None, *, downloader: Callable[..., None] | None = None) -> Path:
    """Download the published bundle with MONAI's bundle downloader.

    Each source of :data:`UKB_SOURCES` is tried in turn; the bundle is downloaded into a hidden folder
    beside its final place and moved there once its configuration and both weight files are present,
    so ``--model ukb`` never finds a half-downloaded bundle.

    Parameters
    ----------
    destination : str or Path, optional
        Parent folder for the bundle (default: ``cache_dir() / "bundles"``, where ``--model ukb`` looks).
    downloader : callable, optional
        Called as ``downloader(name=..., bundle_dir=..., source=..., **source_options)``; default
        :func:`monai.bundle.download`.

    Returns
    -------
    Path
        The bundle directory.

    Raises
    ------
    BrainsynthError
        If the bundle is already there, or every source failed (each source is named with its reason).
    """
    from brainsynth.loading.bundle import read_bundle_config, weight_files

    folder = Path(destination).expanduser() if destination else cache_dir() / "bundles"
    target = folder / UKB_BUNDLE_NAME
    if target.exists():
        raise BrainsynthError(f"{target} already exists; remove it to download {UKB_BUNDLE_NAME} again")
    folder.mkdir(parents=True, exist_ok=True)
    download = downloader or _monai_download
    failures = []
    for source, options in UKB_SOURCES:
        staging = Path(tempfile.mkdtemp(prefix=f".{UKB_BUNDLE_NAME}.", dir=folder))
        try:
            download(name=UKB_BUNDLE_NAME, bundle_dir=str(staging), source=source, **options)
            fetched = staging / UKB_BUNDLE_NAME
            read_bundle_config(fetched)
            missing = [str(p) for p in weight_files(fetched).values() if not (fetched / p).is_file()]
            if missing:
                raise BrainsynthError(f"the download lacks {', '.join(missing)}")
            fetched.rename(target)
            return target
        except Exception as exc:  # network and hosting errors come in many types
            where = f"{source} ({options['repo']})" if "repo" in options else source
            failures.append(f"{where}: {type(exc).__name__}: {str(exc)[:300]}")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    raise BrainsynthError(f"downloading {UKB_BUNDLE_NAME} failed from every source; " + "; ".join(failures))
