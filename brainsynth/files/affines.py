"""When a voxel-to-world affine is usable: one check for model configurations, images and layers."""

from __future__ import annotations

from typing import Any

import numpy as np

#: The smallest voxel volume taken as a real voxel, in mm^3 (a 1 micrometre cube); below it the
#: affine is singular for every purpose here.
MIN_VOXEL_VOLUME = 1e-9


def affine_problem(affine: Any) -> str | None:
    """What makes ``affine`` unusable as a voxel-to-world matrix, or ``None`` when it is usable.

    Usable: a finite 4 x 4 matrix of numbers whose last row is 0 0 0 1 and whose 3 x 3 part spans a
    voxel of at least :data:`MIN_VOXEL_VOLUME`.

    Examples
    --------
    >>> affine_problem(np.diag([1.0, 1.0, 1.0, 1.0])) is None
    True
    >>> affine_problem(np.diag([1.0, 0.0, 1.0, 1.0]))
    'its 3 x 3 part has determinant 0: voxels of no volume'
    """
    try:
        matrix = np.asarray(affine, dtype=np.float64)
    except (TypeError, ValueError):
        return "it is not a matrix of numbers"
    if matrix.shape != (4, 4):
        return f"it has shape {matrix.shape}, not 4 x 4"
    if not np.isfinite(matrix).all():
        return "it holds NaN or infinity"
    if not np.allclose(matrix[3], (0, 0, 0, 1)):
        return f"its last row is {' '.join(f'{v:g}' for v in matrix[3])}, not 0 0 0 1"
    if abs(np.linalg.det(matrix[:3, :3])) < MIN_VOXEL_VOLUME:
        return "its 3 x 3 part has determinant 0: voxels of no volume"
    return None
