"""Editing one scan many times, as the napari and Jupyter faces do: register once, invert once per
setting, regenerate for every new target.

An :class:`EditSession` holds an image (a file, a napari layer, an array and its affine) and a model. The
registration is computed at the first edit and kept; the inversion is kept per (source covariates,
strength, steps, precision), so moving only the target sliders costs the regeneration alone. Counts of
both are kept (``registrations``, ``inversions``) so a face, and its tests, can show what was reused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Unpack

import numpy as np

from brainsynth.model import LatentDiffusionModel
from brainsynth.sampling.loop import renumbered
from brainsynth.scans import editing
from brainsynth.scans.results import EditResult, Inversion
from brainsynth.scans.scan import Scan, scan_from_image


class EditSession:
    """One image edited with one model.

    Parameters
    ----------
    volume : numpy.ndarray
        The 3D image in its own units.
    affine : numpy.ndarray
        (4, 4) voxel-to-world map (RAS mm).
    model : LatentDiffusionModel
        The model that edits it.
    name : str
        What messages and provenance call the image.
    transform : {"rigid", "affine"}
        The registration.
    reference : str, Path or numpy.ndarray, optional
        A template of the model's space to register to (see :func:`brainsynth.load_scan`).
    """

    def __init__(
        self,
        volume: np.ndarray,
        affine: np.ndarray,
        model: LatentDiffusionModel,
        *,
        name: str = "image",
        transform: str = "rigid",
        reference: Any = None,
    ) -> None:
        self.volume = volume
        self.affine = np.asarray(affine, dtype=np.float64)
        self.model = model
        self.name = name
        self.transform = transform
        self.reference = reference
        self.registrations = 0
        self.inversions = 0
        self._scan: Scan | None = None
        self._inversions: dict[tuple, Inversion] = {}

    def scan(self, device: str = "auto") -> Scan:
        """The image registered into the model's space (computed once)."""
        if self._scan is None:
            self._scan = scan_from_image(
                self.volume,
                self.affine,
                self.model,
                name=self.name,
                transform=self.transform,
                reference=self.reference,
                device=device,
            )
            self.registrations += 1
        return self._scan

    @staticmethod
    def _key(source: Mapping[str, Any] | None, strength: float, steps: int | None, precision: str | None) -> tuple:
        return (tuple(sorted((source or {}).items())), float(strength), steps, precision)

    def has_inversion(
        self, source: Mapping[str, Any] | None, strength: float, steps: int | None, precision: str | None = None
    ) -> bool:
        """Whether an edit with these settings reuses a kept inversion."""
        return self._key(source, strength, steps, precision) in self._inversions

    def total_steps(
        self, source: Mapping[str, Any] | None, strength: float, steps: int | None, precision: str | None = None
    ) -> int:
        """The steps an edit with these settings reports: regeneration only, or inversion and round trip too."""
        _settings, count = editing._plan(self.model, editing.check_strength(strength), steps, "cpu", precision)
        return count if self.has_inversion(source, strength, steps, precision) else 3 * count

    def edit(self, targets: Sequence[Mapping[str, Any]], **options: Unpack[editing.EditOptions]) -> EditResult:
        """Edit towards each of ``targets`` (see :func:`brainsynth.scans.editing.edit`), reusing what is kept.

        Progress counts the inversion and round trip (when they run) and the regeneration as one run.
        """
        source, steps, precision = options.get("source"), options.get("steps"), options.get("precision")
        strength = editing.check_strength(options.get("strength", editing.EDIT_STRENGTH))
        device, extrapolate = options.get("device", "auto"), bool(options.get("extrapolate", False))
        callback = options.get("callback")
        key = self._key(source, strength, steps, precision)
        scan = self.scan(device)
        total = self.total_steps(source, strength, steps, precision)
        inversion = self._inversions.get(key)
        if inversion is None:
            inversion = editing.invert_scan(
                self.model,
                scan,
                source=source,
                steps=steps,
                strength=strength,
                device=device,
                precision=precision,
                extrapolate=extrapolate,
                callback=renumbered(callback, 0, total),
            )
            self._inversions[key] = inversion
            self.inversions += 1
        count = inversion.settings["inverted_steps"]
        return editing.edit(
            self.model,
            scan,
            list(targets),
            inversion=inversion,
            device=device,
            extrapolate=extrapolate,
            callback=renumbered(callback, total - count, total),
        )


def traversal_targets(name: str, start: float, stop: float, frames: int) -> list[dict[str, float]]:
    """``frames`` targets with covariate ``name`` evenly from ``start`` to ``stop`` (both included)."""
    return [{name: round(float(v), 4)} for v in np.linspace(start, stop, int(frames))]
