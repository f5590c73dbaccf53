"""Batch generation: one file per row, resumable, shardable, matching single samples."""

from __future__ import annotations

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

import brainsynth
from brainsynth.generate import generate_dataset, parse_shard


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "wanted.tsv"
    path.write_text("id\tsex\tage\tventricular_volume\tseed\n"
                    "a\tfemale\t50\t20\t7\nb\tmale\t70\t80\t8\nc\tmale\t80\t150\t9\n")
    return path


def test_rows_become_files_that_equal_single_samples(model, table, tmp_path):
    counts = generate_dataset(model, tmp_path / "out", covariates=table, steps=3, batch_size=2)
    assert counts == {"written": 3, "skipped": 0, "total": 3}
    expected = model.sample(sex="male", age=70, ventricular_volume=80, seed=8, steps=3).volume
    np.testing.assert_allclose(np.asarray(nib.load(tmp_path / "out" / "b.nii.gz").dataobj), expected, atol=1e-5)
    sidecar = json.loads((tmp_path / "out" / "b.json").read_text())
    assert sidecar["covariates"]["ventricular_volume"] == 80.0
    assert sidecar["seed"] == 8
    assert (tmp_path / "out" / "covariates.tsv").read_text().splitlines()[0] == (
        "id\tseed\tsex\tage\tventricular_volume\tbrain_volume")


def test_generation_resumes_and_shards(model, tmp_path):
    out = tmp_path / "out"
    first = generate_dataset(model, out, n=5, seed=3, steps=2, shard=(1, 2))
    assert first == {"written": 3, "skipped": 0, "total": 5}
    (out / "brain_000002.nii.gz").unlink()  # as if killed while writing this one
    again = generate_dataset(model, out, n=5, seed=3, steps=2, shard=(1, 2))
    assert again == {"written": 1, "skipped": 2, "total": 5}
    other = generate_dataset(model, out, n=5, seed=3, steps=2, shard=(2, 2))
    assert other == {"written": 2, "skipped": 0, "total": 5}
    assert sorted(p.name for p in out.glob("*.nii.gz")) == [f"brain_{i:06d}.nii.gz" for i in range(5)]


def test_generation_bad_input(model, table, tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("id\theight\nx\t180\n")
    with pytest.raises(brainsynth.InvalidParameterError, match=r"unknown column\(s\) height"):
        generate_dataset(model, tmp_path / "out", covariates=bad)
    with pytest.raises(brainsynth.InvalidParameterError, match=r"give n \(a positive number of brains\)"):
        generate_dataset(model, tmp_path / "out")
    with pytest.raises(brainsynth.InvalidParameterError, match=r"shard must look like K/N"):
        parse_shard("2")
    with pytest.raises(brainsynth.InvalidParameterError, match=r"1 <= K <= N"):
        parse_shard("5/4")
    table.write_text(table.read_text().replace("\t80\t", "\t800\t"))
    with pytest.raises(brainsynth.InvalidParameterError, match=r"ventricular_volume must be between"):
        generate_dataset(model, tmp_path / "out2", covariates=table, steps=2)


def test_generate_command(model_dir, table, tmp_path):
    out = tmp_path / "cli"
    process = subprocess.run([sys.executable, "-m", "brainsynth", "generate", "--model", str(model_dir),
                              "--covariates", str(table), "--steps", "2", "--shard", "1/1", "-q",
                              "--output", str(out)], capture_output=True, text=True, timeout=300)
    assert process.returncode == 0, process.stderr
    assert "wrote 3, skipped 0 already done (of 3 rows)" in process.stdout
    assert sorted(p.name for p in out.glob("*.nii.gz")) == ["a.nii.gz", "b.nii.gz", "c.nii.gz"]
