"""The Jupyter scan editor and the edit figures, driven from Python as a notebook would (Colin27)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ipywidgets")

from brainsynth.jupyter import ScanEditor, show_edit, show_edit_traversal

COLIN = Path("/usr/share/mricron/templates/ch2bet.nii.gz")
if not COLIN.is_file():
    if os.environ.get("CI"):
        raise RuntimeError("CI installs Debian's mricron-data (Colin27); it is missing")
    pytest.skip("Debian's mricron-data (Colin27) is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def editor():
    editor = ScanEditor(COLIN, "demo", source={"sex": "female", "age": 27.0})
    editor.extrapolate.value = True  # Colin27 was 27, below the demo model's ages
    editor.steps.value = 20
    return editor


def test_the_editor_edits_only_what_was_moved_and_inverts_once(editor, tmp_path):
    assert editor.targets["age"].value == 27.0  # the targets start at the scan's own
    assert editor.edit(wait=True) is None
    assert "move a target first" in editor.status.value
    editor.targets["ventricular_volume"].value = 110.0
    assert editor.target_values() == [{"ventricular_volume": 110.0}]
    result = editor.edit(wait=True)
    assert result.targets[0]["ventricular_volume"] == 110.0
    assert result.targets[0]["age"] == 27.0
    assert result.measured[0]["ventricular_volume"] > result.measured_source["ventricular_volume"] + 10
    assert editor.source["ventricular_volume"].value == pytest.approx(result.source["ventricular_volume"])
    assert editor.source["ventricular_volume"].disabled  # measured, not given
    assert editor.progress.value == editor.progress.max == 30
    assert editor.status.value.startswith("done in")
    assert editor.view.value[:4] == b"\x89PNG"
    editor.targets["age"].value = 80.0
    again = editor.edit(wait=True)
    assert again.targets[0]["age"] == 80.0
    assert editor.session.inversions == 1
    assert editor.progress.max == 10  # the regeneration alone
    written = editor.save(tmp_path / "older.nii.gz")
    assert [p.name for p in written] == ["older.nii.gz", "older_diff.nii.gz", "older.json"]


def test_a_traversal_has_a_frame_slider_and_figures(editor):
    editor.traverse.value = "age"
    editor.targets["age"].value = 87.0
    editor.frames.value = 3
    result = editor.edit(wait=True)
    editor.traverse.value = "(none)"
    assert [t["age"] for t in result.targets] == [27.0, 57.0, 87.0]
    assert editor.frame.max == 2
    editor.frame.value = 2
    scan = editor.session.scan()
    figure = show_edit(result, scan, 2)
    assert len(figure.axes) == 10  # 3 views x (scan, edit, change) and the colour bar
    assert "age 87" in figure.texts[0].get_text()
    strip = show_edit_traversal(result, scan)
    assert len(strip.axes) == 6
    assert [a.get_title().split("\n")[0] for a in strip.axes[:3]] == ["as the scan", "age 57", "age 87"]
    np.testing.assert_array_equal(result.differences_on_scan[0], 0)  # frame 0 is the scan's own age


def test_cancel_keeps_the_previous_result(editor):
    previous = editor.result
    editor.strength.value = 0.95
    editor.steps.value = 400
    editor.targets["age"].value = 60.0
    editor.edit()
    deadline = time.monotonic() + 120
    while editor.progress.value < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    editor.cancel()
    editor.wait()
    assert editor.status.value == "cancelled"
    assert editor.result is previous
    assert not editor.edit_button.disabled
