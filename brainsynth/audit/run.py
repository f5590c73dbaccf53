"""The audit's steps: check the request, index the training images, calibrate, search every sample."""

from __future__ import annotations

import csv
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from brainsynth.audit.features import CRITERIA, LatentSpace, PixelSpace, latent_of
from brainsynth.audit.images import Grid, grid_of_image, list_images, read_on_grid
from brainsynth.audit.nearest import Nearest, TrainingIndex, calibration_size, threshold
from brainsynth.errors import InvalidParameterError, OutputExistsError
from brainsynth.files.paths import check_output_name
from brainsynth.files.replace import check_not_an_input
from brainsynth.progress import WorkCallback, report

#: Training images the first pass keeps for the full-resolution pass, by default.
CANDIDATES = 5


@dataclass(frozen=True)
class AuditRequest:
    """A checked audit request (see :func:`brainsynth.audit.audit`)."""

    training: list[Path]
    data: Path
    output: Path
    samples: Path | None
    n: int | None
    held_out: list[Path] | None
    held_out_folder: Path | None
    false_positive_rate: float
    criteria: tuple[str, ...]
    candidates: int


@dataclass
class AuditedImage:
    """One audited image: its file, its nearest training image under each criterion, whether flagged."""

    file: Path
    nearest: dict[str, Nearest]
    resampled: bool
    flagged: bool = False


@dataclass
class AuditResult:
    """What the report is written from."""

    request: AuditRequest
    grid: Grid
    samples_folder: Path
    training_resampled: list[Path]
    calibration: list[AuditedImage]
    calibration_source: str
    audited: list[AuditedImage]
    unreadable: list[tuple[Path, str]]
    missing: list[str]
    thresholds: dict[str, float]
    seconds: dict[str, float] = field(default_factory=dict)
    precision: str = "float32"

    @property
    def flagged(self) -> list[AuditedImage]:
        return [image for image in self.audited if image.flagged]


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidParameterError(f"{name} must be a positive whole number (got {value!r})")
    return value


def check_request(
    data: str | Path,
    output: str | Path,
    *,
    samples: str | Path | None,
    model: Any,
    n: int | None,
    held_out: str | Path | None,
    false_positive_rate: float,
    criteria: Sequence[str] | None,
    candidates: int,
) -> AuditRequest:
    """Check everything an audit needs before any image is read in full or any file written."""
    if samples is None and n is None:
        raise InvalidParameterError("give the samples to audit: --samples DATASET_DIR, or --model M with --n N")
    if samples is not None and n is not None:
        raise InvalidParameterError("give either --samples DATASET_DIR or --n N (samples drawn from --model), not both")
    if n is not None:
        _positive_int(n, "--n")
        if model is None:
            raise InvalidParameterError("--n N draws samples from a model: give --model too")
    if (
        isinstance(false_positive_rate, bool)
        or not isinstance(false_positive_rate, int | float)
        or not 0 < false_positive_rate <= 0.5
    ):
        raise InvalidParameterError(
            f"--false-positive-rate must be a number above 0 and at most 0.5 (got {false_positive_rate!r})"
        )
    _positive_int(candidates, "--candidates")
    if criteria is None:
        criteria = CRITERIA if model is not None else ("pixel",)
    criteria = tuple(criteria)
    unknown = [c for c in criteria if c not in CRITERIA]
    if unknown or not criteria:
        raise InvalidParameterError(
            f"--criteria must be some of {', '.join(CRITERIA)} (got {', '.join(criteria) or 'none'})"
        )
    if "pixel" not in criteria:
        raise InvalidParameterError("--criteria must include pixel (its first pass prunes the search)")
    if "latent" in criteria:
        if model is None:
            raise InvalidParameterError(
                "the latent criterion needs a model's autoencoder: give --model, or --criteria pixel"
            )
        if not callable(getattr(model.autoencoder, "encode", None)):
            raise InvalidParameterError(
                f"the latent criterion needs an autoencoder that encodes; {model.name}'s has no encoder: "
                "give --criteria pixel"
            )
    output = check_output_name(output, "--output")
    if output.exists():
        raise OutputExistsError(f"--output {str(output)!r} exists; an audit never replaces a report: give a new folder")
    if not output.parent.is_dir():
        raise InvalidParameterError(f"--output's folder {str(output.parent)!r} does not exist")
    check_not_an_input(output, {"--data": data, "--samples": samples, "--held-out": held_out})
    training = list_images(data, "--data")
    held = list_images(held_out, "--held-out") if held_out is not None else None
    if samples is not None:
        list_images(samples, "--samples")
    needed = calibration_size(false_positive_rate / len(criteria))
    if len(held or training) < needed:
        source = f"--held-out holds {len(held)}" if held else f"--data holds {len(training)} (each left out in turn)"
        what = "1 criterion" if len(criteria) == 1 else f"{len(criteria)} criteria"
        raise InvalidParameterError(
            f"calibrating {what} at --false-positive-rate {false_positive_rate:g} needs at least "
            f"{needed} real images unseen in training; {source}: give more, or raise --false-positive-rate"
        )
    return AuditRequest(
        training=training,
        data=Path(data).expanduser(),
        output=output,
        samples=None if samples is None else Path(samples).expanduser(),
        n=n,
        held_out=held,
        held_out_folder=None if held_out is None else Path(held_out).expanduser(),
        false_positive_rate=float(false_positive_rate),
        criteria=criteria,
        candidates=candidates,
    )


def _record_ids(folder: Path) -> list[str]:
    """The brains a dataset folder made by ``brainsynth generate`` was asked for (none for other folders)."""
    from brainsynth.generate import RECORD

    record = folder / RECORD
    if not record.is_file():
        return []
    with record.open(newline="", encoding="utf-8") as handle:
        return [row["id"] for row in csv.DictReader(handle, delimiter="\t") if row.get("id")]


class _Indexer:
    """Reads images onto the grid and turns them into each criterion's vectors."""

    def __init__(self, grid: Grid, model: Any, criteria: tuple[str, ...], device: str) -> None:
        self.grid = grid
        self.model = model if "latent" in criteria else None
        self.device = torch.device("cpu")
        self.latent_space: LatentSpace | None = None
        self.precision = "float32"
        if self.model is not None:
            settings = self.model.settings(device=device)
            self.device, self.precision = settings.device, settings.precision
            self.model.to(self.device)

    def read(self, path: Path) -> tuple[np.ndarray, bool]:
        return read_on_grid(path, self.grid)

    def latent(self, volume: np.ndarray) -> np.ndarray | None:
        """The raw (flattened) latent of ``volume``, or None without the latent criterion."""
        if self.model is None:
            return None
        return latent_of(self.model.autoencoder, volume, self.device, self.precision)

    def vector(self, volume: np.ndarray) -> np.ndarray | None:
        """The latent criterion's vector of ``volume`` (after the training images are indexed)."""
        if self.latent_space is None:
            return None
        return self.latent_space.vectors(self.latent(volume))[0]


def index_training(
    request: AuditRequest, indexer: _Indexer, callback: WorkCallback | None
) -> tuple[TrainingIndex, list[Path]]:
    """Read every training image twice, once for the average (and the latents), once for the vectors
    (so memory holds vectors, not images); a file that cannot be read is an error, since a copy of it
    would go unseen."""
    total = len(request.training)
    mean = np.zeros(indexer.grid.shape, dtype=np.float64)
    resampled, raw = [], []
    for number, path in enumerate(request.training):
        try:
            volume, moved = indexer.read(path)
        except InvalidParameterError as exc:
            raise InvalidParameterError(f"--data: {exc}; fix or remove it (every training image is compared)") from None
        mean += volume
        if indexer.model is not None:
            raw.append(indexer.latent(volume))
        if moved:
            resampled.append(path)
        report(callback, number + 1, 2 * total, "image", f"read training image {path.name}")
    space = PixelSpace(mean / total)
    latents = None
    if raw:
        indexer.latent_space = LatentSpace(np.mean(raw, axis=0))
        latents = indexer.latent_space.vectors(np.stack(raw))
    coarse, full = [], []
    for number, path in enumerate(request.training):
        volume, _ = indexer.read(path)
        coarse.append(space.coarse(volume, shifted=True))
        full.append(space.full(volume))
        report(callback, total + number + 1, 2 * total, "image", f"indexed training image {path.name}")
    return TrainingIndex(space, np.stack(coarse), np.stack(full), latents, request.candidates), resampled


def search(
    paths: list[Path], index: TrainingIndex, indexer: _Indexer, callback: WorkCallback | None, what: str
) -> tuple[list[AuditedImage], list[tuple[Path, str]]]:
    """The nearest training images of each file; files that cannot be read are listed with the reason."""
    found, unreadable = [], []
    for number, path in enumerate(paths):
        try:
            volume, moved = indexer.read(path)
        except InvalidParameterError as exc:
            unreadable.append((path, str(exc)))
        else:
            found.append(AuditedImage(path, index.nearest(volume, indexer.vector(volume)), moved))
        report(callback, number + 1, len(paths), "image", f"searched {what} {path.name}")
    return found, unreadable


def leave_one_out(
    request: AuditRequest, index: TrainingIndex, indexer: _Indexer, callback: WorkCallback | None
) -> list[AuditedImage]:
    """Each training image against the others: real images the model may not have copied."""
    latents = [None] * len(index) if index.latent is None else list(index.latent)
    found = []
    for number, (path, latent) in enumerate(zip(request.training, latents, strict=True)):
        volume, _ = indexer.read(path)
        found.append(AuditedImage(path, index.nearest(volume, latent, exclude=number), False))
        report(callback, number + 1, len(index), "image", f"calibrated on {path.name}")
    return found


def run_audit(
    request: AuditRequest, samples: Path, model: Any, device: str, callback: WorkCallback | None
) -> AuditResult:
    """Index, calibrate and search (``samples``: the folder audited, already filled in model mode)."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    grid = (
        Grid(tuple(model.config.image_shape), np.asarray(model.config.affine))
        if model
        else grid_of_image(request.training[0])
    )
    indexer = _Indexer(grid, model, request.criteria, device)
    index, training_resampled = index_training(request, indexer, callback)
    seconds["index_training"] = time.perf_counter() - started
    started = time.perf_counter()
    if request.held_out is None:
        calibration = leave_one_out(request, index, indexer, callback)
        source = f"leave-one-out over the {len(index)} training images"
    else:
        calibration, bad = search(request.held_out, index, indexer, callback, "held-out image")
        if bad:
            raise InvalidParameterError(f"--held-out: {bad[0][1]}; fix or remove it")
        source = f"{len(calibration)} held-out real images ({request.held_out_folder})"
    thresholds = {
        c: threshold(
            [image.nearest[c].similarity for image in calibration], request.false_positive_rate / len(request.criteria)
        )
        for c in request.criteria
    }
    seconds["calibrate"] = time.perf_counter() - started
    started = time.perf_counter()
    present = list_images(samples, "--samples")
    audited, unreadable = search(present, index, indexer, callback, "sample")
    names = {p.name for p in present}
    missing = [i for i in _record_ids(samples) if f"{i}.nii.gz" not in names]
    for image in audited + calibration:
        image.flagged = any(image.nearest[c].similarity > thresholds[c] for c in request.criteria)
    seconds["search_samples"] = time.perf_counter() - started
    return AuditResult(
        request,
        grid,
        samples,
        training_resampled,
        calibration,
        source,
        audited,
        unreadable,
        missing,
        thresholds,
        seconds,
        indexer.precision,
    )
