"""The 3D view (NiiVue through ipyniivue) in a real JupyterLab, in headless Chromium with WebGL2 on the CPU."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ipyniivue")
pytest.importorskip("playwright")

from tests.browser import find_chromium, notebook_page

if find_chromium() is None:
    pytest.skip("Chromium is not installed (Debian package 'chromium')", allow_module_level=True)
if not Path("/usr/share/mricron/templates/ch2bet.nii.gz").is_file():
    if os.environ.get("CI"):
        raise RuntimeError("CI installs Debian's mricron-data (Colin27); it is missing")
    pytest.skip("Debian's mricron-data (Colin27) is not installed", allow_module_level=True)

CELLS = [
    "import brainsynth\n"
    "from brainsynth.jupyter import view_3d\n"
    "model = brainsynth.load_model({model!r})\n"
    "view = view_3d(model.sample(seed=0))\n"
    "view",
    "series = view_3d(model.traverse('ventricular_volume', [20.0, 140.0], seed=1, steps=10))\nseries",
    "from brainsynth.jupyter import view_edit_3d\n"
    "scan = brainsynth.load_scan('/usr/share/mricron/templates/ch2bet.nii.gz', model)\n"
    "edit = model.edit(\n"
    "    scan, source={{'sex': 'female', 'age': 27}}, ventricular_volume=120.0, steps=10, extrapolate=True\n"
    ")\n"
    "view_edit_3d(edit, scan)",
]


def _canvas(page, index: int) -> np.ndarray:
    from PIL import Image

    shot = page.locator("canvas").nth(index).screenshot()
    return np.asarray(Image.open(io.BytesIO(shot)).convert("RGB")).astype(float)


def _settle(page, before: np.ndarray, index: int, timeout_ms: int = 30_000) -> np.ndarray:
    """The canvas once it differs from ``before`` (or after the timeout)."""
    waited, after = 0, before
    while waited < timeout_ms:
        page.wait_for_timeout(1000)
        waited += 1000
        after = _canvas(page, index)
        if np.abs(after - before).mean() > 1.0:
            break
    return after


def _execute(page, code: str) -> None:
    page.evaluate(
        "code => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.requestExecute({code})", code
    )


def test_the_3d_view_draws_a_brain_updates_in_place_and_plays_a_series(tmp_path):
    with notebook_page(CELLS, tmp_path / "work", model="demo") as (page, run_all):
        run_all()
        page.locator("canvas").nth(1).wait_for(timeout=180_000)
        blank = np.zeros((1, 1, 3))
        first = _settle(page, blank, 0)
        assert first.std() > 5, "the 3D canvas is blank"
        assert page.evaluate("!!document.createElement('canvas').getContext('webgl2')")
        _execute(page, "view.show(model.sample(seed=7, age=80).volume, model.config.affine_array, title='seed 7')")
        second = _settle(page, first, 0)
        assert np.abs(second - first).mean() > 1.0, "the 3D view did not change with a new brain"
        frame0 = _settle(page, blank, 1)
        _execute(page, "series.frame.value = 1")
        frame1 = _settle(page, frame0, 1)
        assert np.abs(frame1 - frame0).mean() > 1.0, "the series did not move to its second frame"
        assert "ventr 140" in page.locator(".widget-html").nth(1).inner_text()
        page.locator("canvas").nth(2).wait_for(timeout=180_000)
        edited = _settle(page, blank, 2)
        assert edited.std() > 5, "the edit's 3D view is blank"
        red = (edited[..., 0] > edited[..., 2] + 60).mean() + (edited[..., 2] > edited[..., 0] + 60).mean()
        assert red > 0.001, "no coloured change over the scan"
        assert "edited to ventricular_volume 120" in page.locator(".widget-html").last.inner_text()


def test_without_webgl2_the_page_says_so_and_the_slices_still_work(model_dir, tmp_path):
    cells = ["from brainsynth.jupyter import Explorer\nexplorer = Explorer({model!r})\nexplorer"]
    no_webgl = ["--no-sandbox", "--disable-webgl", "--disable-3d-apis"]
    with notebook_page(cells, tmp_path / "work", model=str(model_dir), chromium_args=no_webgl) as (page, run_all):
        run_all()
        page.locator("text=This browser has no WebGL2").wait_for(timeout=180_000)
        assert not page.evaluate("!!document.createElement('canvas').getContext('webgl2')")
        page.locator("button.jupyter-button", has_text="Generate").click()
        page.locator(".widget-label", has_text="done in").wait_for(timeout=180_000)
        page.wait_for_function(
            "[...document.querySelectorAll('img.widget-image')].some(i => i.naturalWidth > 0)", timeout=60_000
        )
