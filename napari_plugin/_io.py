"""Reader and writer contributions: NIfTI with its affine in, NIfTI with a brainsynth sidecar out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from brainsynth.nifti import is_nifti_path, load_nifti, save_nifti


def _layer_name(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def read_nifti(path: str | list[str]) -> list[tuple[np.ndarray, dict[str, Any], str]]:
    """Read NIfTI files as Image layers placed by their affine; a JSON sidecar goes to the metadata."""
    layers = []
    for item in [path] if isinstance(path, str) else path:
        volume, affine, sidecar = load_nifti(item)
        if volume.ndim == 4:  # frames last on disk, first in napari
            volume = np.moveaxis(volume, -1, 0)
            full = np.eye(5)
            full[1:, 1:] = affine
            affine = full
        metadata = {"brainsynth": sidecar} if sidecar else {}
        low, high = np.percentile(volume, [0.5, 99.5]) if volume.size else (0.0, 1.0)
        kwargs = {
            "name": _layer_name(Path(item)),
            "affine": affine,
            "metadata": metadata,
            "colormap": "gray",
            "contrast_limits": (float(low), float(max(high, low + 1e-6))),
        }
        layers.append((volume, kwargs, "image"))
    return layers


def get_reader(path: str | list[str]):
    """Return :func:`read_nifti` for NIfTI paths, None for anything else."""
    paths = [path] if isinstance(path, str) else path
    return read_nifti if paths and all(is_nifti_path(p) for p in paths) else None


def write_nifti(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """Save an Image layer as NIfTI with its affine, and its brainsynth provenance as a JSON sidecar.

    4D layers (frame, X, Y, Z) are written frames last, as NIfTI expects.
    """
    volume = np.asarray(data, dtype=np.float32)
    affine = np.asarray(attributes.get("affine", np.eye(volume.ndim + 1)), dtype=np.float64)
    if volume.ndim == 4:
        volume = np.moveaxis(volume, 0, -1)
        affine = affine[1:, 1:]
    provenance = (attributes.get("metadata") or {}).get("brainsynth")
    sidecar = {**provenance, "saved_from": "napari", "layer": attributes.get("name")} if provenance else None
    save_nifti(volume, affine, path, sidecar=sidecar, overwrite=True)
    return [path]
