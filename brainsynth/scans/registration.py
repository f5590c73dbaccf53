"""Registering a scan to a model's space with SimpleITK, as one world-to-world matrix.

SimpleITK is ITK's Python face, the registration framework under ANTs and elastix. It installs as one
wheel with no Python dependencies (antspyx 0.6.3 pins numpy < 2.4 and scipy < 1.16, which would
downgrade the stack the rest of brainsynth runs on). The registration is multi-resolution (4, 2, 1
times shrunk, smoothed), maximises Mattes mutual information on a fixed random sample of voxels, and
starts from aligned centres of mass; the fixed image is the model's reference brain on the model's own
grid (2 mm for the demo model), which keeps it to seconds.

ITK works in LPS physical coordinates and its transforms map fixed points to moving points; the matrix
returned here maps the model's world (RAS mm) to the scan's world (RAS mm), so that
:func:`brainsynth.scans.resample.resample` takes a scan onto the model's grid and any model-space
volume back onto the scan's grid.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from brainsynth.errors import BrainsynthError, InvalidParameterError

#: Registration kinds.
TRANSFORMS = ("rigid", "affine")

_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class Registration:
    """How a scan was put into a model's space.

    Attributes
    ----------
    transform : str
        ``"rigid"`` or ``"affine"``.
    model_to_scan : numpy.ndarray
        (4, 4) map from the model's world to the scan's world (RAS mm).
    correlation : float
        Pearson correlation of the registered scan with the model's reference inside the reference's
        brain (the quality figure).
    seconds : float
        Time the registration took.
    """

    transform: str
    model_to_scan: np.ndarray
    correlation: float
    seconds: float

    def record(self) -> dict[str, Any]:
        """The registration as a result's provenance records it."""
        return {
            "transform": self.transform,
            "model_to_scan": np.round(self.model_to_scan, 6).tolist(),
            "correlation": round(self.correlation, 4),
            "seconds": round(self.seconds, 2),
        }


def check_transform(transform: str) -> str:
    """Return ``transform`` if it is one of :data:`TRANSFORMS`."""
    if transform not in TRANSFORMS:
        raise InvalidParameterError(f"transform must be one of {', '.join(TRANSFORMS)} (got {transform!r})")
    return transform


def _sitk():
    try:
        import SimpleITK
    except ImportError as exc:
        raise BrainsynthError("registering a scan needs SimpleITK: pip install 'brainsynth[scans]'") from exc
    return SimpleITK


def to_itk(volume: np.ndarray, affine: np.ndarray):
    """A float32 volume on a RAS affine as a SimpleITK image (LPS physical space)."""
    sitk = _sitk()
    lps = _LPS @ np.asarray(affine, dtype=np.float64)
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(volume, dtype=np.float32).transpose(2, 1, 0)))
    image.SetSpacing([float(v) for v in spacing])
    image.SetOrigin([float(v) for v in lps[:3, 3]])
    image.SetDirection([float(v) for v in (lps[:3, :3] / spacing).ravel()])
    return image


def _method(sitk, iterations: int):
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(0.25, seed=1)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0, minStep=1e-4, numberOfIterations=iterations, relaxationFactor=0.6
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([4, 2, 1])
    method.SetSmoothingSigmasPerLevel([2.0, 1.0, 0.0])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    return method


def register(
    scan: np.ndarray, scan_affine: np.ndarray, reference: np.ndarray, reference_affine: np.ndarray, transform: str
) -> tuple[np.ndarray, float]:
    """The map from the reference's world to the scan's world that best aligns them, and the seconds taken."""
    sitk = _sitk()
    check_transform(transform)
    started = time.perf_counter()
    fixed, moving = to_itk(reference, reference_affine), to_itk(scan, scan_affine)
    initial = sitk.CenteredTransformInitializer(
        fixed, moving, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS
    )
    method = _method(sitk, 200)
    method.SetInitialTransform(initial, inPlace=True)
    method.Execute(fixed, moving)
    found = initial
    if transform == "affine":
        affine = sitk.AffineTransform(3)
        affine.SetCenter(initial.GetCenter())
        affine.SetMatrix(initial.GetMatrix())
        affine.SetTranslation(initial.GetTranslation())
        method = _method(sitk, 200)
        method.SetInitialTransform(affine, inPlace=True)
        method.Execute(fixed, moving)
        found = affine
    matrix = np.asarray(found.GetMatrix(), dtype=np.float64).reshape(3, 3)
    centre = np.asarray(found.GetCenter(), dtype=np.float64)
    lps = np.eye(4)
    lps[:3, :3] = matrix
    lps[:3, 3] = np.asarray(found.GetTranslation(), dtype=np.float64) + centre - matrix @ centre
    return _LPS @ lps @ _LPS, time.perf_counter() - started
