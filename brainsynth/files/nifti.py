"""NIfTI files with JSON sidecars, written atomically and never silently overwritten."""

from __future__ import annotations

import gzip
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from brainsynth.errors import InvalidParameterError, OutputExistsError
from brainsynth.files.affines import affine_problem
from brainsynth.files.atomic import atomic_write_files, json_bytes
from brainsynth.files.paths import check_output_name
from brainsynth.files.schema import read_json

NIFTI_SUFFIXES = (".nii.gz", ".nii")
OUTPUT_DTYPES = ("float32", "int16", "uint8")
#: ``int16`` stores intensity x 32767 with this scale slope in the header, so it reads back in [0, 1].
INT16_SLOPE = 1.0 / 32767.0


def is_nifti_path(path: str | Path) -> bool:
    """Whether ``path`` ends in ``.nii`` or ``.nii.gz``."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def sidecar_path(path: str | Path) -> Path:
    """Return the JSON sidecar of a NIfTI path (``brain.nii.gz`` -> ``brain.json``, as in BIDS)."""
    path = Path(path)
    name = path.name
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return path.with_name(name[: -len(suffix)] + ".json")
    return path.with_name(name + ".json")


def check_output_path(path: str | Path, *, overwrite: bool = False, name: str = "output") -> Path:
    """Check that a NIfTI output (and its sidecar) can be written, before any compute.

    Raises
    ------
    InvalidParameterError
        If the suffix is not ``.nii`` or ``.nii.gz`` or the folder does not exist.
    OutputExistsError
        If the file or its sidecar exists and ``overwrite`` is False.
    """
    path = check_output_name(path, name)
    if not is_nifti_path(path):
        raise InvalidParameterError(f"{name} must end in .nii or .nii.gz (got {str(path)!r})")
    for target in (path, sidecar_path(path)):
        if target.is_dir():
            raise InvalidParameterError(f"{name} {str(target)!r} is a folder; give a file name (or another folder)")
    if not os.access(path.parent, os.W_OK):
        raise InvalidParameterError(f"{name} folder {str(path.parent)!r} is not writable")
    if not overwrite:
        for target in (path, sidecar_path(path)):
            if target.exists():
                raise OutputExistsError(f"{target} exists; pass overwrite=True (--overwrite) to replace it")
    return path


def check_dtype(dtype: object) -> str:
    """``dtype`` as a stored data type, or an error naming the choices."""
    if dtype not in OUTPUT_DTYPES:
        hint = " (NIfTI-1 has no float16; int16 keeps 16 bits)" if dtype == "float16" else ""
        raise InvalidParameterError(f"dtype must be one of {', '.join(OUTPUT_DTYPES)}{hint} (got {dtype!r})")
    return dtype


def to_dtype(volume: np.ndarray, dtype: str) -> np.ndarray:
    """Convert a [0, 1] intensity volume to the output data type.

    ``float32`` keeps values as generated; ``int16`` clips to [0, 1] and stores 0-32767 (the header's
    scale slope, :data:`INT16_SLOPE`, brings it back to [0, 1] on reading); ``uint8`` clips to [0, 1]
    and stores 0-255 (read back as 0-255).
    """
    check_dtype(dtype)
    if dtype == "uint8":
        return np.round(np.clip(volume, 0.0, 1.0) * 255.0).astype(np.uint8)
    if dtype == "int16":
        return np.round(np.clip(volume, 0.0, 1.0) / INT16_SLOPE).astype(np.int16)
    return np.asarray(volume, dtype=np.float32)


def nifti_bytes(volume: np.ndarray, affine: np.ndarray, *, gzipped: bool, description: str = "") -> bytes:
    """Serialise a volume as NIfTI-1 bytes with ``affine`` as both sform and qform (mm units).

    Gzip output has a zero timestamp, so identical volumes give identical files.
    """
    image = nib.Nifti1Image(volume, np.asarray(affine, dtype=np.float64))
    if volume.dtype == np.int16:
        image.header.set_slope_inter(INT16_SLOPE, 0.0)
    image.header.set_xyzt_units("mm")
    image.set_sform(image.affine, code=2)
    image.set_qform(image.affine, code=2)
    image.header["descrip"] = description.encode("ascii", "replace")[:79]
    raw = image.to_bytes()
    return gzip.compress(raw, compresslevel=6, mtime=0) if gzipped else raw


def save_nifti(
    volume: np.ndarray,
    affine: np.ndarray,
    path: str | Path,
    *,
    sidecar: Mapping[str, Any] | None = None,
    dtype: str = "float32",
    overwrite: bool = False,
    description: str = "",
) -> Path:
    """Write a 3D or 4D volume as NIfTI, with an optional JSON sidecar, atomically.

    Parameters
    ----------
    volume : numpy.ndarray
        Shape (X, Y, Z) or (X, Y, Z, T), voxel order matching ``affine``.
    affine : numpy.ndarray
        (4, 4) voxel-to-world matrix, mm.
    path : str or Path
        Output ``.nii`` or ``.nii.gz`` file; its folder must exist.
    sidecar : mapping, optional
        Written as JSON beside the image (``brain.json`` for ``brain.nii.gz``).
    dtype : {"float32", "int16", "uint8"}
        Stored data type (see :func:`to_dtype`).
    overwrite : bool
        Replace existing files; otherwise an existing file is an error.
    description : str
        Short text for the NIfTI header's ``descrip`` field.

    Returns
    -------
    Path
        The image path.
    """
    path = check_output_path(path, overwrite=overwrite)
    data = nifti_bytes(
        to_dtype(volume, dtype), affine, gzipped=str(path).lower().endswith(".gz"), description=description
    )
    files = [(path, data)]
    if sidecar is not None:
        files.append((sidecar_path(path), json_bytes(sidecar)))
    atomic_write_files(files)  # the image and its sidecar appear together or not at all
    return path


def load_nifti(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any] | None]:
    """Read a NIfTI file and its sidecar, if any.

    A sidecar that is not a readable JSON object, and an affine that is not finite or not invertible,
    do not keep the image from opening: each gives a warning, and the image comes without the sidecar
    or with a diagonal affine of its voxel sizes.

    Returns
    -------
    volume : numpy.ndarray
        float32 data with scaling applied.
    affine : numpy.ndarray
        (4, 4) voxel-to-world matrix, finite and invertible.
    sidecar : dict or None
        The JSON sidecar's content.

    Raises
    ------
    InvalidParameterError
        If the file is missing or not a readable NIfTI image (a truncated gzip, say).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise InvalidParameterError(
            f"NIfTI file {str(path)!r} does not exist"
            if not path.exists()
            else f"NIfTI path {str(path)!r} is not a file"
        )
    try:
        image = nib.load(str(path))
        volume = np.asarray(image.get_fdata(dtype=np.float32))
    except Exception as exc:  # nibabel raises many types for damaged or foreign files
        raise InvalidParameterError(
            f"{path} is not a readable NIfTI image ({type(exc).__name__}: {str(exc)[:160]})"
        ) from exc
    return volume, usable_affine(image, path), _read_sidecar(sidecar_path(path))


def usable_affine(image: Any, path: Path) -> np.ndarray:
    """The image's affine, or (with a warning) a diagonal one of its voxel sizes where it is unusable."""
    affine = np.asarray(image.affine, dtype=np.float64)
    if affine_problem(affine) is None:
        return affine
    zooms = [float(z) if np.isfinite(z) and z > 0 else 1.0 for z in image.header.get_zooms()[:3]]
    zooms += [1.0] * (3 - len(zooms))
    warnings.warn(
        f"{path.name} has an affine that is not finite or not invertible; it is shown with voxel sizes "
        f"{' x '.join(f'{z:g}' for z in zooms)} mm and no orientation",
        stacklevel=3,
    )
    return np.diag([*zooms, 1.0])


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return read_json(path, "JSON sidecar", error=InvalidParameterError)
    except InvalidParameterError as exc:
        warnings.warn(f"{exc}; the image is opened without it", stacklevel=4)
        return None
