"""Every notebook runs top to bottom in a real Jupyter kernel (on the demo model, or a tiny trained one
while the demo model is not installed)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from brainsynth.loading.hub import PACKAGED_MODELS

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, trained_model, tmp_path, monkeypatch):
    model = "demo" if (PACKAGED_MODELS / "demo").is_dir() else str(trained_model)
    monkeypatch.setenv("BRAINSYNTH_NOTEBOOK_MODEL", model)
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    notebook = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), "outputs not stripped"
    started = time.perf_counter()
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
        env=dict(os.environ),
    ).execute()
    print(f"{path.name} ran in {time.perf_counter() - started:.1f} s on {model}")
    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    assert any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    if path.stem == "01_quickstart":
        assert (tmp_path / "quickstart_brain.nii.gz").is_file()
    if path.stem == "05_train_your_own":
        assert (tmp_path / "train_your_own" / "model" / "model.json").is_file()
