"""Training both stages on a tiny synthetic cohort: losses fall, runs resume exactly, results load."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import brainsynth
from brainsynth.training import train_autoencoder, train_diffusion
from brainsynth.training.checkpoint import CheckpointError
from brainsynth.training.loop import read_log
from tests.conftest import write_training_config


def _losses(run, key):
    return [entry[key] for entry in read_log(run) if key in entry and "step" in entry and "event" not in entry]


def test_autoencoder_steps_lower_the_loss(cohort_dir, tmp_path):
    config = write_training_config(tmp_path / "c.json", autoencoder={"steps": 40, "adversarial_warmup": 20})
    result = train_autoencoder(cohort_dir, config, tmp_path / "ae", device="cpu", quiet=True)
    losses = _losses(tmp_path / "ae", "loss_l1")
    assert len(losses) == 40
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    manifest = json.loads(result.read_text())
    assert manifest["data"]["shape"] == [20, 28, 20]
    assert np.asarray(manifest["affine"]).shape == (4, 4)
    events = [e["event"] for e in read_log(tmp_path / "ae") if "event" in e]
    from brainsynth.training.autoencoder import _perceptual_loss

    # the tiny preset asks for a perceptual loss; where it cannot be had, the log says so right after starting
    expected = ["start"] if _perceptual_loss(0.001)[0] is not None else ["start", "perceptual_loss_unavailable"]
    assert events[: len(expected)] == expected
    assert events[-1] == "finished"
    assert any((tmp_path / "ae" / "tensorboard").iterdir())


def test_diffusion_steps_lower_the_loss_and_the_model_samples(cohort_dir, trained_autoencoder, tmp_path):
    config = write_training_config(tmp_path / "c.json", diffusion={"steps": 80, "lr": 0.002})
    run = train_diffusion(cohort_dir, trained_autoencoder, config, tmp_path / "ldm", device="cpu", quiet=True)
    losses = _losses(run, "loss")
    assert np.mean(losses[-15:]) < np.mean(losses[:15])
    model = brainsynth.load_model(run)
    assert model.config.latent_shape == (3, 10, 14, 10)
    assert model.config.image_shape == (20, 28, 20)
    assert model.config.scale_factor > 0
    assert model.config.covariate_names == ("sex", "age", "ventricular_volume", "brain_volume")
    result = model.sample(sex="male", age=70, seed=0)
    assert result.volume.shape == (20, 28, 20)
    assert np.isfinite(result.volume).all()
    assert "## Training" in (run / "README.md").read_text()
    assert (run / "latents.pt").is_file()


def _cli(*args):
    return [sys.executable, "-m", "brainsynth", *map(str, args)]


def _wait_for_checkpoint(run, process, at_least):
    deadline = time.time() + 120
    while time.time() < deadline:
        if (run / "log.jsonl").is_file():
            steps = [e["step"] for e in read_log(run) if e.get("event") == "checkpoint"]
            if steps and steps[-1] >= at_least:
                return steps[-1]
        if process.poll() is not None:
            raise AssertionError(f"training ended early: {process.communicate()}")
        time.sleep(0.02)
    raise AssertionError("no checkpoint appeared")


def _same_state(a, b):
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_state(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same_state(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_killed_run_resumes_with_identical_state(cohort_dir, tmp_path):
    config = write_training_config(
        tmp_path / "c.json",
        autoencoder={
            "steps": 60,
            "checkpoint_every": 10,
            "log_every": 1,
            "adversarial_warmup": 5,
            "image_every": 1000,
        },
    )
    killed = tmp_path / "killed"
    # The process kills itself (SIGKILL: no handler runs) when 35 steps are done, five after the checkpoint
    # of step 30, whatever the machine's speed.
    crash = (
        "import os, signal, sys\n"
        "from brainsynth.training.autoencoder import AutoencoderTask\n"
        "step = AutoencoderTask.train_step\n"
        "def train_step(self, n):\n"
        "    if n == 35:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return step(self, n)\n"
        "AutoencoderTask.train_step = train_step\n"
        "from brainsynth.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    arguments = ["train", "autoencoder", "--data", cohort_dir, "--config", config, "--output", killed, "-q"]
    process = subprocess.run(
        [sys.executable, "-c", crash, *map(str, arguments), "--device", "cpu"], capture_output=True, timeout=600
    )
    assert process.returncode == -signal.SIGKILL, process.stderr[-2000:]
    last_logged = max(e["step"] for e in read_log(killed) if "step" in e and "event" not in e)
    checkpoint = torch.load(killed / "checkpoints" / "last.pt", weights_only=True)
    assert checkpoint["step"] == 30
    assert last_logged == 35  # the five steps after the checkpoint are lost, and only they
    subprocess.run(
        _cli(
            "train",
            "autoencoder",
            "--data",
            cohort_dir,
            "--config",
            config,
            "--output",
            killed,
            "--device",
            "cpu",
            "-q",
            "--resume",
        ),
        check=True,
        capture_output=True,
    )
    resumed = [e for e in read_log(killed) if e.get("event") == "resume"]
    assert resumed[0]["step"] == checkpoint["step"]

    fresh = tmp_path / "fresh"
    subprocess.run(
        _cli(
            "train", "autoencoder", "--data", cohort_dir, "--config", config, "--output", fresh, "--device", "cpu", "-q"
        ),
        check=True,
        capture_output=True,
    )
    a = torch.load(killed / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(fresh / "checkpoints" / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == 60
    assert _same_state(a, b)
    weights_a, weights_b = load_file(killed / "autoencoder.safetensors"), load_file(fresh / "autoencoder.safetensors")
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)


def test_sigterm_saves_a_checkpoint_and_stops(cohort_dir, tmp_path):
    config = write_training_config(tmp_path / "c.json", autoencoder={"steps": 2000, "checkpoint_every": 10})
    run = tmp_path / "run"
    process = subprocess.Popen(
        _cli(
            "train", "autoencoder", "--data", cohort_dir, "--config", config, "--output", run, "--device", "cpu", "-q"
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_checkpoint(run, process, 10)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    interrupted = [e for e in read_log(run) if e.get("event") == "interrupted"]
    assert interrupted[0]["signal"] == "SIGTERM"
    assert f"interrupted at step {interrupted[0]['step']}; checkpoint saved" in stderr
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"] == interrupted[0]["step"]


def test_resume_refuses_a_checkpoint_of_another_config(cohort_dir, trained_autoencoder, tmp_path):
    run = tmp_path / "run"
    train_autoencoder(
        cohort_dir, write_training_config(tmp_path / "a.json", autoencoder={"steps": 4}), run, device="cpu", quiet=True
    )
    other = write_training_config(tmp_path / "b.json", autoencoder={"steps": 4, "lr": 0.01})
    with pytest.raises(CheckpointError, match=r"was made with another configuration"):
        train_autoencoder(cohort_dir, other, run, resume=True, device="cpu", quiet=True)


def test_output_holding_another_run_is_refused(cohort_dir, trained_autoencoder, tmp_path):
    with pytest.raises(brainsynth.OutputExistsError, match=r"already holds files \(another run\?\); pass --resume"):
        train_autoencoder(cohort_dir, "tiny", trained_autoencoder, device="cpu", quiet=True)
    with pytest.raises(brainsynth.InvalidParameterError, match=r"cannot resume: .* holds no checkpoints"):
        train_autoencoder(cohort_dir, "tiny", tmp_path / "new", resume=True, device="cpu", quiet=True)


def test_autoencoder_that_does_not_match_the_diffusion_config(cohort_dir, trained_autoencoder, tmp_path):
    config = write_training_config(tmp_path / "c.json", data={"spacing": 4.0, "shape": [40, 56, 40]})
    with pytest.raises(brainsynth.InvalidParameterError, match=r"does not match the diffusion config: it was trained"):
        train_diffusion(cohort_dir, trained_autoencoder, config, tmp_path / "ldm", device="cpu", quiet=True)
    with pytest.raises(brainsynth.ModelLoadError, match=r"holds no trained autoencoder"):
        train_diffusion(cohort_dir, tmp_path, "tiny", tmp_path / "ldm2", device="cpu", quiet=True)


def test_bad_training_configs(tmp_path):
    from brainsynth.training.settings import load_training_config

    with pytest.raises(brainsynth.InvalidParameterError, match=r"config must be a preset \(demo, paper, tiny\)"):
        load_training_config("huge")
    bad = write_training_config(tmp_path / "c.json", autoencoder={"stepz": 3})
    with pytest.raises(brainsynth.InvalidParameterError, match=r"unknown keys \['stepz'\]"):
        load_training_config(bad)
    odd = write_training_config(tmp_path / "d.json", data={"shape": [21, 28, 20]})
    with pytest.raises(brainsynth.InvalidParameterError, match=r"data.shape must be divisible by 2"):
        load_training_config(odd)


@pytest.mark.parametrize("stage", ["autoencoder", "diffusion"])
def test_torchrun_two_processes_end_with_identical_weights(cohort_dir, trained_autoencoder, tmp_path, stage):
    run = tmp_path / stage
    extra = ["--autoencoder", trained_autoencoder] if stage == "diffusion" else []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "brainsynth",
            "train",
            stage,
            "--data",
            cohort_dir,
            *extra,
            "--config",
            "tiny",
            "--output",
            run,
            "--device",
            "cpu",
            "-q",
        ],
        check=True,
        capture_output=True,
        env=env,
        timeout=300,
    )
    agree = [e for e in read_log(run) if e.get("event") == "weights_agree"]
    assert agree[0]["processes"] == 2
    assert len(agree[0]["checksums"]) == 2
    assert agree[0]["identical"] is True
    start = next(e for e in read_log(run) if e.get("event") == "start")
    assert start["processes"] == 2


def test_resume_with_more_steps_trains_longer_exactly(cohort_dir, trained_autoencoder, tmp_path):
    config = write_training_config(tmp_path / "c.json", diffusion={"steps": 6, "checkpoint_every": 3})
    longer = tmp_path / "longer"
    train_diffusion(cohort_dir, trained_autoencoder, config, longer, device="cpu", quiet=True, steps=4)
    train_diffusion(cohort_dir, trained_autoencoder, config, longer, device="cpu", quiet=True, resume=True, steps=8)
    assert [e["step"] for e in read_log(longer) if e.get("event") == "resume"] == [4]
    straight = tmp_path / "straight"
    train_diffusion(cohort_dir, trained_autoencoder, config, straight, device="cpu", quiet=True, steps=8)
    a = load_file(longer / "unet.safetensors")
    b = load_file(straight / "unet.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("latents", ["mean", "sample"])
def test_diffusion_trains_on_the_posterior_mean_or_draws(cohort_dir, trained_autoencoder, tmp_path, latents):
    from brainsynth.bids import TrainingImages
    from brainsynth.training.diffusion import DiffusionTask
    from brainsynth.training.distributed import init_distributed
    from brainsynth.training.settings import load_training_config

    config = load_training_config(write_training_config(tmp_path / "c.json", diffusion={"latents": latents}))
    (tmp_path / "run").mkdir()
    task = DiffusionTask(
        config, TrainingImages(cohort_dir, config.data), trained_autoencoder, init_distributed("cpu"), tmp_path / "run"
    )
    z, _, _ = task._batch(0)
    means = task.mu * task.scale_factor
    distance = min(float((z[0] - m).abs().max()) for m in means)  # z[0] is one subject's latent
    assert (distance < 1e-6) == (latents == "mean")


def test_bad_latents_setting_is_refused(tmp_path):
    from brainsynth.training.settings import load_training_config

    bad = write_training_config(tmp_path / "c.json", diffusion={"latents": "mode"})
    with pytest.raises(brainsynth.InvalidParameterError, match=r"diffusion.latents must be 'sample'.*got 'mode'"):
        load_training_config(bad)


def test_mixed_precision_run_resumes_a_float32_run(cohort_dir, trained_autoencoder, tmp_path):
    run = tmp_path / "run"
    float32 = write_training_config(tmp_path / "a.json", diffusion={"steps": 6, "checkpoint_every": 3})
    train_diffusion(cohort_dir, trained_autoencoder, float32, run, device="cpu", quiet=True, steps=3)
    mixed = write_training_config(
        tmp_path / "b.json", diffusion={"steps": 6, "checkpoint_every": 3, "precision": "bfloat16"}
    )
    train_diffusion(cohort_dir, trained_autoencoder, mixed, run, device="cpu", quiet=True, resume=True)
    assert [e["step"] for e in read_log(run) if e.get("event") == "resume"] == [3]
    assert all(np.isfinite(v) for v in _losses(run, "loss"))
    straight = tmp_path / "straight"
    train_diffusion(cohort_dir, trained_autoencoder, float32, straight, device="cpu", quiet=True)
    a, b = load_file(run / "unet.safetensors"), load_file(straight / "unet.safetensors")
    assert all(a[k].dtype == torch.float32 for k in a)  # weights stay float32
    assert not all(torch.equal(a[k], b[k]) for k in a)  # the last steps ran in bfloat16


def test_bad_training_precision_is_refused(tmp_path):
    from brainsynth.training.settings import load_training_config

    bad = write_training_config(tmp_path / "c.json", diffusion={"precision": "float16"})
    with pytest.raises(
        brainsynth.InvalidParameterError, match=r"diffusion.precision must be one of float32, bfloat16 .*got 'float16'"
    ):
        load_training_config(bad)


def test_cosine_learning_rate_falls_to_zero_and_a_run_can_be_annealed(cohort_dir, trained_autoencoder, tmp_path):
    from brainsynth.training.loop import lr_factor

    assert lr_factor(0, warmup=4, total=20, schedule="cosine") == pytest.approx(0.25)
    assert lr_factor(4, warmup=4, total=20, schedule="cosine") == pytest.approx(1.0)
    assert lr_factor(12, warmup=4, total=20, schedule="cosine") == pytest.approx(0.5)
    assert lr_factor(19, warmup=4, total=20, schedule="cosine") < 0.01
    assert lr_factor(19, warmup=4, total=20, schedule="constant") == 1.0
    # A constant-rate run resumed with the cosine schedule anneals to the end of the run.
    run = tmp_path / "run"
    constant = write_training_config(
        tmp_path / "a.json", diffusion={"steps": 8, "checkpoint_every": 4, "warmup_steps": 1, "log_every": 1}
    )
    train_diffusion(cohort_dir, trained_autoencoder, constant, run, device="cpu", quiet=True, steps=4)
    cosine = write_training_config(
        tmp_path / "b.json",
        diffusion={"steps": 8, "checkpoint_every": 4, "warmup_steps": 1, "log_every": 1, "lr_schedule": "cosine"},
    )
    train_diffusion(cohort_dir, trained_autoencoder, cosine, run, device="cpu", quiet=True, resume=True)
    rates = _losses(run, "lr")
    assert len(rates) == 8
    assert rates[:3] == [rates[0]] * 3  # constant before
    assert rates[4] > rates[5] > rates[6] > rates[7]  # falling after
    bad = write_training_config(tmp_path / "c.json", diffusion={"lr_schedule": "step"})
    from brainsynth.training.settings import load_training_config

    with pytest.raises(brainsynth.InvalidParameterError, match=r"lr_schedule must be one of constant, cosine"):
        load_training_config(bad)


def test_training_stops_at_the_first_loss_that_is_not_finite(cohort_dir, trained_autoencoder, tmp_path):
    """A learning rate that blows the weights up: the run stops with a message, the last good checkpoint kept."""
    from brainsynth.training.loop import TrainingDiverged

    config = write_training_config(tmp_path / "c.json", diffusion={"steps": 12, "lr": 1e30, "checkpoint_every": 1})
    run = tmp_path / "ldm"
    with pytest.raises(TrainingDiverged, match=r"training stopped at step (\d+): loss is (nan|inf)") as raised:
        train_diffusion(cohort_dir, trained_autoencoder, config, run, device="cpu", quiet=True)
    stopped = int(raised.value.args[0].split("step ")[1].split(":")[0])
    checkpoint = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert checkpoint["step"] == stopped - 1
    assert all(torch.isfinite(v).all() for v in checkpoint["unet"].values() if v.is_floating_point())
    assert not (run / "model.json").exists()
    assert [e["event"] for e in read_log(run) if "event" in e][-1] == "diverged"


def test_an_image_that_is_not_finite_is_refused(cohort_dir, tmp_path):
    import shutil

    import nibabel as nib

    data = tmp_path / "data"
    shutil.copytree(cohort_dir, data)
    image_path = sorted(data.glob("sub-*/anat/*_T1w.nii.gz"))[1]
    image = nib.load(image_path)
    nib.save(nib.Nifti1Image(np.full(image.shape, np.nan, dtype=np.float32), image.affine), image_path)
    from brainsynth.bids import DataError

    with pytest.raises(DataError, match=rf"{image_path.name} holds \d+ voxels that are not finite"):
        train_autoencoder(data, "tiny", tmp_path / "ae", device="cpu", quiet=True)


def test_overwrite_never_deletes_an_input_or_what_is_not_a_run(cohort_dir, trained_autoencoder, tmp_path):
    """--overwrite replaces a training run that brainsynth made, and nothing else."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(cohort_dir, data)
    with pytest.raises(brainsynth.InvalidParameterError, match=r"is or holds --data"):
        train_autoencoder(data, "tiny", data, overwrite=True, device="cpu", quiet=True)
    with pytest.raises(brainsynth.InvalidParameterError, match=r"is or holds --data"):
        train_autoencoder(data, "tiny", tmp_path, overwrite=True, device="cpu", quiet=True)
    assert (data / "participants.tsv").is_file()
    with pytest.raises(brainsynth.InvalidParameterError, match=r"is or holds --autoencoder"):
        train_diffusion(
            data, trained_autoencoder, "tiny", trained_autoencoder, overwrite=True, device="cpu", quiet=True
        )
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "thesis.tex").write_text("years of work")
    with pytest.raises(brainsynth.InvalidParameterError, match=r"is not a training run that brainsynth made"):
        train_autoencoder(data, "tiny", notes, overwrite=True, device="cpu", quiet=True)
    assert (notes / "thesis.tex").read_text() == "years of work"


def test_a_mistyped_autoencoder_keeps_the_old_run(cohort_dir, trained_autoencoder, tmp_path):
    run = tmp_path / "ldm"
    config = write_training_config(tmp_path / "c.json", diffusion={"steps": 2})
    train_diffusion(cohort_dir, trained_autoencoder, config, run, device="cpu", quiet=True)
    before = sorted(p.name for p in run.iterdir())
    with pytest.raises(brainsynth.ModelLoadError, match=r"holds no trained autoencoder"):
        train_diffusion(cohort_dir, tmp_path / "typo", config, run, overwrite=True, device="cpu", quiet=True)
    assert sorted(p.name for p in run.iterdir()) == before


def test_resume_refusals_leave_the_run_record_as_it_was(cohort_dir, trained_autoencoder, tmp_path):
    """Another config, or another autoencoder: refused before run.json is touched."""
    run = tmp_path / "ldm"
    config = write_training_config(tmp_path / "c.json", diffusion={"steps": 2})
    train_diffusion(cohort_dir, trained_autoencoder, config, run, device="cpu", quiet=True)
    record = (run / "run.json").read_text()
    other = write_training_config(tmp_path / "other.json", diffusion={"steps": 2, "lr": 0.01})
    with pytest.raises(CheckpointError, match=r"was made with another configuration"):
        train_diffusion(cohort_dir, trained_autoencoder, other, run, resume=True, device="cpu", quiet=True)
    assert (run / "run.json").read_text() == record
    second = tmp_path / "ae2"
    train_autoencoder(
        cohort_dir,
        write_training_config(tmp_path / "a.json", autoencoder={"steps": 2, "seed": 5}),
        second,
        device="cpu",
        quiet=True,
    )
    with pytest.raises(CheckpointError, match=r"trained on the latents of another autoencoder"):
        train_diffusion(cohort_dir, second, config, run, resume=True, steps=4, device="cpu", quiet=True)
    assert (run / "run.json").read_text() == record


def test_a_replacement_that_fails_keeps_the_old_run(cohort_dir, trained_autoencoder, tmp_path):
    """--overwrite builds the new run while the old one waits beside it; a failure puts the old one back."""
    from brainsynth.training.loop import TrainingDiverged

    run = tmp_path / "ldm"
    train_diffusion(
        cohort_dir,
        trained_autoencoder,
        write_training_config(tmp_path / "c.json", diffusion={"steps": 2}),
        run,
        device="cpu",
        quiet=True,
    )
    model_json = (run / "model.json").read_text()
    diverging = write_training_config(tmp_path / "d.json", diffusion={"steps": 6, "lr": 1e30})
    with pytest.raises(TrainingDiverged):
        train_diffusion(cohort_dir, trained_autoencoder, diverging, run, overwrite=True, device="cpu", quiet=True)
    assert (run / "model.json").read_text() == model_json
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    replaced = train_diffusion(
        cohort_dir,
        trained_autoencoder,
        write_training_config(tmp_path / "e.json", diffusion={"steps": 3}),
        run,
        overwrite=True,
        device="cpu",
        quiet=True,
    )
    assert json.loads((run / "run.json").read_text())["diffusion"]["steps"] == 3
    assert replaced.is_relative_to(run)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
