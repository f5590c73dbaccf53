"""A subject's own scan: registration to the model's space, reconstruction, inversion and edits (Colin27)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import brainsynth
from brainsynth.scans.resample import resample

COLIN = Path("/usr/share/mricron/templates")
if not (COLIN / "ch2bet.nii.gz").is_file():
    if os.environ.get("CI"):
        raise RuntimeError("CI installs Debian's mricron-data (Colin27); it is missing")
    pytest.skip("Debian's mricron-data (Colin27) is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def demo():
    return brainsynth.load_model("demo")


@pytest.fixture(scope="module")
def colin(demo):
    return brainsynth.load_scan(COLIN / "ch2bet.nii.gz", demo)


def _rotation_degrees(matrix: np.ndarray) -> float:
    cosine = (np.trace(matrix[:3, :3]) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))


def test_a_known_rotation_and_shift_are_recovered(demo, colin, tmp_path):
    """Colin27 turned by 10 degrees and moved by 10 mm comes back within 1 degree and 1 mm."""
    image = nib.load(COLIN / "ch2bet.nii.gz")
    angle = np.radians(10.0)
    moved_world = np.eye(4)  # scan world -> moved world: 10 degrees about the z axis, then 10 mm along x and y
    moved_world[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    moved_world[:3, 3] = [10.0 / np.sqrt(2), 10.0 / np.sqrt(2), 0.0]
    data = np.asarray(image.dataobj, dtype=np.float32)
    moved = resample(data, image.affine, data.shape, image.affine, np.linalg.inv(moved_world))
    nib.save(nib.Nifti1Image(moved, image.affine), tmp_path / "moved.nii.gz")
    again = brainsynth.load_scan(tmp_path / "moved.nii.gz", demo)
    # The model's world to the moved scan's world should be the move after the original registration.
    error = again.registration.model_to_scan @ np.linalg.inv(moved_world @ colin.registration.model_to_scan)
    centre = np.array([0.0, -18.0, 18.0, 1.0])  # the brain's centre in the model's world, mm
    assert _rotation_degrees(error) < 1.0
    assert np.linalg.norm((error @ centre)[:3] - centre[:3]) < 1.0
    assert again.registration.correlation > 0.5


def test_the_scan_is_on_the_model_grid_and_maps_back(demo, colin):
    assert colin.volume.shape == tuple(demo.config.image_shape)
    np.testing.assert_array_equal(colin.affine, demo.config.affine_array)
    assert colin.volume.min() >= 0.0
    assert colin.volume.max() <= 1.0
    back = colin.to_scan_grid(colin.volume)
    assert back.shape == colin.original.shape
    inside = (colin.original > 0) & (back > 0)
    assert np.corrcoef(back[inside], colin.original[inside])[0, 1] > 0.8


def test_reconstruction_reports_its_error(demo, colin):
    reconstruction = demo.reconstruct(colin, device="cpu")
    assert reconstruction.volume.shape == colin.volume.shape
    np.testing.assert_allclose(reconstruction.error, reconstruction.volume - colin.volume)
    assert 15.0 < reconstruction.psnr_db < 40.0
    assert 0.3 < reconstruction.ssim <= 1.0


def test_an_edit_changes_the_ventricles_and_keeps_the_scan_elsewhere(demo, colin):
    result = demo.edit(
        colin,
        source={"sex": "female", "age": 27},
        ventricular_volume=120.0,
        strength=0.6,
        device="cpu",
        precision="float32",
        extrapolate=True,  # Colin27 was 27, below the demo model's ages
    )
    assert result.source_measured == ("ventricular_volume", "brain_volume")
    assert result.targets[0]["ventricular_volume"] == 120.0
    assert result.targets[0]["age"] == 27.0
    assert result.on_scan.shape == (1, *colin.original.shape)
    grew = result.measured[0]["ventricular_volume"] - result.measured_source["ventricular_volume"]
    assert grew > 10.0
    assert result.roundtrip_psnr_db > 30.0
    changed = np.abs(result.differences_on_scan[0])
    assert changed.max() > 0.05 * colin.intensity_range[1]
    # outside the model's field of view the edited scan is the scan itself
    np.testing.assert_array_equal(result.on_scan[0][changed == 0], colin.original[changed == 0])


def test_a_traversal_of_edits_shares_one_inversion(demo, colin, monkeypatch):
    import brainsynth.scans.editing as editing

    calls = []
    real = editing.invert
    monkeypatch.setattr(editing, "invert", lambda *a, **k: calls.append(1) or real(*a, **k))
    result = demo.edit(
        colin,
        [{"age": 50}, {"age": 70}, {"age": 90}],
        source={"sex": "female", "age": 27},
        strength=0.3,
        steps=20,
        device="cpu",
        extrapolate=True,
    )
    assert len(calls) == 1
    assert [t["age"] for t in result.targets] == [50.0, 70.0, 90.0]
    assert result.volumes.shape == (3, *colin.volume.shape)


def test_edits_from_a_kept_inversion_run_only_the_regeneration(demo, colin, monkeypatch):
    """The napari and Jupyter faces invert once and edit many times: same edit, no second inversion."""
    import brainsynth.scans.editing as editing

    options = {"device": "cpu", "precision": "float32", "extrapolate": True}
    source = {"sex": "female", "age": 27}
    whole = demo.edit(colin, source=source, age=70, strength=0.4, steps=20, **options)
    inversion = demo.invert(colin, source, strength=0.4, steps=20, **options)
    calls, steps = [], []
    real = editing.invert
    monkeypatch.setattr(editing, "invert", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = demo.edit(colin, age=70, inversion=inversion, callback=lambda p: steps.append((p.step, p.total)), **options)
    assert calls == []
    assert steps == [(i, 8) for i in range(1, 9)]  # 8 = 0.4 x 20 regeneration steps, no inversion
    np.testing.assert_allclose(again.volumes, whole.volumes, atol=1e-4)
    np.testing.assert_allclose(again.on_scan, whole.on_scan, atol=1e-3 * colin.intensity_range[1])
    assert again.settings["strength"] == 0.4
    assert again.settings["scan"] == colin.record()
    with pytest.raises(
        brainsynth.InvalidParameterError, match=r"strength cannot differ from the inversion.s \(strength 0.4; got 0.8\)"
    ):
        demo.edit(colin, age=70, inversion=inversion, strength=0.8)
    other = brainsynth.Scan.on_model_grid(colin.volume, demo, path="other.nii.gz")
    with pytest.raises(brainsynth.InvalidParameterError, match=r"inversion is of another scan"):
        demo.edit(other, age=70, inversion=inversion)


def test_inversion_round_trip(demo, colin):
    source = {"sex": "female", "age": 27}
    inversion = demo.invert(colin, source, steps=20, device="cpu", precision="float32", extrapolate=True)
    assert inversion.noise.shape == (1, *demo.config.latent_shape)
    again = demo.sample(
        inversion.source,
        noise=inversion.noise[0],
        steps=inversion.settings["steps"],
        scheduler=inversion.settings["scheduler"],  # DDIM, whatever the model's default solver
        device="cpu",
        precision="float32",
        extrapolate=True,
    )
    np.testing.assert_allclose(again.volume, inversion.roundtrip, atol=1e-4)
    assert inversion.roundtrip_psnr_db > 15.0


def _cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "brainsynth", *map(str, args)], capture_output=True, text=True, timeout=600, cwd=cwd
    )


EDIT = ("edit", COLIN / "ch2bet.nii.gz", "--source", "sex=female,age=27", "--age", "80")


def test_command_line_edit_writes_the_edit_its_difference_and_sidecar(tmp_path):
    done = _cli(*EDIT, "--strength", "0.4", "--steps", "10", "--extrapolate", "-q", "-o", "older.nii.gz", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    edited, difference = nib.load(tmp_path / "older.nii.gz"), nib.load(tmp_path / "older_diff.nii.gz")
    colin = nib.load(COLIN / "ch2bet.nii.gz")
    assert edited.shape == difference.shape == colin.shape
    np.testing.assert_allclose(edited.affine, colin.affine, atol=1e-5)
    assert np.abs(np.asarray(difference.dataobj)).max() > 0
    sidecar = json.loads((tmp_path / "older.json").read_text())
    assert sidecar["covariates"][0]["age"] == 80.0
    assert sidecar["source_covariates"]["age"] == 27.0
    assert sidecar["difference_file"] == "older_diff.nii.gz"
    assert sidecar["settings"]["inverted_steps"] == 4
    again = _cli(*EDIT, "--extrapolate", "-o", "older.nii.gz", cwd=tmp_path)
    assert again.returncode == 1
    assert "exists" in again.stderr


def test_command_line_refuses_before_any_work(tmp_path):
    missing = _cli("edit", COLIN / "ch2bet.nii.gz", "--age", "80", "-o", "x.nii.gz", cwd=tmp_path)
    assert missing.returncode == 1
    assert "the scan's own sex, age must be given" in missing.stderr
    young = _cli(*EDIT, "-o", "x.nii.gz", cwd=tmp_path)
    assert young.returncode == 1
    assert "age must be between 44 and 82 years (got 27); pass extrapolate=True (--extrapolate)" in young.stderr
    head = _cli("edit", COLIN / "ch2.nii.gz", *EDIT[2:], "--extrapolate", "-o", "x.nii.gz", cwd=tmp_path)
    assert head.returncode == 1
    assert "looks like a whole head" in head.stderr
    strength = _cli(*EDIT, "--strength", "1.5", "-o", "x.nii.gz", cwd=tmp_path)
    assert strength.returncode == 1
    assert "strength must be a number above 0 and at most 1 (got 1.5)" in strength.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_image_in_memory_is_a_scan_like_its_file(demo, colin):
    """What the napari face hands over: a layer's data and world matrix instead of a path."""
    image = nib.load(COLIN / "ch2bet.nii.gz")
    data = np.asarray(image.dataobj, dtype=np.float32)
    scan = brainsynth.scan_from_image(data, image.affine, demo, name="ch2bet layer")
    np.testing.assert_allclose(scan.registration.model_to_scan, colin.registration.model_to_scan, atol=0.05)
    assert scan.path == "ch2bet layer"
    assert scan.original.shape == data.shape
    with pytest.raises(brainsynth.InvalidParameterError, match=r"affine of ch2bet layer must be a finite, invertible"):
        brainsynth.scan_from_image(data, np.zeros((4, 4)), demo, name="ch2bet layer")


def test_a_given_template_is_what_the_scan_is_registered_to(demo):
    """Colin27 registered to itself as the template: the identity, and the provenance names the template."""
    template = COLIN / "ch2bet.nii.gz"
    scan = brainsynth.load_scan(template, demo, reference=template)
    matrix = scan.registration.model_to_scan
    assert _rotation_degrees(matrix) < 0.5
    assert np.abs(matrix[:3, 3]).max() < 0.5
    assert scan.registration.correlation > 0.95
    assert scan.record()["reference"] == str(template)
    own = brainsynth.load_scan(template, demo)
    assert own.record()["reference"] == "the model's sample at its default covariates, seed 0"


def test_a_brain_given_to_a_head_model_is_refused(demo):
    """A template with its skull makes the model a head model: the skull-stripped scan is the wrong kind."""
    with pytest.raises(brainsynth.InvalidParameterError, match=r"looks like a skull-stripped brain .* with its skull"):
        brainsynth.load_scan(COLIN / "ch2bet.nii.gz", demo, reference=COLIN / "ch2.nii.gz")
    head = brainsynth.load_scan(COLIN / "ch2.nii.gz", demo, reference=COLIN / "ch2.nii.gz")
    assert head.registration.correlation > 0.95


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d.__setitem__(slice(None), 3.0), "is constant"),
        (lambda d: d.__setitem__((90, 100, 90), np.nan), "NaN or infinite"),
    ],
)
def test_unusable_images_are_refused(demo, tmp_path, make, message):
    image = nib.load(COLIN / "ch2bet.nii.gz")
    data = np.asarray(image.dataobj, dtype=np.float32).copy()
    make(data)
    nib.save(nib.Nifti1Image(data, image.affine), tmp_path / "bad.nii.gz")
    with pytest.raises(brainsynth.InvalidParameterError, match=message):
        brainsynth.load_scan(tmp_path / "bad.nii.gz", demo)


def test_files_that_are_not_a_3d_nifti_are_refused(demo, tmp_path):
    (tmp_path / "notes.nii.gz").write_text("not an image")
    with pytest.raises(brainsynth.InvalidParameterError, match=r"is not a readable NIfTI image"):
        brainsynth.load_scan(tmp_path / "notes.nii.gz", demo)
    nib.save(nib.Nifti1Image(np.ones((16, 16, 16, 3), np.float32), np.eye(4)), tmp_path / "series.nii.gz")
    with pytest.raises(brainsynth.InvalidParameterError, match=r"must be a 3D image \(got shape \(16, 16, 16, 3\)\)"):
        brainsynth.load_scan(tmp_path / "series.nii.gz", demo)
    with pytest.raises(brainsynth.InvalidParameterError, match=r"transform must be one of rigid, affine"):
        brainsynth.load_scan(COLIN / "ch2bet.nii.gz", demo, transform="elastic")


def test_a_small_field_of_view_and_a_failed_registration_are_refused_with_a_figure(demo, tmp_path):
    image = nib.load(COLIN / "ch2bet.nii.gz")
    data = np.asarray(image.dataobj, dtype=np.float32)
    slab = data.copy()
    slab[:, :, :70] = 0  # the lower half of the brain is gone
    slab[:, :, 110:] = 0
    nib.save(
        nib.Nifti1Image(
            slab[:, :, 60:120], image.affine @ np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 60], [0, 0, 0, 1]])
        ),
        tmp_path / "slab.nii.gz",
    )
    with pytest.raises(
        brainsynth.InvalidParameterError, match=r"covers \d+% of the model's brain.*see (.*\.png)"
    ) as caught:
        brainsynth.load_scan(tmp_path / "slab.nii.gz", demo)
    assert Path(str(caught.value).rsplit("see ", 1)[1]).is_file()
    ball = np.zeros_like(data)
    x, y, z = np.indices(data.shape)
    ball[((x - 90) ** 2 + (y - 108) ** 2 + (z - 90) ** 2) < 66**2] = 100.0  # brain-sized, no anatomy
    nib.save(nib.Nifti1Image(ball, image.affine), tmp_path / "ball.nii.gz")
    with pytest.raises(brainsynth.InvalidParameterError, match=r"registration of scan .* failed: its correlation"):
        brainsynth.load_scan(tmp_path / "ball.nii.gz", demo)


def test_a_follow_up_is_the_same_subject_older():
    from brainsynth.synthetic.anatomy import cohort_grid, draw_subject, follow_up, synthesize_subject

    params = draw_subject(np.random.default_rng(5))
    later = follow_up(params, 15)
    assert later.age == pytest.approx(params.age + 15)
    assert (later.field_seed, later.head_scale, later.gamma) == (params.field_seed, params.head_scale, params.gamma)
    assert later.tissue_loss > params.tissue_loss
    grid = cohort_grid(8.0)
    before, after = synthesize_subject(params, grid), synthesize_subject(later, grid)
    assert after["ventricular_volume_ml"] > 1.2 * before["ventricular_volume_ml"]
    assert after["brain_volume_ml"] < before["brain_volume_ml"]


def test_the_edit_evaluation_writes_its_numbers(demo, tmp_path):
    from brainsynth.evaluation.edits import evaluate_edits

    summary = evaluate_edits(demo, tmp_path, n=2, years=(10,), steps=4, device="cpu")
    assert set(summary["+10 years"]["ssim"]) == {"edit", "scan", "fresh"}
    assert 0.0 <= summary["+10 years"]["identity"] <= 1.0
    stored = json.loads((tmp_path / "edits.json").read_text())
    assert len(stored["rows"]) == 2
    assert "| +10 years |" in (tmp_path / "edits.md").read_text()
