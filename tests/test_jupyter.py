"""The Jupyter explorer and teaching views, driven from Python as a notebook would."""

from __future__ import annotations

import numpy as np
import pytest

import brainsynth
from brainsynth.jupyter import (
    Explorer,
    animate,
    record_denoising,
    show_denoising,
    show_forward_process,
    show_interpolation,
    show_traversal,
)


def test_explorer_generates_with_the_widget_values(model, tmp_path):
    explorer = Explorer(model)
    explorer.covariates["age"].value = 75.0
    explorer.covariates["sex"].value = "male"
    explorer.seed.value = 4
    explorer.steps.value = 3
    result = explorer.generate(wait=True)
    assert result is explorer.result
    assert result.covariates[0]["sex"] == "male"
    assert result.covariates[0]["age"] == pytest.approx(75.0, abs=0.5)
    assert explorer.progress.value == 3
    assert explorer.status.value.startswith("done in")
    expected = model.sample(explorer.values(), seed=4, steps=3).volume
    np.testing.assert_array_equal(result.volume, expected)
    figure = explorer.figure()
    assert len(figure.axes) == 3
    (path,) = explorer.save(tmp_path / "brain.nii.gz")
    assert path.is_file()


def test_explorer_guidance_slider_follows_the_model(model):
    from tests.tiny import tiny_model

    assert Explorer(model).guidance.disabled  # trained without conditioning dropout
    explorer = Explorer(tiny_model(null_condition=-1.0, default_guidance=2.0))
    assert not explorer.guidance.disabled
    assert explorer.guidance.value == 2.0
    explorer.guidance.value = 3.0
    explorer.steps.value = 2
    assert explorer.generate(wait=True).settings["guidance"] == 3.0


def test_explorer_background_run_and_cancel(model):
    explorer = Explorer(model)
    explorer.steps.value = 1000
    explorer.generate()
    explorer.cancel()
    assert explorer.wait(timeout=60) is None
    assert explorer.status.value == "cancelled"
    assert not explorer.generate_button.disabled


def test_explorer_extrapolate_widens_the_sliders(model):
    explorer = Explorer(model)
    assert explorer.covariates["age"].max == 82.0
    explorer.extrapolate.value = True
    assert explorer.covariates["age"].max == pytest.approx(120.0)
    with pytest.raises(brainsynth.BrainsynthError, match=r"nothing to save yet"):
        explorer.save("x.nii.gz")


def test_teaching_views(model):
    traversal = show_traversal(model, "age", [50, 80], seed=1, steps=2, measure=False)
    assert len(traversal.axes) == 4
    interpolation = show_interpolation(model, 1, 2, frames=3, steps=2)
    assert len(interpolation.axes) == 6
    result, snapshots = record_denoising(model, [1, 3], seed=0, steps=3)
    assert [s[0] for s in snapshots] == [1, 3]
    assert snapshots[0][2].shape == (1, 3, 8, 8, 8)
    denoising = show_denoising(model, seed=0, steps=4)
    assert len(denoising.axes) == 3 * 4
    forward = show_forward_process(model, result.volume, timesteps=(0, 500, 999))
    assert len(forward.axes) == 6
    gif = animate(model.traverse("age", [50, 65, 80], steps=2))
    assert gif.data[:3] == b"GIF"


def test_traversal_measures_its_frames_or_says_why_not(block_import):
    """The demo model's samples are measured under each frame; a blank image warns; a missing library is an
    error naming the extra, not a silently emptier figure."""
    demo = brainsynth.load_model("demo")
    figure = show_traversal(demo, "age", [50, 80], seed=1, steps=2)
    labels = [axis.get_title() for axis in figure.axes[-2:]]
    assert all("ventricles" in label and "brain" in label for label in labels), labels
    from brainsynth.jupyter.views import show_result_grid

    blank = brainsynth.SampleResult(
        np.zeros((2, 16, 16, 16), np.float32), np.eye(4), ({}, {}), ({}, {}), (1, 2), ({}, {}), ((), ())
    )
    with pytest.warns(UserWarning, match="volumes not measured: volume has no brain to measure"):
        show_result_grid(blank, ["a", "b"])
    block_import("brainsynth.evaluation.volumetry")
    with pytest.raises(brainsynth.BrainsynthError, match=r"pip install 'brainsynth\[notebook\]'"):
        show_traversal(demo, "age", [50, 80], seed=1, steps=2)


def test_the_3d_view_holds_what_it_shows(model):
    """Python's side of the NiiVue view (the browser's side is tests/test_niivue_browser.py)."""
    pytest.importorskip("ipyniivue")
    import nibabel as nib

    from brainsynth.jupyter import denoising_3d, forward_process_3d, view_3d

    one = view_3d(model.sample(seed=1, steps=2))
    (volume,) = one.niivue.volumes
    image = nib.Nifti1Image.from_bytes(volume.data)
    np.testing.assert_allclose(image.affine, model.config.affine_array)  # placed in world coordinates
    assert one.controls.layout.display == "none"
    series = view_3d(model.traverse("age", [50.0, 70.0, 80.0], seed=1, steps=2))
    assert nib.Nifti1Image.from_bytes(series.niivue.volumes[0].data).shape == (*model.config.image_shape, 3)
    series.frame.value = 2
    assert series.niivue.volumes[0].frame_4d == 2
    assert "age 80" in series.caption.value
    steps = denoising_3d(model, steps=4)
    assert steps.labels[-1].startswith("step 4/4")
    noised = forward_process_3d(model, np.zeros(model.config.image_shape, np.float32) + 0.5, (0, 999))
    assert noised.labels[0].startswith("t = 0: signal 1.00")
    shown = one.shown
    one.show(np.zeros(model.config.image_shape), model.config.affine_array, overlay=np.ones(model.config.image_shape))
    assert one.shown == shown + 1
    assert len(one.niivue.volumes) == 2  # the brain and the change over it
