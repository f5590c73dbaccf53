"""A synthetic brain cohort in a BIDS-like folder, derived from the MNI152 template.

Layout::

    DIR/participants.tsv           participant_id, sex, age, ventricular_volume_ml, brain_volume_ml
    DIR/participants.json          what each column means
    DIR/cohort.json                generation settings and every subject's drawn parameters
    DIR/sub-0001/anat/sub-0001_T1w.nii.gz
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from brainsynth._version import __version__
from brainsynth.errors import InvalidParameterError
from brainsynth.files.atomic import staged_directory
from brainsynth.files.nifti import nifti_bytes
from brainsynth.files.replace import check_replaceable
from brainsynth.progress import WorkCallback, report
from brainsynth.synthetic.anatomy import cohort_grid, draw_subject, synthesize_subject

PARTICIPANT_COLUMNS = ("participant_id", "sex", "age", "ventricular_volume_ml", "brain_volume_ml")

COLUMN_DESCRIPTIONS = {
    "participant_id": {"Description": "Subject identifier"},
    "sex": {"Description": "Sex", "Levels": {"female": "female", "male": "male"}},
    "age": {"Description": "Age at imaging", "Units": "years"},
    "ventricular_volume_ml": {
        "Description": "Volume of the lateral and third ventricles, measured from the subject's tissue maps",
        "Units": "ml",
    },
    "brain_volume_ml": {
        "Description": "Grey plus white matter volume measured from the subject's tissue maps, normalised "
        "for head size (times template intracranial volume / subject intracranial volume)",
        "Units": "ml",
    },
}


def _check_request(n: int, spacing: float, seed: int, output: Path, overwrite: bool) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidParameterError(f"n must be a positive integer (got {n!r})")
    if not isinstance(spacing, int | float) or not 0.5 <= spacing <= 8:
        raise InvalidParameterError(f"spacing must be between 0.5 and 8 mm (got {spacing!r})")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidParameterError(f"seed must be a non-negative integer (got {seed!r})")
    check_replaceable(output, "cohort", overwrite=overwrite)


def generate_cohort(
    n: int,
    output: str | Path,
    *,
    spacing: float = 2.0,
    seed: int = 0,
    overwrite: bool = False,
    callback: WorkCallback | None = None,
) -> Path:
    """Generate ``n`` synthetic subjects and write them as a BIDS-like folder.

    Parameters
    ----------
    n : int
        Number of subjects.
    output : str or Path
        Cohort folder; its parent must exist. It is assembled beside its target and renamed into
        place when complete.
    spacing : float
        Voxel size in mm; the field of view is always 160 x 224 x 160 mm (80 x 112 x 80 at 2 mm).
    seed : int
        Seed of the whole cohort: the same seed gives the same subjects.
    overwrite : bool
        Replace an existing non-empty folder.
    callback : callable, optional
        Called with a :class:`~brainsynth.progress.WorkProgress` (``unit="subject"``) after each subject;
        raise :class:`~brainsynth.errors.SamplingCancelled` in it to stop (nothing is written then).

    Returns
    -------
    Path
        The cohort folder.

    Examples
    --------
    >>> generate_cohort(16, "cohort", spacing=2.0, seed=0)  # doctest: +SKIP
    """
    output = Path(output).expanduser()
    _check_request(n, spacing, seed, output, overwrite)
    grid = cohort_grid(float(spacing))
    rng = np.random.default_rng(seed)
    with staged_directory(output, overwrite=True) as staging:
        rows, subjects = [], []
        for index in range(1, n + 1):
            participant = f"sub-{index:04d}"
            params = draw_subject(rng)
            subject = synthesize_subject(params, grid)
            anat = staging / participant / "anat"
            anat.mkdir(parents=True)
            description = f"brainsynth synthetic cohort seed {seed} {participant}"
            (anat / f"{participant}_T1w.nii.gz").write_bytes(
                nifti_bytes(subject["t1"], grid.affine, gzipped=True, description=description)
            )
            rows.append(
                (
                    participant,
                    params.sex,
                    f"{params.age:.1f}",
                    f"{subject['ventricular_volume_ml']:.2f}",
                    f"{subject['brain_volume_ml']:.2f}",
                )
            )
            subjects.append(
                {
                    "participant_id": participant,
                    **params.to_dict(),
                    "brain_volume_raw_ml": subject["brain_volume_raw_ml"],
                    "intracranial_volume_ml": subject["intracranial_volume_ml"],
                }
            )
            report(callback, index, n, "subject", f"made {participant}")
        _write_tables(
            staging,
            rows,
            subjects,
            {
                "n": n,
                "spacing_mm": float(spacing),
                "seed": seed,
                "shape": list(grid.shape),
                "affine": grid.affine.tolist(),
                "brainsynth_version": __version__,
            },
        )
    return output


def _write_tables(folder: Path, rows: list[tuple[str, ...]], subjects: list[dict], settings: dict) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(PARTICIPANT_COLUMNS)
    writer.writerows(rows)
    (folder / "participants.tsv").write_text(buffer.getvalue())
    (folder / "participants.json").write_text(json.dumps(COLUMN_DESCRIPTIONS, indent=2) + "\n")
    (folder / "cohort.json").write_text(json.dumps({**settings, "subjects": subjects}, indent=2) + "\n")
