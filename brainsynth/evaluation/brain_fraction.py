"""Head-size-normalised brain volume from the intensity histogram inside the intracranial mask.

The brain fraction of a subject (grey plus white matter over intracranial volume) is read from the
histogram of its intensities, by a linear model fitted at the level of subjects:

1. the bias field is flattened with the white matter as reference (:mod:`~brainsynth.evaluation.bias_field`);
2. intensities are put on a CSF-to-white-matter scale, ``x = (I - I_csf) / (I_wm - I_csf)``, with CSF the
   median of the ventricles' core and white matter the median of the brightest class away from the edge;
3. the features are the fractions of intracranial voxels in 36 bins of ``x`` from -0.4 to 1.4, the noise
   level (on the same scale) and the CSF/white-matter intensity ratio (the image's contrast);
4. the brain fraction is a ridge regression on them, fitted by ``recipes/volumetry/fit_brain_fraction.py``
   to the recorded volumes of synthetic cohort subjects (their own tissue maps, with random contrast,
   bias and noise), and stored in ``brain_fraction.json`` beside this module with how it was fitted.

A linear model of the histogram is a tissue fraction per intensity, summed over the voxels, but fitted
so that each subject's total is right rather than each voxel. Images at another voxel size are
resampled to the calibration's (2 mm) first.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from brainsynth.evaluation.bias_field import correct_bias
from brainsynth.evaluation.intensity_classes import kmeans_1d

#: The fitted model shipped with brainsynth.
CALIBRATION_FILE = Path(__file__).with_name("brain_fraction.json")
#: Bin edges of the histogram of ``x`` (CSF 0, white matter 1).
EDGES = np.linspace(-0.4, 1.4, 37)
#: Names of the features after the histogram's bins.
EXTRA_FEATURES = ("noise", "csf_to_white_matter")


@dataclass(frozen=True)
class Calibration:
    """A fitted linear model of the brain fraction: ``intercept + ((features - mean) / scale) @ coefficients``."""

    spacing_mm: float
    mean: np.ndarray
    scale: np.ndarray
    coefficients: np.ndarray
    intercept: float
    fit: dict

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Brain fractions of ``(n, features)`` or one ``(features,)`` row."""
        return self.intercept + ((np.asarray(features) - self.mean) / self.scale) @ self.coefficients

    def to_dict(self) -> dict:
        """A JSON-serialisable form (what :func:`load_calibration` reads)."""
        return {
            "spacing_mm": self.spacing_mm,
            "edges": EDGES.tolist(),
            "features": [f"bin_{i}" for i in range(len(EDGES) - 1)] + list(EXTRA_FEATURES),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coefficients": self.coefficients.tolist(),
            "intercept": self.intercept,
            "fit": self.fit,
        }


@functools.lru_cache(maxsize=2)
def load_calibration(path: str | Path = CALIBRATION_FILE) -> Calibration:
    """Read a calibration written by :meth:`Calibration.to_dict` (default: the one shipped)."""
    data = json.loads(Path(path).read_text())
    if not np.allclose(data["edges"], EDGES):
        raise ValueError(f"{path} was fitted with other histogram bins than this version of brainsynth uses")
    return Calibration(
        spacing_mm=float(data["spacing_mm"]),
        mean=np.asarray(data["mean"], dtype=np.float64),
        scale=np.asarray(data["scale"], dtype=np.float64),
        coefficients=np.asarray(data["coefficients"], dtype=np.float64),
        intercept=float(data["intercept"]),
        fit=dict(data["fit"]),
    )


def _on_grid(volume: np.ndarray, masks: list[np.ndarray], spacing: float, target: float):
    """The image (and masks) resampled from ``spacing`` to ``target`` mm, low-pass filtered when coarser."""
    if abs(spacing - target) < 1e-3 * target:
        return volume, masks
    if target > spacing:
        volume = ndimage.gaussian_filter(volume, np.sqrt(target**2 - spacing**2) / 2.355 / spacing)
    zoom = spacing / target
    resampled = ndimage.zoom(volume, zoom, order=1)
    return resampled, [ndimage.zoom(m.astype(np.float32), zoom, order=1) > 0.5 for m in masks]


def histogram_features(
    volume: np.ndarray, brain: np.ndarray, csf_region: np.ndarray, spacing_mm: float, calibration_spacing_mm: float
) -> np.ndarray:
    """The model's features of one image: 36 histogram fractions, the noise level and the contrast.

    Parameters
    ----------
    volume : numpy.ndarray
        (X, Y, Z) skull-stripped T1w intensities.
    brain : numpy.ndarray
        Intracranial mask.
    csf_region : numpy.ndarray
        Voxels of pure CSF (the ventricles' core); with fewer than six, the darkest intensity class is used.
    spacing_mm, calibration_spacing_mm : float
        The image's voxel size and the calibration's.
    """
    volume, (brain, csf_region) = _on_grid(
        np.asarray(volume, np.float32), [brain, csf_region], spacing_mm, calibration_spacing_mm
    )
    corrected = correct_bias(volume, brain, calibration_spacing_mm)
    dark, grey, white = kmeans_1d(corrected[brain])
    csf = float(np.median(corrected[csf_region])) if csf_region.sum() > 5 else float(dark)
    white_matter = brain & (corrected > (grey + white) / 2.0) & ndimage.binary_erosion(brain, iterations=3)
    if white_matter.sum() < 6:
        white_matter = brain & (corrected > (grey + white) / 2.0)
    wm = float(np.median(corrected[white_matter]))
    span = max(wm - csf, 1e-6)
    x = (corrected[brain] - csf) / span
    histogram = np.histogram(np.clip(x, EDGES[0], EDGES[-1] - 1e-6), EDGES)[0] / max(x.size, 1)
    residual = corrected - ndimage.uniform_filter(corrected, 3)
    core = ndimage.binary_erosion(white_matter)
    noise = float(np.std(residual[core if core.sum() > 5 else white_matter])) / span
    return np.concatenate([histogram, [noise, csf / max(wm, 1e-6)]])


def brain_fraction(
    volume: np.ndarray,
    brain: np.ndarray,
    csf_region: np.ndarray,
    spacing_mm: float,
    calibration: Calibration | None = None,
) -> float:
    """Grey plus white matter over intracranial volume, from the fitted histogram model.

    Parameters are those of :func:`histogram_features`; ``calibration`` defaults to the shipped one.
    """
    calibration = calibration or load_calibration()
    features = histogram_features(volume, brain, csf_region, spacing_mm, calibration.spacing_mm)
    return float(np.clip(calibration.predict(features), 0.0, 1.0))
