"""What reconstructing, inverting and editing a scan give back, and how an edit is written to disk."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from brainsynth.files.atomic import atomic_write_files, json_bytes
from brainsynth.files.nifti import check_output_path, nifti_bytes, sidecar_path


def difference_path(path: Path) -> Path:
    """Where the difference of an edit saved at ``path`` goes: ``OUT_diff.nii.gz`` beside ``OUT.nii.gz``."""
    suffix = ".nii.gz" if path.name.endswith(".nii.gz") else ".nii"
    return path.with_name(path.name[: -len(suffix)] + "_diff" + suffix)


@dataclass(frozen=True)
class Reconstruction:
    """The autoencoder's view of a scan: the decoded volume, its error map, PSNR (dB) and SSIM."""

    volume: np.ndarray
    error: np.ndarray
    psnr_db: float
    ssim: float


@dataclass(frozen=True)
class EditResult:
    """Edits of one scan, one per target, sharing one inversion.

    Attributes
    ----------
    volumes : numpy.ndarray
        (B, X, Y, Z) the edited brains on the model's grid.
    differences : numpy.ndarray
        (B, X, Y, Z) each edit minus the round trip, on the model's grid (signed).
    on_scan : numpy.ndarray
        (B, ...) the edited scans on the scan's own grid, in its units.
    differences_on_scan : numpy.ndarray
        (B, ...) the differences on the scan's own grid, in its units.
    roundtrip : numpy.ndarray
        The scan regenerated under its own covariates (model grid).
    roundtrip_psnr_db : float
        PSNR of the round trip against the autoencoder's reconstruction of the scan: what inverting and
        regenerating lose (1.0 clipped, model grid).
    reconstruction_psnr_db : float
        PSNR of the autoencoder's reconstruction against the scan: what the autoencoder loses.
    source : dict
        The scan's own covariates (``source_measured`` names those measured, not given).
    targets : tuple of dict
        The covariates of each edit.
    measured : tuple of dict
        What the segmenter measures in each edit, and in the round trip (``measured_source``).
    settings, provenance : dict
        How the edit ran, and from what.
    """

    volumes: np.ndarray
    differences: np.ndarray
    on_scan: np.ndarray
    differences_on_scan: np.ndarray
    roundtrip: np.ndarray
    roundtrip_psnr_db: float
    reconstruction_psnr_db: float
    source: dict[str, Any]
    source_measured: tuple[str, ...]
    targets: tuple[dict[str, Any], ...]
    measured: tuple[dict[str, float], ...] = ()
    measured_source: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.targets)

    def save(self, path: str | Path, *, overwrite: bool = False) -> list[Path]:
        """Write the edited scan on its own grid and affine (one volume, or a 4D series for several edits,
        edits last), the signed difference beside it (``_diff``) and the JSON sidecar, all or none.

        Returns the paths written: the edit, the difference, the sidecar.
        """
        path = check_output_path(path, overwrite=overwrite)
        diff = difference_path(path)
        check_output_path(diff, overwrite=overwrite, name="difference output")
        gzipped = path.name.endswith(".gz")
        single = len(self) == 1
        edited = self.on_scan[0] if single else np.moveaxis(self.on_scan, 0, -1)
        change = self.differences_on_scan[0] if single else np.moveaxis(self.differences_on_scan, 0, -1)
        affine = np.asarray(self.settings["scan"]["affine"], dtype=np.float64)
        sidecar = {**self.sidecar(0), "covariates": list(self.targets), "measured": list(self.measured)}
        sidecar["difference_file"] = diff.name
        atomic_write_files(
            [
                (path, nifti_bytes(edited, affine, gzipped=gzipped, description="brainsynth edit")),
                (diff, nifti_bytes(change, affine, gzipped=gzipped, description="brainsynth edit difference")),
                (sidecar_path(path), json_bytes(sidecar)),
            ]
        )
        return [path, diff, sidecar_path(path)]

    def sidecar(self, index: int = 0) -> dict[str, Any]:
        """The JSON sidecar of edit ``index``."""
        return {
            "kind": "edit",
            "source_covariates": self.source,
            "source_measured": list(self.source_measured),
            "covariates": self.targets[index],
            "measured": self.measured[index] if self.measured else {},
            "measured_source": self.measured_source,
            "roundtrip_psnr_db": round(self.roundtrip_psnr_db, 3),
            "reconstruction_psnr_db": round(self.reconstruction_psnr_db, 3),
            "settings": self.settings,
            "provenance": self.provenance,
        }


@dataclass(frozen=True)
class Inversion:
    """A scan run up to noise under its own covariates, and how well that noise gives it back.

    Attributes
    ----------
    noise : torch.Tensor
        (1, C, X', Y', Z') the latent at the top of the inverted steps (at strength 1, the initial noise
        ``x_T``: ``model.sample(noise=inversion.noise[0], covariates=inversion.source, steps=...)``
        regenerates the scan).
    source : dict
        The covariates it was inverted under.
    roundtrip : numpy.ndarray
        The scan regenerated from ``noise`` under ``source``.
    roundtrip_psnr_db, reconstruction_psnr_db : float
        PSNR of the round trip against the autoencoder's reconstruction, and of that against the scan.
    settings : dict
        Steps, timesteps, precision, device.
    """

    noise: torch.Tensor
    source: dict[str, Any]
    roundtrip: np.ndarray
    roundtrip_psnr_db: float
    reconstruction_psnr_db: float
    settings: dict[str, Any]
