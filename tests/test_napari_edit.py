"""The napari Edit widget in a real viewer under Xvfb, on Colin27 opened with the plugin's reader."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

napari = pytest.importorskip("napari")

COLIN = Path("/usr/share/mricron/templates/ch2bet.nii.gz")
if not COLIN.is_file():
    if os.environ.get("CI"):
        raise RuntimeError("CI installs Debian's mricron-data (Colin27); it is missing")
    pytest.skip("Debian's mricron-data (Colin27) is not installed", allow_module_level=True)

#: Colin27 is MNI-aligned: the lateral ventricles lie in this box (mm, RAS).
VENTRICLES = ((-22.0, 22.0), (-35.0, 20.0), (2.0, 30.0))


def _edit_widget(viewer, model="demo"):
    (scan,) = viewer.open(str(COLIN), plugin="brainsynth")
    _, widget = viewer.window.add_plugin_dock_widget("brainsynth", "Edit")
    widget.model_controls.model_choice.value = model
    widget.scan_layer.value = scan
    widget.source["sex"].value = "female"
    widget.source["age"].value = 27.0
    widget.model_controls.extrapolate.value = True  # Colin27 was 27, below the demo model's ages
    widget.steps.value = 20
    return scan, widget


def _wait(qtbot, widget, timeout=300_000):
    qtbot.waitUntil(lambda: not widget.run.running, timeout=timeout)


def _in_box(layer, box) -> np.ndarray:
    """Mask of the voxels of a 3D layer whose world centres fall in ``box``."""
    index = np.indices(layer.data.shape).reshape(3, -1)
    world = layer.affine.affine_matrix[:3, :3] @ index + layer.affine.affine_matrix[:3, 3:]
    inside = np.all([(world[i] >= lo) & (world[i] <= hi) for i, (lo, hi) in enumerate(box)], axis=0)
    return inside.reshape(layer.data.shape)


def test_an_edit_of_colin27_lies_over_the_scan_and_a_second_edit_does_not_invert_again(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    scan, widget = _edit_widget(viewer)
    assert widget.model_controls.covariates["age"].value == 27.0  # the targets start at the scan's own
    widget.model_controls.covariates["ventricular_volume"].value = 120.0
    assert widget.targets() == [{"ventricular_volume": 120.0}]
    steps = []
    widget.start().yielded.connect(steps.append)
    _wait(qtbot, widget)
    first = widget.last_seconds
    edited, difference = widget.last_layers
    assert [layer.name for layer in viewer.layers] == ["ch2bet", "ch2bet edited", "ch2bet edited difference"]
    for layer in (edited, difference):
        assert layer.data.shape == scan.data.shape
        np.testing.assert_allclose(layer.affine.affine_matrix, scan.affine.affine_matrix)
    change = np.abs(difference.data)
    ventricles = _in_box(difference, VENTRICLES)
    assert change[ventricles].mean() > 3 * change[~ventricles].mean()
    sidecar = edited.metadata["brainsynth"]
    assert sidecar["kind"] == "edit"
    assert sidecar["covariates"]["ventricular_volume"] == 120.0
    assert sidecar["measured"]["ventricular_volume"] > sidecar["measured_source"]["ventricular_volume"] + 10
    assert [p.total for p in steps][:1] == [30]  # 10 inverted, 10 round trip, 10 edited
    # what was measured in the scan is shown in its controls
    assert widget.source["ventricular_volume"].value == pytest.approx(
        sidecar["source_covariates"]["ventricular_volume"]
    )
    viewer.dims.ndisplay = 3
    picture = np.asarray(viewer.screenshot(canvas_only=True, flash=False))[..., :3].astype(float)
    assert picture.std() > 5
    assert (picture.max(axis=-1) > 40).mean() > 0.01

    session = widget.session()
    assert (session.registrations, session.inversions) == (1, 1)
    widget.model_controls.covariates["ventricular_volume"].value = 60.0
    steps.clear()
    widget.start().yielded.connect(steps.append)
    _wait(qtbot, widget)
    assert (session.registrations, session.inversions) == (1, 1)
    assert [p.total for p in steps][:1] == [10]  # the regeneration alone
    assert widget.last_layers[0].metadata["brainsynth"]["covariates"]["ventricular_volume"] == 60.0
    print(f"click to layer: first edit {first:.1f} s, second edit {widget.last_seconds:.1f} s")


def test_an_age_traversal_is_one_4d_layer_saved_with_its_provenance(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer(show=True)
    scan, widget = _edit_widget(viewer)
    widget.model_controls.covariates["age"].value = 87.0
    widget.traverse.value = "age"
    widget.frames.value = 3
    widget.start()
    _wait(qtbot, widget)
    series, difference = widget.last_layers
    assert series.name == "ch2bet age traversal"
    assert series.data.shape == (3, *scan.data.shape) == difference.data.shape
    frames = series.metadata["brainsynth"]["frames"]
    assert [f["covariates"]["age"] for f in frames] == [27.0, 57.0, 87.0]
    assert np.abs(difference.data[0]).max() == 0  # the scan's own age: no change
    assert np.abs(difference.data[1]).mean() < np.abs(difference.data[2]).mean()
    path = tmp_path / "older.nii.gz"
    viewer.layers.selection = {series}
    viewer.layers.save(str(path), selected=True, plugin="brainsynth")
    sidecar = json.loads((tmp_path / "older.json").read_text())
    assert sidecar["kind"] == "edit"
    assert sidecar["saved_from"] == "napari"
    assert sidecar["settings"]["scan"]["path"] == "ch2bet"


def test_cancel_leaves_no_layer_and_keeps_no_inversion(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    _, widget = _edit_widget(viewer)
    widget.steps.value = 1000
    widget.model_controls.covariates["age"].value = 80.0
    steps = []
    widget.start().yielded.connect(steps.append)
    qtbot.waitUntil(lambda: len(steps) >= 2, timeout=120_000)
    widget.cancel()
    _wait(qtbot, widget)
    assert len(steps) < 100
    assert [layer.name for layer in viewer.layers] == ["ch2bet"]
    assert widget.session().inversions == 0
    assert "cancelled" in widget.run.status.value


def test_a_scan_that_cannot_be_edited_is_a_notification(make_napari_viewer, qtbot):
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer(show=True)
    _, widget = _edit_widget(viewer)
    flat = viewer.add_image(np.full((40, 40, 40), 3.0, np.float32), name="flat")
    widget.scan_layer.value = flat
    widget.model_controls.covariates["age"].value = 80.0
    with qtbot.capture_exceptions() as raised:  # napari relays a worker's error to its notifications
        widget.start()
        _wait(qtbot, widget)
    assert any("scan flat is constant" in str(error) for _, error, _ in raised)
    assert any("scan flat is constant" in str(n.message) for n in notification_manager.records)
    assert [layer.name for layer in viewer.layers] == ["ch2bet", "flat"]
    assert widget.run.run_button.enabled
