"""Reader and writer contributions: NIfTI with its affine in, NIfTI with a brainsynth sidecar out."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from brainsynth.errors import InvalidParameterError
from brainsynth.files.affines import MIN_VOXEL_VOLUME, affine_problem
from brainsynth.files.nifti import is_nifti_path, load_nifti, save_nifti


def _layer_name(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def layer_affine(affine: np.ndarray, ndim: int) -> np.ndarray:
    """A NIfTI (4, 4) affine for a napari layer of ``ndim`` axes: 2D images keep the first two spatial axes;
    axes beyond the third (frames, components) come first, unscaled."""
    if ndim == 2:
        return affine[np.ix_([0, 1, 3], [0, 1, 3])]
    full = np.eye(ndim + 1)
    full[ndim - 3 :, ndim - 3 :] = affine
    return full


def contrast_limits(volume: np.ndarray) -> tuple[float, float]:
    """0.5th and 99.5th percentiles of the finite voxels (0 to 1 where there are none), never equal."""
    finite = volume[np.isfinite(volume)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(finite, [0.5, 99.5]))
    return low, max(high, low + 1e-6)


def read_nifti(path: str | list[str]) -> list[tuple[np.ndarray, dict[str, Any], str]]:
    """Read NIfTI files as Image layers placed by their affine; a JSON sidecar goes to the metadata.

    2D to 5D images open: a 2D image with the in-plane part of its affine, axes beyond the third
    (frames on disk) first, as napari's sliders expect.
    """
    layers = []
    for item in [path] if isinstance(path, str) else path:
        volume, affine, sidecar = load_nifti(item)
        if not 2 <= volume.ndim <= 5:
            raise InvalidParameterError(f"{item} has {volume.ndim} dimensions; 2 to 5 can be opened")
        if volume.ndim > 3:  # frames last on disk, first in napari
            volume = np.moveaxis(volume, tuple(range(3, volume.ndim)), tuple(range(volume.ndim - 3)))
        kwargs = {
            "name": _layer_name(Path(item)),
            "affine": layer_affine(affine, volume.ndim),
            "metadata": {"brainsynth": sidecar} if sidecar else {},
            "colormap": "gray",
            "contrast_limits": contrast_limits(volume),
        }
        layers.append((volume, kwargs, "image"))
    return layers


def get_reader(path: str | list[str]):
    """Return :func:`read_nifti` for NIfTI paths, None for anything else."""
    paths = [path] if isinstance(path, str) else path
    return read_nifti if paths and all(is_nifti_path(p) for p in paths) else None


def write_nifti(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """Save an Image layer as NIfTI with its placement, and its brainsynth provenance as a JSON sidecar.

    The layer's scale, translation, rotation and shear are composed with its affine. Layers of 2 to 5
    axes are written; axes before the last three (frames) go last, as NIfTI expects. Provenance that is
    not a mapping is kept under ``"provenance"`` in the sidecar.
    """
    volume = np.asarray(data, dtype=np.float32)
    if not 2 <= volume.ndim <= 5:
        raise InvalidParameterError(f"layer has {volume.ndim} dimensions; layers of 2 to 5 can be saved as NIfTI")
    matrix = _world_matrix(attributes, volume.ndim)
    spatial = min(volume.ndim, 3)
    affine = np.eye(4)
    lower = matrix[volume.ndim - spatial :, volume.ndim - spatial :]  # the spatial axes and the translation
    affine[:spatial, :spatial] = lower[:spatial, :spatial]
    affine[:spatial, 3] = lower[:spatial, spatial]
    if volume.ndim > 3:
        volume = np.moveaxis(volume, tuple(range(volume.ndim - 3)), tuple(range(3, volume.ndim)))
    provenance = (attributes.get("metadata") or {}).get("brainsynth")
    sidecar = None
    if isinstance(provenance, Mapping):
        sidecar = {**provenance, "saved_from": "napari", "layer": attributes.get("name")}
    elif provenance is not None:
        sidecar = {"provenance": provenance, "saved_from": "napari", "layer": attributes.get("name")}
    save_nifti(volume, affine, path, sidecar=sidecar, overwrite=True)
    return [path]


def _world_matrix(attributes: dict[str, Any], ndim: int) -> np.ndarray:
    """The layer's data-to-world matrix: its affine after its scale, rotation, shear and translation."""
    from napari.utils.transforms import Affine

    affine = np.asarray(attributes.get("affine", np.eye(ndim + 1)), dtype=np.float64)
    parts = {k: attributes[k] for k in ("scale", "translate", "rotate", "shear") if attributes.get(k) is not None}
    placement = Affine(ndim=ndim, **parts).affine_matrix
    matrix = affine @ placement
    if ndim >= 3:  # the spatial block: the last three axes (frames come first in napari)
        problem = affine_problem(matrix[-4:, -4:])
    elif not np.isfinite(matrix).all() or abs(np.linalg.det(matrix[:-1, :-1])) < MIN_VOXEL_VOLUME:
        problem = "it holds NaN or infinity, or its pixels have no area"
    else:
        problem = None
    if problem is not None:
        raise InvalidParameterError(
            f"layer's affine is not finite and invertible ({problem}); it cannot be saved as NIfTI"
        )
    return matrix
