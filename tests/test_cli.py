"""The ``brainsynth`` command, run as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import brainsynth
from brainsynth.sampling.noise import draw_noise


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    process = subprocess.run(
        [sys.executable, "-m", "brainsynth", *map(str, args)], capture_output=True, text=True, timeout=300
    )
    if check and process.returncode != 0:
        raise AssertionError(f"exit {process.returncode}\n{process.stdout}\n{process.stderr}")
    return process


def test_sample_writes_nifti_and_sidecar(model_dir, tmp_path):
    out = tmp_path / "brain.nii.gz"
    process = run_cli(
        "sample",
        "--model",
        model_dir,
        "--sex",
        "male",
        "--age",
        "70",
        "--ventricular-volume",
        "50",
        "--brain-volume",
        "1500",
        "--seed",
        "4",
        "--steps",
        "3",
        "--output",
        out,
    )
    assert "wrote" in process.stdout
    assert "seed 4" in process.stdout
    sidecar = json.loads((tmp_path / "brain.json").read_text())
    assert sidecar["covariates"] == {"sex": "male", "age": 70.0, "ventricular_volume": 50.0, "brain_volume": 1500.0}
    assert sidecar["seed"] == 4
    expected = brainsynth.load_model(model_dir).sample(
        sex="male", age=70, ventricular_volume=50, brain_volume=1500, seed=4, steps=3
    )
    np.testing.assert_array_equal(np.asarray(nib.load(out).dataobj), expected.volume)


def test_bundle_samples_from_the_cli_like_the_api(layout_bundle, tmp_path):
    """Both public layouts of the published bundle, from the command line."""
    out = tmp_path / "bundle.nii.gz"
    run_cli(
        "sample",
        "--model",
        layout_bundle,
        "--sex",
        "1",
        "--age",
        "60",
        "--seed",
        "2",
        "--scheduler",
        "ddim",
        "--device",
        "cpu",
        "--quiet",
        "--output",
        out,
    )
    model = brainsynth.load_model(layout_bundle)
    expected = model.sample(noise=draw_noise(2, (3, 8, 8, 8)), sex="male", age=60)
    np.testing.assert_array_equal(np.asarray(nib.load(out).dataobj), expected.volume)
    sidecar = json.loads((tmp_path / "bundle.json").read_text())
    assert sidecar["steps"] == 50
    assert sidecar["timesteps"] == list(range(980, -1, -20))


def test_timestep_spacing_from_the_cli(model_dir, tmp_path):
    out = tmp_path / "linspace.nii.gz"
    run_cli(
        "sample",
        "--model",
        model_dir,
        "--seed",
        "2",
        "--steps",
        "3",
        "--timestep-spacing",
        "linspace",
        "--quiet",
        "--output",
        out,
    )
    sidecar = json.loads((tmp_path / "linspace.json").read_text())
    assert sidecar["timestep_spacing"] == "linspace"
    assert sidecar["timesteps"] == [999, 500, 0]
    expected = brainsynth.load_model(model_dir).sample(seed=2, steps=3, timestep_spacing="linspace")
    np.testing.assert_array_equal(np.asarray(nib.load(out).dataobj), expected.volume)


def test_same_seed_twice_gives_identical_data(model_dir, tmp_path):
    for name in ("a", "b", "c"):
        seed = "9" if name != "c" else "10"
        run_cli(
            "sample", "--model", model_dir, "--seed", seed, "--steps", "2", "-q", "--output", tmp_path / f"{name}.nii"
        )
    a, b, c = (np.asarray(nib.load(tmp_path / f"{n}.nii").dataobj) for n in "abc")
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a, c)


def test_traverse_to_a_4d_file_and_to_a_folder(model_dir, tmp_path):
    run_cli(
        "traverse",
        "--model",
        model_dir,
        "--covariate",
        "age",
        "--values",
        "50,60,70",
        "--seed",
        "1",
        "--steps",
        "2",
        "-q",
        "--output",
        tmp_path / "sweep.nii.gz",
    )
    assert nib.load(tmp_path / "sweep.nii.gz").shape == (16, 16, 16, 3)
    frames = json.loads((tmp_path / "sweep.json").read_text())["frames"]
    assert [f["covariates"]["age"] for f in frames] == [50.0, 60.0, 70.0]
    run_cli(
        "traverse",
        "--model",
        model_dir,
        "--covariate",
        "ventricular_volume",
        "--start",
        "10",
        "--stop",
        "150",
        "--frames",
        "2",
        "--steps",
        "2",
        "-q",
        "--output",
        tmp_path / "frames",
    )
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == [
        "brain_000.json",
        "brain_000.nii.gz",
        "brain_001.json",
        "brain_001.nii.gz",
    ]


def test_interpolate_between_seeds_and_covariates(model_dir, tmp_path):
    run_cli(
        "interpolate",
        "--model",
        model_dir,
        "--seed-a",
        "1",
        "--seed-b",
        "2",
        "--frames",
        "3",
        "--age",
        "50",
        "--age-b",
        "80",
        "--steps",
        "2",
        "-q",
        "--output",
        tmp_path / "morph.nii.gz",
    )
    sidecar = json.loads((tmp_path / "morph.json").read_text())
    assert [round(f["covariates"]["age"]) for f in sidecar["frames"]] == [50, 65, 80]
    assert [f["noise"]["t"] for f in sidecar["frames"]] == [0.0, 0.5, 1.0]


def test_info_lists_models_devices_and_covariates(model_dir):
    listing = run_cli("info").stdout
    assert "demo" in listing
    assert "ukb" in listing
    assert "devices: " in listing
    assert "cpu" in listing
    detail = run_cli("info", "--model", model_dir).stdout
    assert "ventricular_volume" in detail
    assert "6.99568 to 171.375 ml" in detail


def test_help_shows_examples():
    assert "examples:" in run_cli("sample", "--help").stdout
    assert "--covariate NAME" in run_cli("traverse", "--help").stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--age", "130"], "age must be between 44 and 82 years (got 130); pass extrapolate=True"),
        (["--age", "nan"], "age must be a finite number"),
        (["--sex", "unknown"], "sex must be one of 'female' (0), 'male' (1)"),
        (["--set", "height=3"], "unknown covariate 'height'"),
        (["--set", "oops"], "--set must look like NAME=VALUE"),
        (["--steps", "0"], "--steps must be at least 1 (got 0)"),
        (["--seed", "-3"], "--seed must be between 0 and 2**63-1 (got -3)"),
        (["--device", "cuda"], "device 'cuda' was requested but no CUDA GPU exists here"),
    ],
)
def test_user_errors_are_one_line_without_traceback(model_dir, tmp_path, extra, message):
    process = run_cli("sample", "--model", model_dir, *extra, "--output", tmp_path / "x.nii.gz", check=False)
    assert process.returncode == 1
    assert message in process.stderr
    assert "Traceback" not in process.stderr
    assert len(process.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.nii.gz").exists()


def test_extrapolation_from_the_cli_is_recorded(model_dir, tmp_path):
    run_cli(
        "sample",
        "--model",
        model_dir,
        "--age",
        "95",
        "--extrapolate",
        "--steps",
        "2",
        "-q",
        "--output",
        tmp_path / "old.nii.gz",
    )
    assert json.loads((tmp_path / "old.json").read_text())["extrapolated"] == ["age"]


def test_output_errors(model_dir, tmp_path):
    existing = tmp_path / "exists.nii.gz"
    existing.write_bytes(b"keep")
    process = run_cli("sample", "--model", model_dir, "--output", existing, check=False)
    assert process.returncode == 1
    assert "exists; pass overwrite=True (--overwrite)" in process.stderr
    assert existing.read_bytes() == b"keep"
    process = run_cli("sample", "--model", model_dir, "--output", tmp_path / "no" / "x.nii.gz", check=False)
    assert process.returncode == 2  # a usage error, found while the arguments are read
    assert "does not exist; create it first" in process.stderr
    process = run_cli("sample", "--model", tmp_path / "nowhere", "--output", tmp_path / "y.nii.gz", check=False)
    assert process.returncode == 1
    assert "model must be one of demo, ukb" in process.stderr
    process = run_cli(
        "sample", "--model", model_dir, "--scheduler", "euler", "--output", tmp_path / "z.nii", check=False
    )
    assert process.returncode == 2
    assert "invalid choice: 'euler'" in process.stderr


def test_download_failure_is_one_line_naming_every_source(monkeypatch, tmp_path, capsys):
    """No network here: MONAI's downloader fails for both sources, and the command says why in one line."""
    import monai.bundle

    from brainsynth.cli import main

    def refuse(**kwargs):
        raise ConnectionError(f"cannot reach {kwargs['source']} for {kwargs['name']}")

    monkeypatch.setattr(monai.bundle, "download", refuse)
    assert main(["download", "ukb", "--dir", str(tmp_path)]) == 1
    error = capsys.readouterr().err.strip()
    assert error == (
        "brainsynth download: error: downloading brain_image_synthesis_latent_diffusion_model failed from every "
        "source; huggingface_hub (MONAI/brain_image_synthesis_latent_diffusion_model): ConnectionError: cannot "
        "reach huggingface_hub for brain_image_synthesis_latent_diffusion_model; monaihosting: ConnectionError: "
        "cannot reach monaihosting for brain_image_synthesis_latent_diffusion_model"
    )
    assert list(tmp_path.iterdir()) == []  # nothing half-downloaded is left


def _fake_hub(old_networks, calls, *, failing=()):
    """A downloader that lays the model-zoo bundle out as huggingface_hub.snapshot_download does."""
    from tests.bundles import write_layout

    def download(*, name, bundle_dir, source, **options):
        calls.append((source, options))
        if source in failing:
            raise OSError(f"{source} is down")
        bundle = write_layout(Path(bundle_dir) / name, "model-zoo", *old_networks)
        (bundle / ".cache" / "huggingface").mkdir(parents=True)

    return download


@pytest.mark.parametrize("failing", [(), ("huggingface_hub",)])
def test_downloaded_bundle_is_found_by_model_ukb(monkeypatch, tmp_path, old_networks, capsys, failing):
    """The Hugging Face hub first, MONAI's own source when it fails; the result is where --model ukb looks."""
    import monai.bundle

    from brainsynth.cli import main

    calls = []
    monkeypatch.setenv("BRAINSYNTH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(monai.bundle, "download", _fake_hub(old_networks, calls, failing=failing))
    assert main(["download", "ukb"]) == 0
    assert calls[0] == ("huggingface_hub", {"repo": "MONAI/brain_image_synthesis_latent_diffusion_model"})
    assert [source for source, _ in calls] == ["huggingface_hub", *(["monaihosting"] if failing else [])]
    bundles = tmp_path / "home" / "bundles"
    assert sorted(p.name for p in bundles.iterdir()) == ["brain_image_synthesis_latent_diffusion_model"]
    model = brainsynth.load_model("ukb")
    assert model.weight_hashes["unet"]["file"] == "models/model.pt"
    assert (
        main(
            [
                "sample",
                "--model",
                "ukb",
                "--steps",
                "2",
                "--seed",
                "1",
                "--output",
                str(tmp_path / "brain.nii.gz"),
                "--quiet",
            ]
        )
        == 0
    )
    assert main(["download", "ukb"]) == 1
    assert "already exists; remove it to download" in capsys.readouterr().err


def test_model_builder_commands_end_to_end(tmp_path):
    """cohort -> train autoencoder -> train diffusion -> sample -> export, as a model builder runs them."""
    cohort, autoencoder, model = tmp_path / "cohort", tmp_path / "ae", tmp_path / "ldm"
    printed = run_cli(
        "cohort",
        "--n",
        "3",
        "--spacing",
        "8",
        "--seed",
        "1",
        "--output",
        cohort,
        "--png",
        tmp_path / "cohort.png",
        "-q",
    ).stdout
    assert "wrote 3 subjects" in printed
    assert (tmp_path / "cohort.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    run_cli("train", "autoencoder", "--data", cohort, "--config", "tiny", "--output", autoencoder, "-q")
    run_cli(
        "train",
        "diffusion",
        "--data",
        cohort,
        "--autoencoder",
        autoencoder,
        "--config",
        "tiny",
        "--output",
        model,
        "-q",
    )
    run_cli("sample", "--model", model, "--age", "75", "--seed", "2", "-q", "--output", tmp_path / "b.nii.gz")
    assert nib.load(tmp_path / "b.nii.gz").shape == (20, 28, 20)
    run_cli("export", "--model", model, "--format", "monai-bundle", "--output", tmp_path / "bundle")
    assert (tmp_path / "bundle" / "models" / "model.pt").is_file()
    again = run_cli("train", "autoencoder", "--data", cohort, "--config", "tiny", "--output", autoencoder, check=False)
    assert again.returncode == 1
    assert "already holds files" in again.stderr


def test_progress_bar_shows_the_decode_as_its_own_stage(capsys):
    """The step bar closes at the last step, so its rate counts steps only; the decode gets its own line."""
    from brainsynth.cli.progress import DECODE_REFRESH_S, progress_bar
    from brainsynth.sampling.loop import StepProgress

    with progress_bar("sampling") as callback:
        for step in range(1, 5):
            callback(StepProgress(step=step, total=4, timestep=0, latent=None, predicted_clean=None))
        time.sleep(3 * DECODE_REFRESH_S)  # the decode's clock redraws by itself meanwhile
    lines = [line.strip() for line in capsys.readouterr().err.replace("\r", "\n").splitlines() if line.strip()]
    steps = [i for i, line in enumerate(lines) if line.startswith("sampling:")]
    decoding = [i for i, line in enumerate(lines) if line.startswith("decoding:")]
    assert "4/4" in lines[steps[-1]]
    assert decoding
    assert min(decoding) > max(steps)
    assert len(decoding) >= 2


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path):
    """``brainsynth info | head``: no error message and no traceback when the pipe closes (here the reader
    exits before the command writes anything, so the write always meets a closed pipe)."""
    done = subprocess.run(
        ["bash", "-c", f"{sys.executable} -m brainsynth info | true; exit ${{PIPESTATUS[0]}}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.stderr.strip() == ""
    assert done.returncode == 1


def test_explore_without_napari_writes_a_brain_and_its_picture(model_dir, tmp_path, monkeypatch, capsys):
    """napari (or matplotlib) missing, with a display: the files are written, the plugin is not imported."""
    from PIL import Image

    from brainsynth.cli import main

    for name in ("napari", "matplotlib", "matplotlib.pyplot"):
        monkeypatch.setitem(sys.modules, name, None)  # importing them fails, as where they are not installed
    monkeypatch.delitem(sys.modules, "napari_plugin", raising=False)
    monkeypatch.delitem(sys.modules, "napari_plugin._explore", raising=False)
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.chdir(tmp_path)
    assert main(["explore", "--model", str(model_dir), "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "napari is not installed (pip install 'brainsynth[napari]')" in out
    assert "napari_plugin" not in sys.modules
    assert nib.load(tmp_path / "brainsynth_brain.nii.gz").shape == (16, 16, 16)
    picture = np.asarray(Image.open(tmp_path / "brainsynth_brain.png").convert("L"))
    assert picture.ndim == 2
    assert picture.std() > 10


def test_an_interrupted_sample_writes_nothing(model_dir, tmp_path, monkeypatch, capsys):
    """Ctrl-C during the denoising steps: exit 130 and no file, not even a partial one."""
    import contextlib

    import brainsynth.cli.commands as commands
    from brainsynth.cli import main

    @contextlib.contextmanager
    def interrupting_bar(description, quiet=False):
        def callback(progress):
            if progress.step == 2:
                raise KeyboardInterrupt

        yield callback

    monkeypatch.setattr(commands, "progress_bar", interrupting_bar)
    out = tmp_path / "out"
    out.mkdir()
    assert main(["sample", "--model", str(model_dir), "--steps", "4", "-o", str(out / "b.nii.gz")]) == 130
    assert "cancelled; no file was left half-written" in capsys.readouterr().err
    assert list(out.iterdir()) == []
