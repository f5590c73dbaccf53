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


def _counts(counts: dict) -> dict:
    """The row counts of a generate_dataset summary (without its timing)."""
    return {k: counts[k] for k in ("written", "skipped", "total")}


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "wanted.tsv"
    path.write_text(
        "id\tsex\tage\tventricular_volume\tseed\na\tfemale\t50\t20\t7\nb\tmale\t70\t80\t8\nc\tmale\t80\t150\t9\n"
    )
    return path


def test_rows_become_files_that_equal_single_samples(model, table, tmp_path):
    counts = generate_dataset(model, tmp_path / "out", covariates=table, steps=3, batch_size=2)
    assert _counts(counts) == {"written": 3, "skipped": 0, "total": 3}
    expected = model.sample(sex="male", age=70, ventricular_volume=80, seed=8, steps=3).volume
    np.testing.assert_allclose(np.asarray(nib.load(tmp_path / "out" / "b.nii.gz").dataobj), expected, atol=1e-5)
    sidecar = json.loads((tmp_path / "out" / "b.json").read_text())
    assert sidecar["covariates"]["ventricular_volume"] == 80.0
    assert sidecar["seed"] == 8
    assert (tmp_path / "out" / "covariates.tsv").read_text().splitlines()[0] == (
        "id\tseed\tsex\tage\tventricular_volume\tbrain_volume"
    )


def test_generation_resumes_and_shards(model, tmp_path):
    out = tmp_path / "out"
    first = generate_dataset(model, out, n=5, seed=3, steps=2, shard=(1, 2))
    assert _counts(first) == {"written": 3, "skipped": 0, "total": 5}
    (out / "brain_000002.nii.gz").unlink()  # as if killed while writing this one
    again = generate_dataset(model, out, n=5, seed=3, steps=2, shard=(1, 2))
    assert _counts(again) == {"written": 1, "skipped": 2, "total": 5}
    other = generate_dataset(model, out, n=5, seed=3, steps=2, shard=(2, 2))
    assert _counts(other) == {"written": 2, "skipped": 0, "total": 5}
    assert sorted(p.name for p in out.glob("*.nii.gz")) == [f"brain_{i:06d}.nii.gz" for i in range(5)]


def test_generation_bad_input(model, table, tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("id\theight\nx\t180\n")
    with pytest.raises(brainsynth.InvalidParameterError, match=r"unknown column\(s\) 'height'"):
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
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "brainsynth",
            "generate",
            "--model",
            str(model_dir),
            "--covariates",
            str(table),
            "--steps",
            "2",
            "--shard",
            "1/1",
            "-q",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 0, process.stderr
    assert "wrote 3, skipped 0 already done (of 3 rows)" in process.stdout
    assert sorted(p.name for p in out.glob("*.nii.gz")) == ["a.nii.gz", "b.nii.gz", "c.nii.gz"]


def test_every_row_is_checked_before_the_first_brain(model, table, tmp_path):
    """A bad third row is refused before the first two are computed, naming the row."""
    table.write_text(table.read_text().replace("c\tmale\t80\t150\t9", "c\tmale\t180\t150\t9"))
    with pytest.raises(brainsynth.InvalidParameterError, match=r"row 3 \(c\): age must be between 44 and 82"):
        generate_dataset(model, tmp_path / "out", covariates=table, steps=2)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("identifier", ["../escaped", "/tmp/absolute", "a b", "x.nii.gz", ".hidden", "é"])
def test_ids_must_be_plain_file_names(model, tmp_path, identifier):
    table = tmp_path / "ids.tsv"
    table.write_text(f"id\tage\nfine\t60\n{identifier}\t61\n", encoding="utf-8")
    with pytest.raises(brainsynth.InvalidParameterError, match=r"row 2: id must be a plain file name"):
        generate_dataset(model, tmp_path / "out", covariates=table, steps=2)
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "escaped.nii.gz").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, r"batch_size must be a positive integer \(got 0\)"),
        ({"n": 0}, r"give n \(a positive number of brains\)"),
    ],
)
def test_generation_settings_are_one_line_errors(model, tmp_path, kwargs, message):
    with pytest.raises(brainsynth.InvalidParameterError, match=message):
        generate_dataset(model, tmp_path / "out", **{"n": 2, **kwargs})


def test_seed_must_be_a_whole_number(model, tmp_path):
    table = tmp_path / "seeds.tsv"
    table.write_text("id\tseed\na\t1.7\n")
    with pytest.raises(brainsynth.InvalidParameterError, match=r"row 1 of seeds.tsv: seed must be a whole number"):
        generate_dataset(model, tmp_path / "out", covariates=table, steps=2)


def test_a_dataset_folder_keeps_describing_its_files(model, table, tmp_path):
    """Another request into the same folder is refused; a longer one extends it; a shorter one is part of it."""
    out = tmp_path / "out"
    generate_dataset(model, out, covariates=table, steps=2)
    record = (out / "covariates.tsv").read_text()
    changed = tmp_path / "changed.tsv"
    changed.write_text(table.read_text().replace("b\tmale\t70", "b\tmale\t71"))
    with pytest.raises(brainsynth.InvalidParameterError, match=r"made from another request \(row 2 was"):
        generate_dataset(model, out, covariates=changed, steps=2)
    assert (out / "covariates.tsv").read_text() == record
    # The record itself as the input, cut by n: nothing to do, and the record stays whole.
    assert generate_dataset(model, out, covariates=out / "covariates.tsv", n=2, steps=2)["written"] == 0
    assert (out / "covariates.tsv").read_text() == record
    longer = tmp_path / "longer.tsv"
    longer.write_text(table.read_text() + "d\tfemale\t60\t30\t10\n")
    assert _counts(generate_dataset(model, out, covariates=longer, steps=2)) == {"written": 1, "skipped": 3, "total": 4}
    assert (out / "covariates.tsv").read_text().startswith(record)
    assert len((out / "covariates.tsv").read_text().splitlines()) == 5


def test_excel_tables_are_read(model, table, tmp_path):
    """A UTF-8 byte-order mark (Excel's 'UTF-8' export), Windows line ends and empty trailing fields are accepted."""
    from brainsynth.generate import read_rows

    text = table.read_text().replace("\n", "\t\r\n")
    excel = tmp_path / "excel.tsv"
    excel.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert read_rows(excel, model, 0) == read_rows(table, model, 0)


def test_a_dataset_card_describes_the_folder(model_dir, table, tmp_path):
    model = brainsynth.load_model(model_dir)
    out = tmp_path / "out"
    generate_dataset(model, out, covariates=table, steps=2, n=2)
    card = (out / "DATASET_CARD.md").read_text()
    assert "2 of 2 brains of the record are in this folder" in card
    assert "sha256 `" in card
    assert "| age | 2 | min 50, median 60, max 70 |" in card
    assert "| sex | 2 | female 1, male 1 |" in card
    assert "- steps: 2" in card
    assert "No memorisation audit has been run" in card
    assert (out / "covariates.png").stat().st_size > 1000
    generate_dataset(model, out, covariates=table, steps=2)  # the third row: the card follows
    assert "3 of 3 brains" in (out / "DATASET_CARD.md").read_text()


@pytest.mark.parametrize(("dtype", "stored", "step"), [("int16", np.int16, 1 / 32767), ("uint8", np.uint8, None)])
def test_smaller_output_types(model, tmp_path, dtype, stored, step):
    generate_dataset(model, tmp_path / dtype, n=1, steps=2, dtype=dtype)
    generate_dataset(model, tmp_path / "float32", n=1, steps=2)
    image = nib.load(tmp_path / dtype / "brain_000000.nii.gz")
    assert image.get_data_dtype() == stored
    exact = np.clip(nib.load(tmp_path / "float32" / "brain_000000.nii.gz").get_fdata(), 0, 1)
    if step:  # read back in [0, 1] to within half a step
        assert np.abs(image.get_fdata() - exact).max() <= step / 2 + 1e-7
    else:
        np.testing.assert_allclose(np.asarray(image.dataobj), np.round(exact * 255), atol=1)
    assert json.loads((tmp_path / dtype / "brain_000000.json").read_text())["dtype"] == dtype
