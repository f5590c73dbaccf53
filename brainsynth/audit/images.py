"""The images an audit compares, on one grid.

Every image is placed on the grid by its affine (world coordinates, trilinear; no resampling when it
is already on the grid) and scaled as training images are (0 at the minimum, 1 at the 99.5th
percentile, clipped), so that a copy of a training image lines up with it voxel for voxel.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brainsynth.errors import InvalidParameterError
from brainsynth.files.nifti import is_nifti_path, load_nifti

#: The percentile that becomes intensity 1 (the training data's scaling).
UPPER_PERCENTILE = 99.5
#: Affines closer than this (mm) count as the same grid.
GRID_TOLERANCE_MM = 1e-3


@dataclass(frozen=True)
class Grid:
    """The voxel grid an audit compares images on.

    Attributes
    ----------
    shape : tuple of int
        Voxels along each axis.
    affine : numpy.ndarray
        (4, 4) voxel-to-world matrix, mm.
    """

    shape: tuple[int, int, int]
    affine: np.ndarray

    def holds(self, shape: tuple[int, ...], affine: np.ndarray) -> bool:
        """Whether an image of ``shape`` and ``affine`` is on this grid."""
        return tuple(shape) == self.shape and bool(np.allclose(affine, self.affine, atol=GRID_TOLERANCE_MM))

    def describe(self) -> str:
        spacing = np.sqrt((np.asarray(self.affine)[:3, :3] ** 2).sum(axis=0))
        return f"{' x '.join(map(str, self.shape))} voxels of {' x '.join(f'{s:g}' for s in spacing)} mm"


def list_images(folder: str | Path, name: str) -> list[Path]:
    """The NIfTI files (``.nii``, ``.nii.gz``) under ``folder``, sorted; ``name`` is the parameter's name.

    Raises
    ------
    InvalidParameterError
        If the folder is missing, not a folder, or holds no NIfTI file.
    """
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise InvalidParameterError(f"{name} {str(folder)!r} does not exist")
    if not folder.is_dir():
        raise InvalidParameterError(f"{name} {str(folder)!r} is not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if is_nifti_path(p)]
    if not images:
        found = f"it holds {len(files)} other files, such as {files[0].name!r}" if files else "it is empty"
        raise InvalidParameterError(f"{name} {str(folder)!r} holds no NIfTI images (.nii, .nii.gz): {found}")
    return images


def scale_like_training(volume: np.ndarray) -> np.ndarray:
    """0 at the minimum, 1 at the 99.5th percentile of the voxels above it, clipped (float32)."""
    low = float(volume.min())
    above = volume[volume > low]
    high = float(np.percentile(above, UPPER_PERCENTILE)) if above.size else low + 1.0
    return np.clip((volume - low) / max(high - low, 1e-12), 0.0, 1.0).astype(np.float32)


def read_on_grid(path: Path, grid: Grid) -> tuple[np.ndarray, bool]:
    """The image at ``path`` on ``grid``, scaled like training data, and whether it was resampled.

    Raises
    ------
    InvalidParameterError
        If the file cannot be read, is not one 3D volume, holds values that are not finite, or is
        constant (on the grid).
    """
    volume, affine, _ = load_nifti(path)
    if volume.ndim == 4 and volume.shape[3] == 1:
        volume = volume[..., 0]
    if volume.ndim != 3:
        raise InvalidParameterError(f"{path} is not one 3D volume (shape {volume.shape})")
    if not np.isfinite(volume).all():
        raise InvalidParameterError(f"{path} holds {int((~np.isfinite(volume)).sum())} values that are not finite")
    resampled = not grid.holds(volume.shape, affine)
    if resampled:
        from brainsynth.scans.resample import resample

        volume = resample(volume, affine, grid.shape, grid.affine)
    if float(volume.max()) <= float(volume.min()):
        raise InvalidParameterError(f"{path} is constant on the audit's grid (does it overlap it?)")
    return scale_like_training(volume), resampled


def grid_of_image(path: Path) -> Grid:
    """The grid of the image at ``path`` (its own shape and affine)."""
    volume, affine, _ = load_nifti(path)
    return Grid(tuple(int(s) for s in volume.shape[:3]), affine)
