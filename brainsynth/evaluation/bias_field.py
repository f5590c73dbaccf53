"""Flattening the intensity bias of a skull-stripped T1w image, with its white matter as the reference.

White matter has one intensity everywhere in a T1w image, so its slow variation is the bias field:
the voxels of the brightest intensity class are divided by their median, smoothed with a normalised
Gaussian (the average of nearby white matter, wherever there is some), and the image is divided by
that field. Two rounds: the second finds the white matter of the flattened image. Like N4 it assumes a
smooth multiplicative field; unlike N4 it does not take grey/white contrast for bias at 2 mm.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from brainsynth.evaluation.intensity_classes import kmeans_1d

#: Width of the bias field's smoothing, mm.
SIGMA_MM = 12.0


def correct_bias(volume: np.ndarray, brain: np.ndarray, spacing_mm: float, *, iterations: int = 2) -> np.ndarray:
    """The image divided by its white-matter bias field, zero outside ``brain``.

    Parameters
    ----------
    volume : numpy.ndarray
        (X, Y, Z) T1w intensities.
    brain : numpy.ndarray
        (X, Y, Z) boolean brain mask.
    spacing_mm : float
        Voxel size, mm.
    iterations : int
        Rounds of white-matter selection and division.

    Returns
    -------
    numpy.ndarray
        float32 corrected image; inside the brain its white matter has about the median white-matter
        intensity of the input.
    """
    sigma = SIGMA_MM / float(spacing_mm)
    corrected = np.where(brain, volume, 0.0).astype(np.float32)
    for _ in range(iterations):
        _, grey, white = kmeans_1d(corrected[brain])
        white_matter = brain & (corrected > (grey + white) / 2.0)
        level = float(np.median(corrected[white_matter]))
        numerator = ndimage.gaussian_filter(np.where(white_matter, corrected / level, 0.0).astype(np.float32), sigma)
        weight = ndimage.gaussian_filter(white_matter.astype(np.float32), sigma)
        field = np.where(weight > 1e-2, numerator / np.maximum(weight, 1e-2), 1.0)
        corrected = np.where(brain, corrected / np.maximum(field, 0.3), 0.0).astype(np.float32)
    return corrected
