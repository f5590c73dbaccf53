"""The synthetic cohort: anatomy follows the covariates, volumes are measured, output is BIDS-like."""

from __future__ import annotations

import csv

import nibabel as nib
import numpy as np
import pytest

import brainsynth
from brainsynth.synthetic.cohort import generate_cohort


def _rows(folder):
    with open(folder / "participants.tsv", newline="") as stream:
        return list(csv.DictReader(stream, delimiter="\t"))


@pytest.fixture(scope="module")
def cohort4mm(tmp_path_factory):
    return generate_cohort(24, tmp_path_factory.mktemp("c4") / "cohort", spacing=4.0, seed=11)


def test_measured_volumes_track_age_and_stay_in_range(cohort4mm):
    rows = _rows(cohort4mm)
    age = np.array([float(r["age"]) for r in rows])
    ventricles = np.array([float(r["ventricular_volume_ml"]) for r in rows])
    brain = np.array([float(r["brain_volume_ml"]) for r in rows])
    assert np.corrcoef(age, np.log(ventricles))[0, 1] > 0.3
    assert np.corrcoef(age, brain)[0, 1] < -0.3
    assert ventricles.min() > 3.0
    assert ventricles.max() < 250.0
    assert brain.min() > 1100.0
    assert brain.max() < 1850.0
    assert ventricles.max() / ventricles.min() > 3.0  # individual variation as well as ageing
    assert age.min() >= 44.0
    assert age.max() <= 82.0


def test_layout_images_and_tables(cohort4mm):
    rows = _rows(cohort4mm)
    assert list(rows[0]) == ["participant_id", "sex", "age", "ventricular_volume_ml", "brain_volume_ml"]
    assert {r["sex"] for r in rows} == {"female", "male"}
    image = nib.load(cohort4mm / "sub-0001" / "anat" / "sub-0001_T1w.nii.gz")
    assert image.shape == (40, 56, 40)
    assert nib.aff2axcodes(image.affine) == ("R", "A", "S")
    assert image.header.get_zooms() == (4.0, 4.0, 4.0)
    data = np.asarray(image.dataobj)
    assert data.min() == 0.0
    assert data.max() == pytest.approx(1.0)
    assert (data > 0).mean() > 0.2  # a brain fills much of the field of view
    assert (cohort4mm / "participants.json").is_file()
    assert (cohort4mm / "cohort.json").is_file()


def test_same_seed_same_cohort(tmp_path):
    a = generate_cohort(2, tmp_path / "a", spacing=8.0, seed=5)
    b = generate_cohort(2, tmp_path / "b", spacing=8.0, seed=5)
    c = generate_cohort(2, tmp_path / "c", spacing=8.0, seed=6)
    image = "sub-0002/anat/sub-0002_T1w.nii.gz"
    assert (a / image).read_bytes() == (b / image).read_bytes()
    assert (a / "participants.tsv").read_text() == (b / "participants.tsv").read_text()
    assert (a / "participants.tsv").read_text() != (c / "participants.tsv").read_text()


def test_cohort_bad_input(tmp_path):
    with pytest.raises(brainsynth.InvalidParameterError, match=r"n must be a positive integer \(got 0\)"):
        generate_cohort(0, tmp_path / "x")
    with pytest.raises(brainsynth.InvalidParameterError, match=r"spacing must be between 0.5 and 8 mm \(got 20"):
        generate_cohort(1, tmp_path / "x", spacing=20.0)
    with pytest.raises(brainsynth.InvalidParameterError, match=r"output folder .* does not exist"):
        generate_cohort(1, tmp_path / "missing" / "x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("keep")
    with pytest.raises(brainsynth.OutputExistsError, match=r"exists; pass overwrite=True"):
        generate_cohort(1, tmp_path / "full", spacing=8.0)
    assert (tmp_path / "full" / "keep.txt").read_text() == "keep"


def test_overwrite_replaces_only_a_cohort(tmp_path):
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(brainsynth.InvalidParameterError, match=r"is not a cohort that brainsynth made"):
        generate_cohort(2, other, spacing=8.0, overwrite=True)
    assert (other / "holiday.jpg").read_bytes() == b"\xff\xd8"
    cohort = generate_cohort(2, tmp_path / "cohort", spacing=8.0, seed=1)
    assert generate_cohort(2, cohort, spacing=8.0, seed=2, overwrite=True) == cohort
