"""Resampling a volume between two grids in world space (RAS mm), through a world-to-world transform."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def resample(
    volume: np.ndarray,
    volume_affine: np.ndarray,
    shape: Sequence[int],
    affine: np.ndarray,
    target_to_volume: np.ndarray | None = None,
    *,
    order: int = 1,
) -> np.ndarray:
    """``volume`` (on ``volume_affine``'s grid) sampled on the grid of ``shape`` and ``affine``.

    ``target_to_volume`` maps a point of the target's world to the volume's world (identity when both
    grids live in one world). Points outside the volume are 0. Returns float32.
    """
    transform = np.eye(4) if target_to_volume is None else np.asarray(target_to_volume, dtype=np.float64)
    voxel_map = np.linalg.inv(np.asarray(volume_affine, dtype=np.float64)) @ transform @ np.asarray(affine)
    return ndimage.affine_transform(
        np.asarray(volume, dtype=np.float32),
        voxel_map[:3, :3],
        offset=voxel_map[:3, 3],
        output_shape=tuple(int(s) for s in shape),
        order=order,
        mode="constant",
        cval=0.0,
    ).astype(np.float32, copy=False)


def coverage(
    mask: np.ndarray, mask_affine: np.ndarray, shape: Sequence[int], affine: np.ndarray, mask_to_grid: np.ndarray
) -> float:
    """The fraction of ``mask``'s voxels whose centres fall inside the grid of ``shape`` and ``affine``."""
    points = np.argwhere(mask).T.astype(np.float64)
    if points.size == 0:
        return 0.0
    world = mask_affine[:3, :3] @ points + mask_affine[:3, 3:]
    moved = mask_to_grid[:3, :3] @ world + mask_to_grid[:3, 3:]
    inverse = np.linalg.inv(affine)
    voxels = inverse[:3, :3] @ moved + inverse[:3, 3:]
    inside = np.all((voxels > -0.5) & (voxels < np.asarray(shape, dtype=np.float64)[:, None] - 0.5), axis=0)
    return float(inside.mean())
