"""Training data folders: every kind of bad folder is refused with a clear message; images are cached."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pytest
import torch

from brainsynth.bids import DataError, TrainingImages, find_subjects
from brainsynth.training.settings import load_training_config

SETTINGS = load_training_config("tiny").data


@pytest.fixture
def folder(cohort_dir, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(cohort_dir, copy)
    return copy


def _edit_table(folder, old, new):
    table = folder / "participants.tsv"
    table.write_text(table.read_text().replace(old, new, 1))


def test_images_are_on_the_model_grid_with_covariates(folder):
    images = TrainingImages(folder, SETTINGS)
    batch = images.images(torch.tensor([0, 1]))
    assert batch.shape == (2, 1, 20, 28, 20)
    assert batch.dtype == torch.float32
    assert float(batch.min()) >= 0.0
    assert float(batch.max()) == pytest.approx(1.0)
    assert images.covariates.shape == (6, 4)
    assert set(images.covariates[:, 0].tolist()) <= {0.0, 1.0}


def test_images_are_read_once(folder):
    images = TrainingImages(folder, SETTINGS)
    first = images.images(torch.tensor([2]))
    for path in folder.glob("sub-*/anat/*.nii.gz"):
        path.unlink()
    assert torch.equal(images.images(torch.tensor([2])), first)


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(DataError, match=r"data folder .*nowhere does not exist"):
        find_subjects(tmp_path / "nowhere", SETTINGS)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"data folder .*empty is empty"):
        find_subjects(tmp_path / "empty", SETTINGS)


def test_participants_table_problems(folder):
    table = folder / "participants.tsv"
    text = table.read_text()
    table.unlink()
    with pytest.raises(DataError, match=r"has no participants.tsv"):
        find_subjects(folder, SETTINGS)
    table.write_text(text.replace("brain_volume_ml", "brain_ml"))
    with pytest.raises(DataError, match=r"lacks column\(s\) brain_volume_ml"):
        find_subjects(folder, SETTINGS)


@pytest.mark.parametrize(
    ("value", "message"), [("nan", r"value is 'nan', not a finite number"), ("big", r"'big' is not a number")]
)
def test_bad_covariate_values(folder, value, message):
    lines = (folder / "participants.tsv").read_text().splitlines()
    fields = lines[2].split("\t")
    fields[2] = value
    lines[2] = "\t".join(fields)
    (folder / "participants.tsv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"line 3, column age: {message}"):
        find_subjects(folder, SETTINGS)


def test_participant_without_image(folder):
    shutil.rmtree(folder / "sub-0004")
    with pytest.raises(DataError, match=r"participant sub-0004 in participants.tsv has no image"):
        find_subjects(folder, SETTINGS)


def test_image_not_3d_or_corrupt(folder):
    path = folder / "sub-0002" / "anat" / "sub-0002_T1w.nii.gz"
    image = nib.load(path)
    nib.save(nib.Nifti1Image(np.zeros((*image.shape, 2), np.float32), image.affine), path)
    with pytest.raises(DataError, match=r"sub-0002_T1w.nii.gz is not a 3D image \(shape \(20, 28, 20, 2\)\)"):
        find_subjects(folder, SETTINGS)
    path.write_bytes(b"not a nifti file at all")
    with pytest.raises(DataError, match=r"sub-0002_T1w.nii.gz is not a readable NIfTI image"):
        find_subjects(folder, SETTINGS)


def test_wildly_different_spacing(folder):
    path = folder / "sub-0005" / "anat" / "sub-0005_T1w.nii.gz"
    image = nib.load(path)
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj), np.diag([1.0, 1.0, 1.0, 1.0])), path)
    with pytest.raises(DataError, match=r"very different voxel sizes: .* 8 mm, sub-0005 1 mm"):
        find_subjects(folder, SETTINGS)


def test_a_participants_table_saved_by_excel_is_read(folder):
    """A byte-order mark before participant_id does not hide the column."""
    table = folder / "participants.tsv"
    plain = [s.participant_id for s in find_subjects(folder, SETTINGS)]
    table.write_bytes(b"\xef\xbb\xbf" + table.read_bytes())
    assert [s.participant_id for s in find_subjects(folder, SETTINGS)] == plain


def test_a_damaged_latent_cache_is_made_anew(tmp_path):
    from brainsynth.training.diffusion import _read_latents

    path = tmp_path / "latents.pt"
    path.write_bytes(b"\x80garbage")
    with pytest.warns(UserWarning, match=r"is not a readable latent cache \(.*\); encoding the latents anew"):
        assert _read_latents(path) is None
    torch.save({"mu": torch.zeros(1), "sigma": torch.ones(1), "key": "k"}, path)
    assert _read_latents(path)["key"] == "k"
