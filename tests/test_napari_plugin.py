"""The napari plugin in a real viewer under Xvfb: widgets through the manifest, 3D screenshots, I/O."""

from __future__ import annotations

import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

napari = pytest.importorskip("napari")

import brainsynth  # noqa: E402
from napari_plugin._controls import FOLDER_CHOICE  # noqa: E402


def _dock(viewer, name):
    _, widget = viewer.window.add_plugin_dock_widget("brainsynth", name)
    return widget


def _use_model(widget, folder):
    widget.model_controls.model_choice.value = FOLDER_CHOICE
    widget.model_controls.model_folder.value = str(folder)
    assert widget.model_controls.model is not None


def _wait(qtbot, widget, timeout=120_000):
    qtbot.waitUntil(lambda: not widget.run.running, timeout=timeout)


def _not_blank(image):
    rgb = np.asarray(image)[..., :3].astype(float)
    return rgb.std() > 5 and (rgb.max(axis=-1) > 40).mean() > 0.01


def test_manifest_is_valid_and_imports():
    process = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "--imports", "brainsynth"], capture_output=True, text=True
    )
    assert process.returncode == 0, process.stdout + process.stderr
    assert "valid" in process.stdout


def test_generate_adds_a_3d_brain_with_affine_and_provenance(make_napari_viewer, qtbot, trained_model):
    viewer = make_napari_viewer(show=True)
    widget = _dock(viewer, "Generate")
    _use_model(widget, trained_model)
    widget.model_controls.covariates["age"].value = 70.0
    widget.model_controls.covariates["sex"].value = "male"
    widget.sampling.seed.value = 3
    seen = []
    widget.generate().yielded.connect(seen.append)
    _wait(qtbot, widget)
    (layer,) = [layer for layer in viewer.layers if "seed 3" in layer.name]
    model = brainsynth.load_model(trained_model)
    assert layer.data.shape == (20, 28, 20)
    np.testing.assert_allclose(layer.affine.affine_matrix, model.config.affine_array)
    assert layer.metadata["brainsynth"]["covariates"]["age"] == pytest.approx(70.0, abs=0.5)
    assert layer.metadata["brainsynth"]["seed"] == 3
    expected = model.sample(widget.model_controls.values(), seed=3).volume
    np.testing.assert_allclose(layer.data, expected, atol=1e-5)
    assert len(seen) == model.config.default_steps
    assert not widget.sampling.guidance.enabled  # trained without conditioning dropout
    assert layer.metadata["brainsynth"]["guidance"] == 1.0
    assert "brainsynth preview" not in viewer.layers
    assert viewer.dims.ndisplay == 3
    assert _not_blank(viewer.screenshot(canvas_only=True, flash=False))
    assert isinstance(widget.last_seconds, float)


def test_guidance_slider_follows_the_model(make_napari_viewer, tmp_path):
    from brainsynth.loading.model_dir import save_model_dir
    from tests.tiny import tiny_model

    folder = save_model_dir(tiny_model(null_condition=-1.0, default_guidance=2.0), tmp_path / "guided")
    widget = _dock(make_napari_viewer(), "Generate")
    _use_model(widget, folder)
    assert widget.sampling.guidance.enabled
    assert widget.sampling.options()["guidance"] == 2.0
    widget.sampling.guidance.value = 3.5
    assert widget.sampling.options()["guidance"] == 3.5


def test_cancel_leaves_no_layer_and_ends_the_worker(make_napari_viewer, qtbot, trained_model):
    viewer = make_napari_viewer(show=True)
    widget = _dock(viewer, "Generate")
    _use_model(widget, trained_model)
    widget.sampling.steps.value = 1000
    steps = []
    worker = widget.generate()
    worker.yielded.connect(steps.append)
    qtbot.waitUntil(lambda: len(steps) >= 2, timeout=60_000)
    widget.cancel()
    _wait(qtbot, widget)
    assert len(steps) < 1000
    assert len(viewer.layers) == 0
    assert widget.run.run_button.enabled
    assert "cancelled" in widget.run.status.value


def test_traverse_makes_one_4d_layer(make_napari_viewer, qtbot, trained_model):
    viewer = make_napari_viewer(show=True)
    widget = _dock(viewer, "Traverse")
    _use_model(widget, trained_model)
    widget.covariate.value = "age"
    widget.start_value.value, widget.stop_value.value, widget.frames.value = 50.0, 80.0, 3
    widget.start()
    _wait(qtbot, widget)
    (layer,) = viewer.layers
    assert layer.data.shape == (3, 20, 28, 20)
    assert layer.metadata["brainsynth"]["frame_values"] == [50.0, 65.0, 80.0]
    assert [f["covariates"]["age"] for f in layer.metadata["brainsynth"]["frames"]] == [50.0, 65.0, 80.0]


def test_interpolate_makes_one_4d_layer(make_napari_viewer, qtbot, trained_model, tmp_path):
    viewer = make_napari_viewer(show=True)
    widget = _dock(viewer, "Interpolate")
    _use_model(widget, trained_model)
    widget.seed_a.value, widget.seed_b.value, widget.frames.value = 1, 2, 3
    widget.start()
    _wait(qtbot, widget)
    (layer,) = viewer.layers
    assert layer.data.shape == (3, 20, 28, 20)
    assert widget.export_movie(tmp_path / "morph.gif") == tmp_path / "morph.gif"
    assert (tmp_path / "morph.gif").read_bytes()[:3] == b"GIF"


def test_writer_and_reader_round_trip_with_affine(make_napari_viewer, model, tmp_path):
    from napari_plugin._layers import brain_layer

    viewer = make_napari_viewer()
    data, kwargs, _ = brain_layer(model.sample(seed=1, steps=2))
    layer = viewer.add_image(data, **kwargs)
    path = tmp_path / "brain.nii.gz"
    viewer.layers.save(str(path), selected=False, plugin="brainsynth")
    assert (tmp_path / "brain.json").is_file()
    (opened,) = viewer.open(str(path), plugin="brainsynth")
    np.testing.assert_allclose(opened.affine.affine_matrix, layer.affine.affine_matrix)
    np.testing.assert_array_equal(opened.data, layer.data)
    assert opened.metadata["brainsynth"]["seed"] == 1


def test_reader_places_a_real_scan_by_its_affine(make_napari_viewer, cohort_dir):
    import nibabel as nib

    viewer = make_napari_viewer()
    path = cohort_dir / "sub-0001" / "anat" / "sub-0001_T1w.nii.gz"
    (layer,) = viewer.open(str(path), plugin="brainsynth")
    np.testing.assert_allclose(layer.affine.affine_matrix, nib.load(path).affine)


def test_bad_model_folder_is_a_notification(make_napari_viewer, tmp_path):
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer()
    widget = _dock(viewer, "Generate")
    widget.model_controls.model_choice.value = FOLDER_CHOICE
    widget.model_controls.model_folder.value = str(tmp_path)
    assert widget.model_controls.model is None
    assert widget.generate() is None
    assert any("neither a brainsynth model folder" in str(n.message) for n in notification_manager.records)


def test_sample_data_needs_the_demo_model():
    from brainsynth.loading.hub import PACKAGED_MODELS
    from napari_plugin._sample_data import synthetic_brain

    if (PACKAGED_MODELS / "demo").is_dir():
        ((data, kwargs),) = synthetic_brain()
        assert data.ndim == 3
        assert "brainsynth" in kwargs["metadata"]
    else:
        with pytest.raises(brainsynth.ModelNotFoundError, match=r"demo model is not included"):
            synthetic_brain()


def test_explore_screenshot_writes_a_picture(trained_model, tmp_path):
    from PIL import Image

    path = tmp_path / "explore.png"
    process = subprocess.run(
        [sys.executable, "-m", "brainsynth", "explore", "--model", str(trained_model), "--screenshot", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 0, process.stderr[-2000:]
    assert _not_blank(Image.open(path))


def test_explore_without_a_display_writes_a_brain(trained_model, tmp_path):
    from PIL import Image

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    command = [sys.executable, "-m", "brainsynth", "explore", "--model", str(trained_model), "--seed", "2"]
    process = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert process.returncode == 0, process.stderr[-2000:]
    assert "napari cannot open here: there is no display" in process.stdout
    expected = brainsynth.load_model(trained_model).config.image_shape
    assert nib.load(tmp_path / "brainsynth_brain.nii.gz").shape == expected
    assert (tmp_path / "brainsynth_brain.json").is_file()
    assert _not_blank(Image.open(tmp_path / "brainsynth_brain.png"))
    again = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert again.returncode == 1
    assert "exists" in again.stderr


def _nifti(path, data, affine=None):
    """A NIfTI file whose sform is ``affine`` as given (even a singular one), without a qform."""
    image = nib.Nifti1Image(np.asarray(data, dtype=np.float32), None)
    image.header.set_sform(np.eye(4) if affine is None else affine, code=2)
    image.header.set_qform(None, code=0)
    nib.save(image, str(path))
    return path


def test_reader_opens_what_napari_can_show(make_napari_viewer, tmp_path):
    """A malformed sidecar, a 2D, a 5D, a NaN-holding image and an unusable affine all open, each as
    napari can place it, with a warning where something was left out."""
    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    brain = _nifti(tmp_path / "brain.nii.gz", rng.random((6, 7, 8)), np.diag([2.0, 2.0, 2.0, 1.0]))
    (tmp_path / "brain.json").write_bytes(b'{"seed": 1,')
    with pytest.warns(UserWarning, match=r"brain.json is not a readable JSON sidecar: not JSON"):
        (layer,) = viewer.open(str(brain), plugin="brainsynth")
    assert layer.metadata == {}
    assert layer.data.shape == (6, 7, 8)

    flat = _nifti(tmp_path / "slice.nii", rng.random((6, 7)), np.diag([0.5, 0.7, 3.0, 1.0]))
    (layer,) = viewer.open(str(flat), plugin="brainsynth")
    assert layer.ndim == 2
    np.testing.assert_allclose(layer.affine.affine_matrix, np.diag([0.5, 0.7, 1.0]))

    five = rng.random((6, 7, 8, 3, 2))
    affine = np.array([[2.0, 0, 0, -5], [0, 3.0, 0, 4], [0, 0, 4.0, 1], [0, 0, 0, 1]])
    (layer,) = viewer.open(str(_nifti(tmp_path / "five.nii.gz", five, affine)), plugin="brainsynth")
    assert layer.data.shape == (3, 2, 6, 7, 8)
    np.testing.assert_array_equal(layer.data[2, 1], five[..., 2, 1].astype(np.float32))
    np.testing.assert_allclose(layer.affine.affine_matrix[2:, 2:], affine)

    holes = rng.random((6, 7, 8))
    holes[0, 0, :4] = [np.nan, np.inf, -np.inf, np.nan]
    (layer,) = viewer.open(str(_nifti(tmp_path / "holes.nii.gz", holes)), plugin="brainsynth")
    assert np.isfinite(layer.contrast_limits).all()
    assert layer.contrast_limits[1] <= 1.0

    singular = _nifti(tmp_path / "singular.nii.gz", holes, np.diag([2.0, 0.0, 2.0, 1.0]))
    with pytest.warns(UserWarning, match=r"affine that is not finite or not invertible"):
        (layer,) = viewer.open(str(singular), plugin="brainsynth")
    assert np.isfinite(layer.affine.affine_matrix).all()


def test_writer_saves_2d_layers_placement_and_any_provenance(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    flat = viewer.add_image(np.random.default_rng(1).random((5, 6)).astype(np.float32), name="slice", scale=(2, 3))
    flat.metadata["brainsynth"] = ["made", "elsewhere"]
    viewer.layers.selection = {flat}
    path = tmp_path / "slice.nii.gz"
    viewer.layers.save(str(path), selected=True, plugin="brainsynth")
    image = nib.load(path)
    assert image.shape == (5, 6)
    np.testing.assert_allclose(np.diag(image.affine), [2.0, 3.0, 1.0, 1.0])
    import json

    sidecar = json.loads((tmp_path / "slice.json").read_text())
    assert sidecar["provenance"] == ["made", "elsewhere"]
    assert sidecar["layer"] == "slice"
    volume = viewer.add_image(np.ones((4, 4, 4), np.float32), translate=(10, 20, 30), scale=(2, 2, 2))
    viewer.layers.selection = {volume}
    viewer.layers.save(str(tmp_path / "moved.nii"), selected=True, plugin="brainsynth")
    np.testing.assert_allclose(nib.load(tmp_path / "moved.nii").affine[:3, 3], [10, 20, 30])


def test_traverse_shows_its_sweep_choice(make_napari_viewer):
    """The sweep menu names a covariate after napari resets widget choices (as it does when layers change)."""
    viewer = make_napari_viewer(show=True)
    widget = _dock(viewer, "Traverse")
    viewer.add_image(np.zeros((4, 4, 4), np.float32))
    assert widget.covariate.native.currentText() == "Age (years)"
    assert widget.covariate.value == "age"  # the demo model's first numeric covariate
    assert "ventricular_volume" in widget.covariate.choices
    spec = widget.model_controls.model.config.covariate("age")
    assert (widget.start_value.value, widget.stop_value.value) == pytest.approx((spec.low, spec.high), abs=0.01)
