"""The result of sampling: volumes with their affine and everything needed to replay them."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from brainsynth.covariates import CovariateValue
from brainsynth.errors import InvalidParameterError, NonFiniteResultError
from brainsynth.files.nifti import check_dtype, check_output_path, is_nifti_path, save_nifti
from brainsynth.files.paths import check_output_name


@dataclass(frozen=True)
class SampleResult:
    """Generated brains: a batch of one or more volumes sharing a model, affine and settings.

    ``model.sample`` returns one item per batch element, ``model.traverse`` one per covariate value
    and ``model.interpolate`` one per frame. Index it (``result[i]``) for a single brain.

    Attributes
    ----------
    volumes : numpy.ndarray
        float32, shape (B, X, Y, Z), intensities about [0, 1], voxel order matching ``affine``.
    affine : numpy.ndarray
        (4, 4) voxel-to-world matrix, RAS mm.
    covariates : tuple of dict
        Per item, covariate values in real units (categorical ones by name).
    covariates_normalised : tuple of dict
        Per item, the conditioning vector by covariate name.
    seeds : tuple of int or None
        Per item, the seed of its initial noise (None for explicit noise).
    noise : tuple of dict
        Per item, how the initial noise was made (``{"kind": "seed", "seed": 3}``,
        ``{"kind": "slerp", "seed_a": 1, "seed_b": 2, "t": 0.5}``, ``{"kind": "explicit"}``).
    extrapolated : tuple of tuple of str
        Per item, covariates outside the training range.
    settings : dict
        Sampling settings shared by all items: steps, scheduler, eta, device, batch size.
    provenance : dict
        Model name and source, weight hashes, software versions, time taken, creation time.
    latents : numpy.ndarray
        The final latents, shape (B, C, X', Y', Z'), before unscaling and decoding.
    """

    volumes: np.ndarray
    affine: np.ndarray
    covariates: tuple[dict[str, CovariateValue], ...]
    covariates_normalised: tuple[dict[str, float], ...]
    seeds: tuple[int | None, ...]
    noise: tuple[dict[str, Any], ...]
    extrapolated: tuple[tuple[str, ...], ...]
    settings: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    latents: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.volumes.shape[0])

    def __getitem__(self, index: int) -> SampleResult:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index must be between {-len(self)} and {len(self) - 1} (got {index})")
        i = index % len(self)
        return replace(
            self,
            volumes=self.volumes[i : i + 1],
            covariates=(self.covariates[i],),
            covariates_normalised=(self.covariates_normalised[i],),
            seeds=(self.seeds[i],),
            noise=(self.noise[i],),
            extrapolated=(self.extrapolated[i],),
            latents=None if self.latents is None else self.latents[i : i + 1],
        )

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    @property
    def volume(self) -> np.ndarray:
        """The volume of a single-item result, shape (X, Y, Z)."""
        if len(self) != 1:
            raise InvalidParameterError(f"volume needs a result of one item (this one has {len(self)}); use result[i]")
        return self.volumes[0]

    @property
    def voxel_size(self) -> tuple[float, float, float]:
        """Voxel size in mm along each array axis."""
        sizes = np.linalg.norm(self.affine[:3, :3], axis=0)
        return (float(sizes[0]), float(sizes[1]), float(sizes[2]))

    def sidecar(self, index: int = 0) -> dict[str, Any]:
        """Provenance of item ``index`` as the JSON sidecar written beside its NIfTI file."""
        return {
            "generator": "brainsynth",
            "covariates": self.covariates[index],
            "covariates_normalised": self.covariates_normalised[index],
            "extrapolated": list(self.extrapolated[index]),
            "seed": self.seeds[index],
            "noise": self.noise[index],
            **self.settings,
            **self.provenance,
            "shape": list(self.volumes.shape[1:]),
            "voxel_size_mm": list(self.voxel_size),
            "affine": self.affine.tolist(),
        }

    def check_finite(self) -> None:
        """Refuse to write brains holding NaN or infinite voxels (a broken model or setting), naming them.

        Raises
        ------
        NonFiniteResultError
            Naming the items and how many voxels are not finite.
        """
        bad = {i: int((~np.isfinite(v)).sum()) for i, v in enumerate(self.volumes) if not np.isfinite(v).all()}
        if bad:
            items = ", ".join(f"item {i} ({n} voxels)" for i, n in bad.items())
            raise NonFiniteResultError(
                f"the sampled brains hold NaN or infinite values: {items}; nothing was written. "
                "The model's weights or its decoder produce them"
            )

    def output_paths(self, path: str | Path) -> list[Path]:
        """Where :meth:`save` writes each item (see :func:`output_paths`)."""
        return output_paths(path, len(self))

    def save_series(self, path: str | Path, *, dtype: str = "float32", overwrite: bool = False) -> Path:
        """Write all items as one 4D NIfTI (X, Y, Z, B), e.g. a traversal as a movie, with one sidecar.

        The sidecar holds the shared settings and, under ``frames``, each item's covariates, seed and
        noise.

        Returns
        -------
        Path
            The NIfTI file written.
        """
        first = self.sidecar(0)
        per_item = ("covariates", "covariates_normalised", "extrapolated", "seed", "noise")
        sidecar = {k: v for k, v in first.items() if k not in per_item}
        sidecar["frames"] = [{k: self.sidecar(i)[k] for k in per_item} for i in range(len(self))]
        sidecar["dtype"] = dtype
        self.check_finite()
        series = np.moveaxis(self.volumes, 0, -1)
        description = f"brainsynth {self.provenance.get('model', '')} {len(self)} frames"
        return save_nifti(
            series, self.affine, path, sidecar=sidecar, dtype=dtype, overwrite=overwrite, description=description
        )

    def save(self, path: str | Path, *, dtype: str = "float32", overwrite: bool = False) -> list[Path]:
        """Write each item as NIfTI with a JSON sidecar.

        Parameters
        ----------
        path : str or Path
            A ``.nii``/``.nii.gz`` file or a folder (see :meth:`output_paths`).
        dtype : {"float32", "int16", "uint8"}
            Stored data type (see :func:`~brainsynth.files.nifti.to_dtype`).
        overwrite : bool
            Replace existing files. Otherwise, if any target exists, nothing is written.

        Returns
        -------
        list of Path
            The NIfTI files written.

        Examples
        --------
        >>> result.save("brain.nii.gz")  # doctest: +SKIP
        [PosixPath('brain.nii.gz')]
        """
        check_dtype(dtype)
        targets = self.output_paths(path)
        folder = targets[0].parent
        self.check_finite()
        created = not is_nifti_path(path) and not folder.exists()
        if created:
            check_output_name(folder, "output")
            folder.mkdir()
        written = []
        try:
            for target in targets:
                check_output_path(target, overwrite=overwrite)
            for i, target in enumerate(targets):
                sidecar = {**self.sidecar(i), "dtype": dtype}
                description = f"brainsynth {self.provenance.get('model', '')} seed {self.seeds[i]}"
                written.append(
                    save_nifti(
                        self.volumes[i],
                        self.affine,
                        target,
                        sidecar=sidecar,
                        dtype=dtype,
                        overwrite=overwrite,
                        description=description,
                    )
                )
        except BaseException:
            if created and not written:  # a folder made for this save, left empty by its failure
                folder.rmdir()
            raise
        return written


def output_paths(path: str | Path, count: int) -> list[Path]:
    """Where ``count`` brains saved to ``path`` go.

    A ``.nii``/``.nii.gz`` path holds a single item as given; with several items it becomes
    ``stem_000.nii.gz``, ``stem_001.nii.gz``, ... Any other path is a folder that receives
    ``brain_000.nii.gz``, ...; it is created if its parent exists.
    """
    path = Path(path).expanduser()
    if is_nifti_path(path):
        if count == 1:
            return [path]
        suffix = ".nii.gz" if str(path).lower().endswith(".gz") else ".nii"
        stem = path.name[: -len(suffix)]
        return [path.with_name(f"{stem}_{i:03d}{suffix}") for i in range(count)]
    return [path / f"brain_{i:03d}.nii.gz" for i in range(count)]
