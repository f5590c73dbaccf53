"""Loading a BIDS-like folder of T1w NIfTI files with ``participants.tsv`` for training.

Every image goes through MONAI transforms to the model grid: RAS orientation, the target spacing,
crop or pad to the grid shape, intensities scaled to [0, 1]. Results are cached in memory
(``CacheDataset``), so only the first pass reads NIfTI files. Everything is checked before training
starts, with errors that name the subject, the column or the file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from monai.transforms import (
    Compose,
    EnsureChannelFirstd,
    EnsureTyped,
    LoadImaged,
    Orientationd,
    ResizeWithPadOrCropd,
    ScaleIntensityRangePercentilesd,
    Spacingd,
)

from brainsynth.covariates import CovariateSpec, resolve_covariates
from brainsynth.errors import BrainsynthError, InvalidParameterError
from brainsynth.files.affines import affine_problem
from brainsynth.files.schema import shown
from brainsynth.files.tables import SAFE_ID, read_table
from brainsynth.loading.presets import COVARIATE_SETS

#: Largest ratio between the coarsest and finest voxel spacing accepted in one dataset.
MAX_SPACING_RATIO = 2.0


@dataclass(frozen=True)
class DataSettings:
    """Image grid the networks see, and which covariates are read from ``participants.tsv``.

    ``covariates`` names a set of :data:`~brainsynth.loading.presets.COVARIATE_SETS` (``"ukb"``), or
    lists a model's own covariates: each a :class:`~brainsynth.covariates.CovariateSpec` as a mapping
    (``name``, ``label``, ``unit``, ``low``, ``high``, ``default``, ``choices``, ``description``) with an
    optional ``column``, the participants.tsv column it is read from (default: its name).
    """

    spacing: float
    shape: tuple[int, int, int]
    covariates: str | tuple[dict[str, Any], ...] = "ukb"

    @property
    def covariate_specs(self) -> tuple[CovariateSpec, ...]:
        if isinstance(self.covariates, str):
            return COVARIATE_SETS[self.covariates][0]
        return tuple(own_covariate_spec(item) for item in self.covariates)

    @property
    def columns(self) -> dict[str, str]:
        if isinstance(self.covariates, str):
            return COVARIATE_SETS[self.covariates][1]
        return {item["name"]: item.get("column", item["name"]) for item in self.covariates}


def own_covariate_spec(item: dict[str, Any]) -> CovariateSpec:
    """A covariate of a training configuration's own list (its ``column`` aside) as a spec."""
    return CovariateSpec.from_dict({key: value for key, value in item.items() if key != "column"})


class DataError(BrainsynthError, ValueError):
    """A training data folder cannot be used as it is."""


@dataclass(frozen=True)
class Subject:
    """One training subject: its image file and normalised covariates."""

    participant_id: str
    image: Path
    covariates: tuple[float, ...]


def _read_participants(folder: Path, settings: DataSettings) -> list[tuple[int, dict[str, str]]]:
    path = folder / "participants.tsv"
    if not path.is_file():
        raise DataError(f"{folder} has no participants.tsv (participant_id and covariate columns)")
    table = read_table(path, "participants table", error=DataError)
    needed = ["participant_id", *settings.columns.values()]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise DataError(
            f"{path} lacks column(s) {', '.join(missing)}; it has {', '.join(map(repr, table.columns)) or 'none'}"
        )
    if not table.rows:
        raise DataError(f"{path} lists no participants")
    seen: dict[str, int] = {}
    for line, row in zip(table.lines, table.rows, strict=True):
        participant = row["participant_id"]
        if not SAFE_ID.fullmatch(participant):
            raise DataError(
                f"{path} line {line}: participant_id must be a plain name of letters, digits, '.', '_' and '-' "
                f"(at most 128, such as sub-001) (got {shown(participant)})"
            )
        if participant in seen:
            raise DataError(f"{path} lines {seen[participant]} and {line} both list participant {participant}")
        seen[participant] = line
    return list(zip(table.lines, table.rows, strict=True))


def _image_path(folder: Path, participant: str) -> Path:
    candidates = sorted((folder / participant / "anat").glob(f"{participant}*_T1w.nii*"))
    if not candidates:
        raise DataError(f"participant {participant} in participants.tsv has no image {participant}/anat/*_T1w.nii.gz")
    return candidates[0]


def _row_covariates(row: dict[str, str], settings: DataSettings, line: int) -> tuple[float, ...]:
    values: dict[str, object] = {}
    for name, column in settings.columns.items():
        text = (row.get(column) or "").strip()
        spec = next(s for s in settings.covariate_specs if s.name == name)
        if spec.categorical:
            values[name] = text
            continue
        try:
            number = float(text)
        except ValueError:
            raise DataError(f"participants.tsv line {line}, column {column}: {text!r} is not a number") from None
        if not math.isfinite(number):
            raise DataError(f"participants.tsv line {line}, column {column}: value is {text!r}, not a finite number")
        values[name] = number
    try:
        return resolve_covariates(settings.covariate_specs, values, extrapolate=True).normalised
    except InvalidParameterError as exc:
        raise DataError(f"participants.tsv line {line}: {exc}") from exc


def _check_image(path: Path) -> tuple[float, ...]:
    try:
        image = nib.load(str(path))
        shape = image.shape
        zooms = image.header.get_zooms()[:3]
    except Exception as exc:  # nibabel raises many types for damaged files
        raise DataError(f"{path} is not a readable NIfTI image: {exc}") from exc
    if len(shape) != 3 and not (len(shape) == 4 and shape[3] == 1):
        raise DataError(f"{path} is not a 3D image (shape {shape})")
    if min(shape[:3]) < 1:
        raise DataError(f"{path} has no voxels (shape {shape})")
    affine = image.affine
    problem = "it is missing" if affine is None else affine_problem(affine)
    if problem is not None:
        raise DataError(
            f"{path} has no usable voxel-to-world affine in its header's sform and qform ({problem}); fix the "
            "header, for instance by resetting the sform from the qform"
        )
    if not all(math.isfinite(z) and z > 0 for z in zooms):
        raise DataError(f"{path} has voxel sizes {tuple(zooms)}; they must be positive numbers")
    return tuple(float(z) for z in zooms)


def find_subjects(folder: str | Path, settings: DataSettings) -> list[Subject]:
    """List a data folder's subjects with their covariates, checking everything first.

    Raises
    ------
    DataError
        For a missing or empty folder, a missing or incomplete ``participants.tsv``, NaN or
        non-numeric covariates, participants without images, images that are not 3D or cannot be
        read, or spacings that differ by more than a factor of :data:`MAX_SPACING_RATIO`.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError(f"data folder {folder} does not exist")
    if not any(folder.iterdir()):
        raise DataError(f"data folder {folder} is empty")
    rows = _read_participants(folder, settings)
    subjects = [
        Subject(row["participant_id"], _image_path(folder, row["participant_id"]), _row_covariates(row, settings, line))
        for line, row in rows
    ]
    spacings = {s.participant_id: max(_check_image(s.image)) for s in subjects}
    finest, coarsest = min(spacings, key=spacings.get), max(spacings, key=spacings.get)
    if spacings[coarsest] > MAX_SPACING_RATIO * spacings[finest]:
        raise DataError(
            f"images have very different voxel sizes: {coarsest} has {spacings[coarsest]:g} mm, {finest} "
            f"{spacings[finest]:g} mm (more than {MAX_SPACING_RATIO:g} times apart); resample them first"
        )
    return subjects


def image_transforms(settings: DataSettings) -> Compose:
    """MONAI transforms from a NIfTI path to a (1, X, Y, Z) float32 tensor on the model grid."""
    return Compose(
        [
            LoadImaged(keys="image", image_only=True),
            EnsureChannelFirstd(keys="image"),
            Orientationd(keys="image", axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S"))),
            Spacingd(keys="image", pixdim=(settings.spacing,) * 3, mode="bilinear"),
            ResizeWithPadOrCropd(keys="image", spatial_size=settings.shape),
            ScaleIntensityRangePercentilesd(keys="image", lower=0.0, upper=99.5, b_min=0.0, b_max=1.0, clip=True),
            EnsureTyped(keys="image", dtype=torch.float32, track_meta=False),
        ]
    )


def _load(transform: Compose, path: Path) -> torch.Tensor:
    """One image on the model grid, or a :class:`DataError` naming its file."""
    try:
        image = torch.as_tensor(transform({"image": str(path)})["image"])
    except Exception as exc:  # a truncated gzip or damaged data surfaces inside MONAI's loader as any error
        cause = exc
        while cause.__cause__ is not None and "applying transform" in str(cause):
            cause = cause.__cause__  # MONAI wraps the reader's error; name that one
        raise DataError(f"{path} cannot be read as an image ({type(cause).__name__}: {str(cause)[:160]})") from exc
    if not torch.isfinite(image).all():
        bad = int((~torch.isfinite(image)).sum())
        raise DataError(
            f"{path} holds {bad} voxels that are not finite numbers (NaN or infinite, e.g. from a huge scl_slope) "
            "after loading; fix or leave out this image"
        )
    return image


class TrainingImages:
    """The training images as tensors on the model grid, read once and kept in memory.

    Parameters
    ----------
    folder : str or Path
        BIDS-like data folder.
    settings : DataSettings
        Grid and covariates.
    """

    def __init__(self, folder: str | Path, settings: DataSettings) -> None:
        self.subjects = find_subjects(folder, settings)
        transform = image_transforms(settings)
        self._images = [_load(transform, subject.image) for subject in self.subjects]
        self.covariates = torch.tensor([s.covariates for s in self.subjects], dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.subjects)

    def images(self, indices: torch.Tensor) -> torch.Tensor:
        """Stack the images at ``indices`` into (B, 1, X, Y, Z)."""
        return torch.stack([self._images[int(i)] for i in indices])

    def grid_affine(self, settings: DataSettings) -> np.ndarray:
        """RAS affine of the model grid: the data's spacing, centred where the first image is centred."""
        image = nib.as_closest_canonical(nib.load(str(self.subjects[0].image)))
        centre = image.affine[:3, :3] @ ((np.asarray(image.shape[:3]) - 1) / 2.0) + image.affine[:3, 3]
        affine = np.diag([settings.spacing] * 3 + [1.0])
        affine[:3, 3] = centre - (np.asarray(settings.shape) - 1) / 2.0 * settings.spacing
        return affine
