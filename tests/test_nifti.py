"""NIfTI output: orientation, data types, sidecars, atomic writes and no silent overwrite."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

import brainsynth
from brainsynth.files.nifti import load_nifti, sidecar_path


@pytest.fixture
def result(model):
    return model.sample(sex="male", age=75, seed=8, steps=3)


def test_saved_file_has_the_model_affine_and_data(result, tmp_path):
    (path,) = result.save(tmp_path / "brain.nii.gz")
    image = nib.load(path)
    np.testing.assert_array_equal(image.affine, result.affine)
    assert nib.aff2axcodes(image.affine) == ("L", "A", "S")
    assert image.header.get_data_dtype() == np.float32
    assert image.header.get_xyzt_units()[0] == "mm"
    assert int(image.header["sform_code"]) == 2
    np.testing.assert_array_equal(np.asarray(image.dataobj), result.volume)


def test_sidecar_records_how_the_brain_was_made(result, tmp_path):
    (path,) = result.save(tmp_path / "brain.nii.gz")
    sidecar = json.loads(sidecar_path(path).read_text())
    assert sidecar_path(path).name == "brain.json"
    assert sidecar["covariates"] == {"sex": "male", "age": 75.0, "ventricular_volume": 40.0, "brain_volume": 1404.0}
    assert sidecar["covariates_normalised"]["sex"] == 1.0
    assert sidecar["seed"] == 8
    for key in (
        "steps",
        "scheduler",
        "eta",
        "model",
        "weights",
        "brainsynth_version",
        "device",
        "time_taken_s",
        "extrapolated",
        "affine",
        "dtype",
    ):
        assert key in sidecar, key
    assert sidecar["steps"] == 3
    assert sidecar["scheduler"] == "ddim"
    assert sidecar["timestep_spacing"] == "leading"
    assert sidecar["timesteps"] == [666, 333, 0]


@pytest.mark.parametrize(("umask", "file_mode", "folder_mode"), [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_outputs_get_the_users_umask(model, tmp_path, umask, file_mode, folder_mode):
    """Colleagues on a shared machine can read what brainsynth wrote, as with any other program."""
    import os
    import stat

    from brainsynth.loading.model_dir import save_model_dir

    previous = os.umask(umask)
    try:
        (path,) = model.sample(seed=1, steps=2).save(tmp_path / "brain.nii.gz")
        folder = save_model_dir(model, tmp_path / "model")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == file_mode
    assert stat.S_IMODE(sidecar_path(path).stat().st_mode) == file_mode
    assert stat.S_IMODE(folder.stat().st_mode) == folder_mode
    assert stat.S_IMODE((folder / "model.json").stat().st_mode) == file_mode


def test_same_seed_gives_byte_identical_files(model, tmp_path):
    first = model.sample(seed=42, steps=3).save(tmp_path / "a.nii.gz")[0]
    second = model.sample(seed=42, steps=3).save(tmp_path / "b.nii.gz")[0]
    other = model.sample(seed=43, steps=3).save(tmp_path / "c.nii.gz")[0]
    assert first.read_bytes() == second.read_bytes()
    assert np.asarray(nib.load(first).dataobj).tobytes() == np.asarray(nib.load(second).dataobj).tobytes()
    assert not np.array_equal(np.asarray(nib.load(first).dataobj), np.asarray(nib.load(other).dataobj))


def test_uint8_on_request(result, tmp_path):
    (path,) = result.save(tmp_path / "brain.nii", dtype="uint8")
    data = np.asarray(nib.load(path).dataobj)
    assert data.dtype == np.uint8
    expected = np.round(np.clip(result.volume, 0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(data, expected)


def test_existing_file_is_never_overwritten_unless_asked(result, tmp_path):
    target = tmp_path / "brain.nii.gz"
    target.write_bytes(b"precious")
    with pytest.raises(brainsynth.OutputExistsError, match=r"brain.nii.gz exists; pass overwrite=True"):
        result.save(target)
    assert target.read_bytes() == b"precious"
    assert not sidecar_path(target).exists()
    result.save(target, overwrite=True)
    assert nib.load(target).shape == (16, 16, 16)


def test_missing_folder_and_bad_suffix_are_refused(result, tmp_path):
    with pytest.raises(brainsynth.InvalidParameterError, match=r"folder .*missing.* does not exist"):
        result.save(tmp_path / "missing" / "brain.nii.gz")
    with pytest.raises(brainsynth.InvalidParameterError, match=r"output folder .* does not exist"):
        result.save(tmp_path / "missing" / "deeper")
    with pytest.raises(brainsynth.InvalidParameterError, match=r"dtype must be one of float32, int16, uint8 \(NIfTI-1"):
        result.save(tmp_path / "x.nii.gz", dtype="float16")
    with pytest.raises(brainsynth.InvalidParameterError, match=r"dtype must be one of float32, int16, uint8"):
        result.save(tmp_path / "new-folder", dtype="int8")
    assert not (tmp_path / "new-folder").exists()


def test_writes_leave_no_partial_files(result, tmp_path):
    result.save(tmp_path / "brain.nii.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["brain.json", "brain.nii.gz"]


def test_batch_saves_numbered_files_and_folders(model, tmp_path):
    batch = model.sample(seed=1, batch_size=2, steps=2)
    paths = batch.save(tmp_path / "b.nii.gz")
    assert [p.name for p in paths] == ["b_000.nii.gz", "b_001.nii.gz"]
    folder = batch.save(tmp_path / "folder")
    assert [p.name for p in folder] == ["brain_000.nii.gz", "brain_001.nii.gz"]
    assert json.loads(sidecar_path(folder[1]).read_text())["seed"] == 2


def test_series_is_one_4d_file_with_frames_in_the_sidecar(model, tmp_path):
    sweep = model.traverse("age", [50, 70], seed=1, steps=2)
    path = sweep.save_series(tmp_path / "sweep.nii.gz")
    volume, affine, sidecar = load_nifti(path)
    assert volume.shape == (16, 16, 16, 2)
    np.testing.assert_array_equal(volume[..., 1], sweep.volumes[1])
    np.testing.assert_array_equal(affine, sweep.affine)
    assert [f["covariates"]["age"] for f in sidecar["frames"]] == [50.0, 70.0]
