"""The Explorer in a real JupyterLab page, driven by headless Chromium: the button generates a brain."""

from __future__ import annotations

import numpy as np
from PIL import Image

from tests.browser import run_explorer


def test_explorer_generates_a_brain_in_jupyterlab(model_dir, tmp_path):
    screenshot = tmp_path / "jupyterlab.png"
    report = run_explorer(str(model_dir), tmp_path / "lab", screenshot)
    assert report["status"].startswith("done in")
    assert report["image_width"] > 100  # the orthogonal-slices figure came back to the page
    pixels = np.asarray(Image.open(screenshot).convert("L"), dtype=float)
    assert pixels.std() > 10
    assert report["canvas_std"] > 5  # the 3D view drew the brain
