"""Intensity classes of a brain image: one-dimensional k-means on its voxel intensities."""

from __future__ import annotations

import numpy as np


def kmeans_1d(values: np.ndarray, classes: int = 3, iterations: int = 30) -> np.ndarray:
    """Class centres of ``values`` by k-means in one dimension, in increasing order.

    Parameters
    ----------
    values : numpy.ndarray
        1D intensities (for a T1w brain: CSF, grey and white matter with ``classes=3``).
    classes : int
        Number of classes.
    iterations : int
        Most k-means iterations; it stops earlier when the centres no longer move.

    Returns
    -------
    numpy.ndarray
        ``(classes,)`` centres, sorted.
    """
    centres = np.percentile(values, np.linspace(10, 90, classes))
    for _ in range(iterations):
        labels = np.argmin(np.abs(values[:, None] - centres[None]), axis=1)
        updated = np.array([values[labels == k].mean() if np.any(labels == k) else centres[k] for k in range(classes)])
        if np.allclose(updated, centres):
            break
        centres = updated
    return np.sort(centres)
