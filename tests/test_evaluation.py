"""Evaluation: the segmentation measures what the cohort recorded; the report has every measurement."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

import brainsynth
from brainsynth.bids import DataSettings, TrainingImages
from brainsynth.evaluation.denoising import NOISE_LEVELS, denoising_errors
from brainsynth.evaluation.metrics import mean_pairwise_ms_ssim, ms_ssim, psnr, ssim
from brainsynth.evaluation.report import evaluate_model
from brainsynth.evaluation.volumetry import measure_volumes
from brainsynth.files.nifti import load_nifti
from brainsynth.synthetic.cohort import generate_cohort


def test_segmentation_tracks_the_recorded_volumes(tmp_path):
    cohort = generate_cohort(12, tmp_path / "cohort", spacing=2.0, seed=21)
    with open(cohort / "participants.tsv", newline="") as stream:
        rows = list(csv.DictReader(stream, delimiter="\t"))
    recorded, measured = [], []
    for row in rows:
        pid = row["participant_id"]
        volume, affine, _ = load_nifti(cohort / pid / "anat" / f"{pid}_T1w.nii.gz")
        result = measure_volumes(volume, affine)
        recorded.append((float(row["ventricular_volume_ml"]), float(row["brain_volume_ml"])))
        measured.append((result.ventricular_volume_ml, result.brain_volume_ml))
    recorded, measured = np.asarray(recorded), np.asarray(measured)
    assert np.corrcoef(recorded[:, 0], measured[:, 0])[0, 1] > 0.9
    # brain volume from the calibrated histogram: correlated and in the recorded units (no offset)
    assert np.corrcoef(recorded[:, 1], measured[:, 1])[0, 1] > 0.95
    assert np.abs(recorded[:, 1] - measured[:, 1]).mean() < 25.0


def test_metrics_behave():
    rng = np.random.default_rng(0)
    a = rng.random((24, 28, 24)).astype(np.float32)
    noisy = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1).astype(np.float32)
    assert psnr(a, a + 0.1) == pytest.approx(20.0, abs=0.01)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-5)
    assert ms_ssim(a, a) == pytest.approx(1.0, abs=1e-5)
    assert ms_ssim(a, noisy) < 1.0
    other = rng.random(a.shape).astype(np.float32)
    assert mean_pairwise_ms_ssim([a, noisy, other]) < mean_pairwise_ms_ssim([a, noisy, noisy])


def test_report_holds_every_measurement(trained_model, tmp_path):
    model = brainsynth.load_model(trained_model)
    report = evaluate_model(model, tmp_path / "report", n=3, device="cpu")
    assert np.isfinite(report.reconstruction_psnr_db)
    assert 0.0 < report.reconstruction_ssim <= 1.0
    assert np.isfinite(report.samples_ms_ssim)
    assert np.isfinite(report.real_ms_ssim)
    assert 0.0 < report.samples_gradient_ssim < 1.0
    assert 0.0 < report.real_gradient_ssim < 1.0
    assert "| 4-G-R-SSIM |" in (tmp_path / "report" / "report.md").read_text()
    assert report.fidelity_design == "cohort"
    assert [f.covariate for f in report.fidelity] == ["ventricular_volume", "brain_volume"]
    assert all(len(f.measured_real) == 3 and np.isfinite(f.mean_absolute_error_vs_real) for f in report.fidelity)
    assert all(len(f.requested) == len(f.measured) == 3 for f in report.fidelity)
    assert np.isfinite(report.seconds_per_sample)
    text = (tmp_path / "report" / "report.md").read_text()
    assert "| real images |" in text
    assert "Pearson r" in text
    assert [d.timestep for d in report.denoising] == [round(level * 1000) for level in NOISE_LEVELS]
    assert all(np.isfinite(d.relative_error) and d.relative_error > 0 for d in report.denoising)
    assert "## Denoising by noise level" in text
    assert text.count("| 950 |") == 1
    for name in ("report.json", "samples.png", "reconstruction.png", "fidelity_ventricular_volume.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    assert json.loads((tmp_path / "report" / "report.json").read_text())["n"] == 3
    # Each sample asked for one held-out subject's recorded volumes.
    with open(tmp_path / "report" / "held_out_cohort" / "participants.tsv", newline="") as stream:
        rows = list(csv.DictReader(stream, delimiter="\t"))
    recorded = [float(row["ventricular_volume_ml"]) for row in rows[:3]]
    np.testing.assert_allclose(report.fidelity[0].requested, recorded, rtol=1e-4)


def test_sweep_spreads_one_covariate_over_the_real_range(trained_model, tmp_path):
    model = brainsynth.load_model(trained_model)
    report = evaluate_model(
        model, tmp_path / "report", n=3, device="cpu", fidelity="sweep", covariates=["ventricular_volume"]
    )
    (item,) = report.fidelity
    with open(tmp_path / "report" / "held_out_cohort" / "participants.tsv", newline="") as stream:
        recorded = [float(row["ventricular_volume_ml"]) for row in csv.DictReader(stream, delimiter="\t")][:3]
    np.testing.assert_allclose([item.requested[0], item.requested[-1]], [min(recorded), max(recorded)], rtol=1e-4)
    assert item.requested[0] < item.requested[1] < item.requested[2]
    assert len(item.measured) == 3
    assert item.measured_real == []
    assert "spread evenly" in (tmp_path / "report" / "report.md").read_text()


def test_denoising_error_tells_a_trained_unet_from_an_untrained_one(tmp_path):
    cohort = generate_cohort(5, tmp_path / "cohort", spacing=2.0, seed=5)  # more than one U-Net batch
    model = brainsynth.load_model("demo")
    images = TrainingImages(cohort, DataSettings(spacing=2.0, shape=tuple(model.config.image_shape), covariates="ukb"))
    real, covariates = images.images(torch.arange(5)), images.covariates
    trained = denoising_errors(model, real, covariates, device=torch.device("cpu"))
    assert [d.timestep for d in trained] == [round(level * 1000) for level in NOISE_LEVELS]
    assert [d.signal_to_noise for d in trained] == sorted((d.signal_to_noise for d in trained), reverse=True)
    # At low noise the trained U-Net nearly recovers the latent, in the brain and in the background.
    assert trained[0].relative_error < 0.3
    assert trained[0].constant_region_error < 0.1
    for module in model.unet.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    untrained = denoising_errors(model, real, covariates, device=torch.device("cpu"))
    assert all(u.relative_error > 2 * t.relative_error for u, t in zip(untrained[:3], trained[:3], strict=True))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 1}, r"n must be an integer of at least 2"),
        ({"fidelity": "random"}, r"fidelity must be one of cohort, sweep \(got 'random'\)"),
        ({"covariates": ["height"]}, r"covariate must be one of sex, age"),
        ({"covariates": ["age"]}, r"covariate 'age' cannot be measured in an image"),
        ({"segmenter": "nowhere"}, r"segmenter must look like package.module:function"),
        ({"segmenter": "nowhere_at_all:f"}, r"segmenter 'nowhere_at_all:f' cannot be imported"),
        ({"guidance": 2.0}, r"guidance must be 1 for model .* trained without conditioning dropout"),
    ],
)
def test_nonsensical_requests_are_refused(model, tmp_path, kwargs, message):
    with pytest.raises(brainsynth.InvalidParameterError, match=message):
        evaluate_model(model, tmp_path / "report", **kwargs)
    assert not (tmp_path / "report").exists()


def test_model_without_autoencoder_is_reported(model_dir):
    (model_dir / "autoencoder.safetensors").unlink()
    with pytest.raises(brainsynth.ModelNotFoundError, match=r"autoencoder.safetensors is missing"):
        brainsynth.load_model(model_dir)
