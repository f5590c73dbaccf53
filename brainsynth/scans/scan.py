"""``load_scan``: a subject's T1w NIfTI registered, resampled and normalised into a model's space.

1. read and check the image (3D, finite, not constant);
2. compare its kind with the model's (whole head or skull-stripped brain: :mod:`brainsynth.scans.kind`);
3. register it to the model's reference brain (rigid by default; :mod:`brainsynth.scans.registration`);
4. check that it covers the model's field of view and that the registration worked (correlation with
   the reference; below :data:`MIN_CORRELATION` the scan is refused, with a figure of the overlap);
5. resample it onto the model's grid and scale its intensities as the model's training data were
   (0 at the minimum, 1 at the 99.5th percentile, clipped), keeping what maps it back.

The model's reference is a brain it generates itself at its default covariates (seed 0), so any
model, the published one or one trained on other data, is registered to in its own space. A template
of the model's space can be given instead (``reference=``): the template its training data were
registered to, or any image of the model's kind already in its space (needed for a model with random
weights, whose own brains are noise).
"""

from __future__ import annotations

import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict, Unpack

import numpy as np

from brainsynth.errors import InvalidParameterError
from brainsynth.files.affines import affine_problem
from brainsynth.files.nifti import load_nifti
from brainsynth.model import LatentDiffusionModel
from brainsynth.scans.kind import kind_problem, tissue_ml
from brainsynth.scans.registration import Registration, check_transform, register
from brainsynth.scans.resample import coverage, resample

#: Below this correlation with the model's reference the registration is taken to have failed.
MIN_CORRELATION = 0.4
#: The share of the reference brain the registered scan must cover.
MIN_COVERAGE = 0.95
#: The percentile that becomes intensity 1 (the training data's scaling).
UPPER_PERCENTILE = 99.5


class RegistrationOptions(TypedDict, total=False):
    """How a scan is brought into a model's space (see :func:`load_scan`)."""

    transform: str
    reference: str | Path | np.ndarray | None
    device: str


class RegistrationError(InvalidParameterError):
    """A scan that registration could not bring into the model's space; ``figure`` shows the overlap."""

    def __init__(self, message: str, figure: Path) -> None:
        super().__init__(message)
        self.figure = figure


_REFERENCES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


#: How the provenance names the model's own reference.
OWN_REFERENCE = "the model's sample at its default covariates, seed 0"


def reference_brain(model: LatentDiffusionModel, *, device: str = "auto") -> np.ndarray:
    """The model's own brain at its default covariates, seed 0 (cached per model), on its grid."""
    if model not in _REFERENCES:
        _REFERENCES[model] = model.sample(seed=0, device=device).volume
    return _REFERENCES[model]


def _given_reference(reference: str | Path | np.ndarray, model: LatentDiffusionModel) -> tuple[np.ndarray, str]:
    """A template given as a NIfTI in the model's world (any grid) or an array on the model's grid."""
    config = model.config
    if isinstance(reference, np.ndarray):
        if reference.shape != tuple(config.image_shape):
            raise InvalidParameterError(
                f"reference must be a NIfTI path or an array on the model's grid {tuple(config.image_shape)} "
                f"(got an array of shape {reference.shape})"
            )
        volume, name = np.asarray(reference, dtype=np.float32), "an array on the model's grid"
    elif isinstance(reference, (str, Path)):
        original, affine = _read(Path(reference).expanduser(), what="reference")
        volume, name = resample(original, affine, config.image_shape, config.affine_array), str(reference)
    else:
        raise InvalidParameterError(
            f"reference must be a NIfTI path or an array on the model's grid (got {type(reference).__name__})"
        )
    if not np.isfinite(volume).all() or float(volume.max()) <= float(volume.min()):
        raise InvalidParameterError(
            f"reference {name} is empty or not finite on the model's grid: is it in the model's space "
            f"(world coordinates of the model's affine)?"
        )
    return volume, name


@dataclass(frozen=True)
class Scan:
    """A subject's scan in a model's space, and the way back onto its own grid.

    Attributes
    ----------
    volume : numpy.ndarray
        The scan on the model's grid, scaled as the model's training data (float32, about [0, 1]).
    affine : numpy.ndarray
        The model's affine.
    path : str
        The file it was read from.
    original : numpy.ndarray
        The scan as read, on its own grid, in its own units.
    original_affine : numpy.ndarray
        Its own affine.
    intensity_range : tuple of float
        The intensities of the scan that became 0 and 1.
    registration : Registration
        The transform, its quality and its time.
    reference : str
        What the scan was registered to (the model's own sample, or the template given).
    """

    volume: np.ndarray
    affine: np.ndarray
    path: str
    original: np.ndarray
    original_affine: np.ndarray
    intensity_range: tuple[float, float]
    registration: Registration
    reference: str = OWN_REFERENCE

    @classmethod
    def on_model_grid(cls, volume: np.ndarray, model: LatentDiffusionModel, *, path: str = "") -> Scan:
        """A volume already on the model's grid and scale (a cohort image, say), as a scan of itself."""
        volume = np.asarray(volume, dtype=np.float32)
        affine = model.config.affine_array
        if volume.shape != tuple(model.config.image_shape):
            raise InvalidParameterError(
                f"volume must be on the model's grid {tuple(model.config.image_shape)} (got {volume.shape})"
            )
        registration = Registration("rigid", np.eye(4), 1.0, 0.0)
        return cls(volume, affine, path, volume, affine, (0.0, 1.0), registration, "none: already on the model's grid")

    def to_scan_grid(self, volume: np.ndarray) -> np.ndarray:
        """A volume on the model's grid mapped onto the scan's own grid (0 outside the model's field of view)."""
        to_model = np.linalg.inv(self.registration.model_to_scan)
        return resample(volume, self.affine, self.original.shape, self.original_affine, to_model)

    def record(self) -> dict[str, Any]:
        """Where the scan came from and how it was brought into the model's space, for provenance."""
        low, high = self.intensity_range
        return {
            "path": self.path,
            "shape": list(self.original.shape),
            "affine": np.round(self.original_affine, 6).tolist(),
            "intensity_range": [low, high],
            "registration": self.registration.record(),
            "reference": self.reference,
        }


def _check_image(volume: np.ndarray, name: object, what: str = "scan") -> np.ndarray:
    volume = np.asarray(volume)
    if volume.ndim == 4 and volume.shape[3] == 1:
        volume = volume[..., 0]
    if volume.ndim != 3:
        raise InvalidParameterError(f"{what} {name} must be a 3D image (got shape {volume.shape})")
    if min(volume.shape) < 8:
        raise InvalidParameterError(f"{what} {name} is too small to register (shape {volume.shape}, 8 voxels at least)")
    if not np.isfinite(volume).all():
        raise InvalidParameterError(f"{what} {name} holds {int((~np.isfinite(volume)).sum())} NaN or infinite voxels")
    if float(volume.max()) <= float(volume.min()):
        constant = float(volume.min())
        raise InvalidParameterError(f"{what} {name} is constant ({constant:g} everywhere): there is no image")
    return volume.astype(np.float32, copy=False)


def _read(path: str | Path, what: str = "scan") -> tuple[np.ndarray, np.ndarray]:
    volume, affine, _ = load_nifti(path)
    return _check_image(volume, path, what), affine


def _correlation(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    x, y = a[mask].astype(np.float64), b[mask].astype(np.float64)
    if x.std() == 0 or y.std() == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def _refuse_with_figure(message: str, path: str | Path, volumes: list[np.ndarray], affine: np.ndarray) -> None:
    from brainsynth.figures import save_orthogonal_slices

    figure = (
        Path(tempfile.mkdtemp(prefix="brainsynth-registration-"))
        / f"{Path(str(path)).name.split('.')[0] or 'scan'}.png"
    )
    save_orthogonal_slices(volumes, [affine] * len(volumes), figure, titles=["model's reference", "scan"], columns=2)
    raise RegistrationError(f"{message}; see {figure}", figure)


def load_scan(
    path: str | Path,
    model: LatentDiffusionModel,
    *,
    transform: str = "rigid",
    reference: str | Path | np.ndarray | None = None,
    device: str = "auto",
) -> Scan:
    """Read a T1w scan and bring it into ``model``'s space (see the module's steps).

    Parameters
    ----------
    path : str or Path
        A NIfTI file in any orientation and voxel size.
    model : LatentDiffusionModel
        The model whose space, kind (head or brain) and intensity scale the scan is brought to.
    transform : {"rigid", "affine"}
        Registration kind: rigid (the published model's preprocessing) or affine (also scales and shears).
    reference : str, Path or numpy.ndarray, optional
        What the scan is registered to: a NIfTI in the model's world (resampled onto its grid by its
        own affine) or an array on the model's grid. Default: the model's own brain at its default
        covariates, seed 0 (sampled once per model).
    device : str
        Where the model's own reference is sampled, when it is needed (default: the fastest available).

    Returns
    -------
    Scan

    Raises
    ------
    InvalidParameterError
        For a file that is not a 3D NIfTI, an image that is constant or not finite, a scan of the other
        kind (head or brain), a field of view that does not cover the model's, or a failed registration
        (naming the figure of the overlap).
    BrainsynthError
        When SimpleITK is not installed.
    """
    check_transform(transform)
    given = None if reference is None else _given_reference(reference, model)
    path = Path(path).expanduser()
    original, original_affine = _read(path)
    return _into_model_space(original, original_affine, path, model, transform, given, device)


def scan_from_image(
    volume: np.ndarray,
    affine: np.ndarray,
    model: LatentDiffusionModel,
    *,
    name: str = "image",
    **options: Unpack[RegistrationOptions],
) -> Scan:
    """An image already in memory (a napari layer, say) brought into ``model``'s space like :func:`load_scan`.

    Parameters
    ----------
    volume : numpy.ndarray
        The 3D image, in its own units.
    affine : numpy.ndarray
        (4, 4) voxel-to-world map (RAS mm) of ``volume``.
    model : LatentDiffusionModel
        The model whose space the image is brought to.
    name : str
        What the messages and the provenance call the image (its layer's name, its file).
    **options
        ``transform``, ``reference`` and ``device``, as for :func:`load_scan`.

    Returns
    -------
    Scan
    """
    transform = check_transform(options.get("transform", "rigid"))
    reference, device = options.get("reference"), options.get("device", "auto")
    problem = affine_problem(affine)
    if problem is not None:
        raise InvalidParameterError(f"affine of {name} must be a finite, invertible (4, 4) matrix: {problem}")
    given = None if reference is None else _given_reference(reference, model)
    original = _check_image(volume, name)
    return _into_model_space(original, np.asarray(affine, dtype=np.float64), name, model, transform, given, device)


def _into_model_space(original, original_affine, path, model, transform, given, device) -> Scan:
    """Steps 2 to 5 of the module."""
    config = model.config
    reference, reference_name = given or (reference_brain(model, device=device), OWN_REFERENCE)
    problem = kind_problem(tissue_ml(original, original_affine), tissue_ml(reference, config.affine_array))
    if problem is not None:
        raise InvalidParameterError(f"scan {path}: {problem}")
    model_to_scan, seconds = register(original, original_affine, reference, config.affine_array, transform)
    brain = reference > 0.1 * float(np.percentile(reference, UPPER_PERCENTILE))
    covered = coverage(brain, config.affine_array, original.shape, original_affine, model_to_scan)
    moved = resample(original, original_affine, config.image_shape, config.affine_array, model_to_scan)
    low, high = float(original.min()), float(np.percentile(moved[moved > original.min()], UPPER_PERCENTILE))
    volume = np.clip((moved - low) / max(high - low, 1e-12), 0.0, 1.0).astype(np.float32)
    volume[
        resample(np.ones_like(original), original_affine, volume.shape, config.affine_array, model_to_scan) < 0.5
    ] = 0
    if covered < MIN_COVERAGE:
        _refuse_with_figure(
            f"scan {path} covers {covered:.0%} of the model's brain after registration ({MIN_COVERAGE:.0%} needed): "
            "its field of view is too small",
            path,
            [reference, volume],
            config.affine_array,
        )
    correlation = _correlation(reference, volume, brain)
    if correlation < MIN_CORRELATION:
        _refuse_with_figure(
            f"registration of scan {path} failed: its correlation with the model's reference is {correlation:.2f} "
            f"(at least {MIN_CORRELATION} expected)",
            path,
            [reference, volume],
            config.affine_array,
        )
    return Scan(
        volume=volume,
        affine=config.affine_array,
        path=str(path),
        original=original,
        original_affine=original_affine,
        intensity_range=(low, high),
        registration=Registration(transform, model_to_scan, correlation, seconds),
        reference=reference_name,
    )
