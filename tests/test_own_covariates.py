"""A model builder's model with covariates of its own (age in years, a lesion volume in ml) works through
every face: the API, the command line, dataset generation, the benchmark, Jupyter and napari."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

import brainsynth
from brainsynth.covariates import CovariateSpec
from brainsynth.loading.model_dir import save_model_dir
from tests.tiny import TINY_UNET, tiny_model

OWN_COVARIATES = (
    CovariateSpec(name="age", label="Age", unit="years", low=20.0, high=90.0, default=50.0),
    CovariateSpec(name="lesion_volume", label="Lesion volume", unit="ml", low=0.0, high=40.0, default=5.0),
)


@pytest.fixture(scope="module")
def own_model_dir(tmp_path_factory):
    unet = {**TINY_UNET, "in_channels": 5, "cross_attention_dim": 2}
    model = tiny_model(name="lesions", covariates=OWN_COVARIATES, unet=unet)
    return save_model_dir(model, tmp_path_factory.mktemp("own") / "lesions")


def _cli(*args, cwd=None):
    process = subprocess.run(
        [sys.executable, "-m", "brainsynth", *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd
    )
    assert process.returncode == 0, process.stderr[-2000:]
    return process


def test_api_samples_and_traverses_its_own_covariates(own_model_dir):
    model = brainsynth.load_model(own_model_dir)
    assert model.config.covariate_names == ("age", "lesion_volume")
    result = model.sample(age=60, lesion_volume=12.5, seed=1, steps=2)
    assert result.covariates[0] == {"age": 60.0, "lesion_volume": 12.5}
    sweep = model.traverse("lesion_volume", [0, 20, 40], seed=2, steps=2)
    assert [c["lesion_volume"] for c in sweep.covariates] == [0.0, 20.0, 40.0]
    with pytest.raises(brainsynth.InvalidParameterError, match=r"unknown covariate 'sex'"):
        model.sample(sex="male", steps=2)


def test_command_line_and_generate_use_its_covariates(own_model_dir, tmp_path):
    _cli(
        "sample",
        "--model",
        own_model_dir,
        "--age",
        "40",
        "--lesion-volume",
        "8",
        "--steps",
        "2",
        "--seed",
        "3",
        "-o",
        tmp_path / "b.nii.gz",
    )
    assert nib.load(tmp_path / "b.nii.gz").shape == (16, 16, 16)
    assert json.loads((tmp_path / "b.json").read_text())["covariates"] == {"age": 40.0, "lesion_volume": 8.0}
    usage = _cli("interpolate", "--model", own_model_dir, "--help").stdout
    assert "--lesion-volume ML" in usage
    assert "--lesion-volume-b ML" in usage
    assert "Lesion volume: 0 to 40 ml; default 5.0" in usage
    assert "--sex" not in usage
    assert "--ventricular-volume" not in usage
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "brainsynth",
            "sample",
            "--model",
            str(own_model_dir),
            "--sex",
            "male",
            "-o",
            "x.nii.gz",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert refused.returncode == 2
    assert "unrecognized arguments: --sex male" in refused.stderr
    _cli(
        "traverse",
        "--model",
        own_model_dir,
        "--covariate",
        "lesion_volume",
        "--values",
        "0,30",
        "--steps",
        "2",
        "-o",
        tmp_path / "sweep.nii.gz",
    )
    assert nib.load(tmp_path / "sweep.nii.gz").shape == (16, 16, 16, 2)
    table = tmp_path / "wanted.tsv"
    table.write_text("id\tage\tlesion_volume\na\t30\t1\nb\t70\t25\n")
    _cli("generate", "--model", own_model_dir, "--covariates", table, "--steps", "2", "-q", "-o", tmp_path / "data")
    assert sorted(p.name for p in (tmp_path / "data").glob("*.nii.gz")) == ["a.nii.gz", "b.nii.gz"]
    info = _cli("info", "--model", own_model_dir).stdout
    assert "lesion_volume" in info
    assert "ventricular" not in info


def test_benchmark_runs_on_its_covariates(own_model_dir):
    from brainsynth.evaluation.benchmark import benchmark

    report = benchmark(str(own_model_dir), device="cpu", steps=3, scheduler="ddim", runs=1)
    assert np.isfinite(report["speedup"])


def test_jupyter_shows_exactly_its_sliders(own_model_dir):
    from brainsynth.jupyter import Explorer

    explorer = Explorer(own_model_dir)
    assert list(explorer.covariates) == ["age", "lesion_volume"]
    assert explorer.covariates["lesion_volume"].description == "Lesion volume (ml)"
    explorer.covariates["lesion_volume"].value = 30.0
    explorer.steps.value = 2
    assert explorer.generate(wait=True).covariates[0]["lesion_volume"] == 30.0


def test_napari_shows_exactly_its_sliders(own_model_dir, make_napari_viewer):
    pytest.importorskip("napari")
    from napari_plugin._controls import FOLDER_CHOICE

    viewer = make_napari_viewer()
    _, generate = viewer.window.add_plugin_dock_widget("brainsynth", "Generate")
    _, traverse = viewer.window.add_plugin_dock_widget("brainsynth", "Traverse")
    for widget in (generate, traverse):
        widget.model_controls.model_choice.value = FOLDER_CHOICE
        widget.model_controls.model_folder.value = str(own_model_dir)
        assert [w.name for w in widget.model_controls.covariates] == ["age", "lesion_volume"]
    assert traverse.covariate.value == "age"
    assert set(traverse.covariate.choices) == {"age", "lesion_volume"}


OWN_TRAINING_COVARIATES = [
    {"name": "age", "label": "Age", "unit": "years", "low": 44.0, "high": 82.0, "default": 64.0},
    {
        "name": "lesion_volume",
        "label": "Lesion volume",
        "unit": "ml",
        "low": 0.0,
        "high": 40.0,
        "default": 5.0,
        "column": "lesion_ml",
    },
]


def test_training_takes_covariates_of_its_own(cohort_dir, trained_autoencoder, tmp_path):
    from brainsynth.training import train_diffusion
    from tests.conftest import write_training_config

    data = tmp_path / "cohort"
    shutil.copytree(cohort_dir, data)
    lines = (data / "participants.tsv").read_text().splitlines()
    (data / "participants.tsv").write_text(
        "\n".join([lines[0] + "\tlesion_ml", *(f"{line}\t{3.5 * i:.1f}" for i, line in enumerate(lines[1:]))]) + "\n"
    )
    network = {"in_channels": 5, "cross_attention_dim": 2}
    config = json.loads(write_training_config(tmp_path / "c.json").read_text())
    config["data"]["covariates"] = OWN_TRAINING_COVARIATES
    config["diffusion"].update(steps=2, checkpoint_every=2, image_every=2)
    config["diffusion"]["network"].update(network)
    (tmp_path / "c.json").write_text(json.dumps(config))
    folder = train_diffusion(data, trained_autoencoder, tmp_path / "c.json", tmp_path / "run", device="cpu", quiet=True)
    model = brainsynth.load_model(folder)
    assert model.config.covariate_names == ("age", "lesion_volume")
    assert model.config.covariate("lesion_volume").unit == "ml"
    assert model.sample(age=50, lesion_volume=20, seed=0, steps=2).covariates[0]["lesion_volume"] == 20.0

    config["data"]["covariates"] = [OWN_TRAINING_COVARIATES[0], OWN_TRAINING_COVARIATES[0]]
    (tmp_path / "twice.json").write_text(json.dumps(config))
    with pytest.raises(brainsynth.InvalidParameterError, match=r"data.covariates names a covariate twice"):
        train_diffusion(data, trained_autoencoder, tmp_path / "twice.json", tmp_path / "run2", device="cpu")
    assert not (tmp_path / "run2").exists()
